"""PNG plots for a run folder: loss/accuracy curves and the confusion matrix.

    python -m bertserve.training.plots RUN_DIR     # (re)draw RUN_DIR/plots/*.png from history and metrics
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from bertserve.layout import HISTORY_FILE, METRICS_FILE  # noqa: E402


def write_plots(run_dir: Path) -> list[Path]:
    run_dir = Path(run_dir)
    folder = run_dir / "plots"
    folder.mkdir(exist_ok=True)
    written = []
    history = [json.loads(line) for line in (run_dir / HISTORY_FILE).read_text(encoding="utf-8").splitlines() if line]
    if history:
        figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
        steps, losses = [], []
        offset = 0
        for record in history:
            curve = record.get("loss_curve", [])
            steps += [offset + index + 1 for index in range(len(curve))]
            losses += curve
            offset += len(curve)
        loss_axis.plot(steps, losses, linewidth=0.6, alpha=0.5, label="per step")
        if len(losses) >= 20:
            window = max(5, len(losses) // 50)
            smooth = [sum(losses[max(0, i - window + 1): i + 1]) / len(losses[max(0, i - window + 1): i + 1]) for i in range(len(losses))]
            loss_axis.plot(steps, smooth, linewidth=1.5, label=f"moving mean ({window})")
        loss_axis.set(title="training loss", xlabel="step", ylabel="cross-entropy")
        loss_axis.legend()
        epochs = [record["epoch"] for record in history if "dev_accuracy" in record]
        accuracy_axis.plot(epochs, [record["dev_accuracy"] for record in history if "dev_accuracy" in record], "o-", label="dev accuracy")
        accuracy_axis.plot(epochs, [record["dev_macro_f1"] for record in history if "dev_macro_f1" in record], "s--", label="dev macro-F1")
        accuracy_axis.set(title="dev set after each epoch", xlabel="epoch", ylabel="score")
        accuracy_axis.set_xticks(epochs)
        accuracy_axis.legend()
        figure.tight_layout()
        path = folder / "loss_accuracy.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        split = "test" if "test" in metrics else "dev" if "dev" in metrics else None
        if split:
            matrix, labels = metrics[split]["confusion_matrix"], metrics[split]["labels"]
            figure, axis = plt.subplots(figsize=(1.3 * len(labels) + 3, 1.3 * len(labels) + 2))
            axis.imshow(matrix, cmap="Blues")
            peak = max(max(row) for row in matrix) or 1
            for i, row in enumerate(matrix):
                for j, count in enumerate(row):
                    axis.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
            axis.set_xticks(range(len(labels)), labels)
            axis.set_yticks(range(len(labels)), labels)
            axis.set(title=f"confusion matrix ({split}, accuracy {metrics[split]['accuracy']:.4f})", xlabel="predicted", ylabel="true")
            figure.tight_layout()
            path = folder / "confusion_matrix.png"
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_plots(Path(sys.argv[1])):
        print(written_path)
