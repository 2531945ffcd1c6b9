"""Evaluating run folders on labelled data: `bertserve evaluate` calls `evaluate_run`.

Besides the whole data, the report scores its leakage-free part (texts that do not also occur in
the training data) under "leakage_free", when the training texts are known: the train split of
a data folder, or a file given as `exclude_texts_of`. Several runs are scored as an ensemble: the
average of their probabilities, each run reading the texts with its own tokenizer (so runs from
different backbones, e.g. m3e-small and multilingual-e5-small, combine), with each member's own
report under "members"."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bertserve.data.datasets import load_dataset, read_file, read_texts, unseen_positions
from bertserve.errors import DataError
from bertserve.training.predict import predict_probabilities, select_device, select_precision
from bertserve.training.scores import classification_report, subset_report
from bertserve.training.run_folder import load_label_values, load_run


def evaluate_run(
    run_dir: Path | Sequence[Path],
    data: str,
    *,
    split: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "fp32",
    exclude_texts_of: str | None = None,
) -> dict:
    """Accuracy, macro-F1, per-class scores and confusion matrix of a run (or of the averaged
    probabilities of several runs with the same labels) on `data`."""
    run_dirs = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(folder) for folder in run_dir]
    runs = [load_run(folder) for folder in run_dirs]
    run = runs[0]
    for other in runs[1:]:
        if list(other.labels) != list(run.labels):
            raise DataError(f"cannot average {run.folder} and {other.folder}: labels {list(run.labels)} vs "
                            f"{list(other.labels)}; every --run must have the same labels in the same order")
    path = Path(data).expanduser()
    seen_texts = None  # the training texts, where known
    if exclude_texts_of:
        seen_texts = read_texts(Path(exclude_texts_of).expanduser(), text_column=text_column, format=format)
    if path.is_file():
        examples, _, _ = read_file(path, text_column=text_column, label_column=label_column, format=format)
        split_name = "all"
    else:
        dataset = load_dataset(data, text_column=text_column, label_column=label_column, format=format)
        split_name = split or ("test" if "test" in dataset.splits else "dev")
        if split_name not in dataset.splits:
            raise DataError(f"{data}: no {split_name} split")
        examples = dataset.splits[split_name].examples
        if seen_texts is None and split_name != "train":
            seen_texts = dataset.splits["train"].texts
    # A label in the data may be the raw value the run was trained on ("0") or its name ("negative").
    lookup = {name: index for index, name in enumerate(run.labels)}
    lookup.update({raw: index for index, raw in enumerate(load_label_values(run_dirs[0]))})
    unknown = sorted({example.label for example in examples} - set(lookup))
    if unknown:
        raise DataError(f"{data}: labels {unknown[:5]} are not among the run's labels {run.labels}")
    gold = [lookup[example.label] for example in examples]
    torch_device = select_device(device)
    unseen = unseen_positions(examples, seen_texts) if seen_texts is not None else None

    def scores(probabilities) -> dict:
        predicted = probabilities.argmax(axis=1).tolist()
        report = classification_report(gold, predicted, run.labels)
        if unseen is not None:
            report["leakage_free"] = subset_report(gold, predicted, unseen, run.labels)
        return report

    member_probabilities = []
    for member in runs:
        ids = member.tokenizer.token_ids([example.text for example in examples])
        member_probabilities.append(predict_probabilities(
            member.model.to(torch_device), member.tokenizer, ids, torch_device, select_precision(precision, torch_device),
            batch_size, progress="evaluate"))
        member.model.to("cpu")  # one member on the device at a time
    report = scores(sum(member_probabilities) / len(runs))
    if len(runs) == 1:
        return {"run": str(run_dirs[0]), "data": str(data), "split": split_name, **report}
    members = [{"run": str(folder), **scores(probabilities)} for folder, probabilities in zip(run_dirs, member_probabilities)]
    return {"run": [str(folder) for folder in run_dirs], "data": str(data), "split": split_name, **report, "members": members}
