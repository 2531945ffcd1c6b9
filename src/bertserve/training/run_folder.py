"""The run folder: what `bertserve train` writes and `evaluate` / `export` read.

    RUN_DIR/
      config.json        effective training config (defaults < file < flags), seed included
      labels.json        {"labels": [...]}: class id = position
      model/             Hugging Face format: config.json + model.safetensors (best dev epoch)
      tokenizer/         vocab.txt, tokenizer.json, tokenizer_settings.json
      history.jsonl      one JSON object per epoch (train loss, dev metrics, time)
      metrics.json       final dev/test metrics of the kept weights
      environment.json   library versions, machine, command line
      model_card.md      what the model is, its data, numbers, licence notes
      plots/             loss_accuracy.png, confusion_matrix.png

Weights are only ever loaded from safetensors here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertserve.errors import RunFolderError
from bertserve.files import read_json, write_json_atomic
from bertserve.tokenizer import BertTokenizer
from bertserve.layout import CONFIG_FILE, LABELS_FILE, MODEL_DIR, TOKENIZER_DIR, WEIGHTS_FILE



def save_labels(folder: Path, labels: list[str], values: list[str] | None = None) -> None:
    """`labels`: display names in class-id order; `values`: the raw label values in the data
    (e.g. "0"/"1" for ChnSentiCorp), so evaluation data may use either."""
    content: dict = {"labels": list(labels)}
    if values is not None:
        content["values"] = list(values)
    write_json_atomic(Path(folder) / LABELS_FILE, content)


def load_label_values(folder: Path) -> list[str]:
    """The raw label values recorded beside the names (empty if none were recorded)."""
    path = Path(folder) / LABELS_FILE
    values = read_json(path).get("values") if path.is_file() else None
    return [str(value) for value in values] if isinstance(values, list) else []


def load_labels(folder: Path) -> list[str]:
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise RunFolderError(f"{folder}: missing {LABELS_FILE}")
    labels = read_json(path).get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels) or len(labels) < 2:
        raise RunFolderError(f"{path}: 'labels' must be a list of at least 2 strings")
    return labels


def save_model(run_dir: Path, model, tokenizer: BertTokenizer, labels: list[str]) -> None:
    """Write weights (safetensors), tokenizer and labels into `run_dir`."""
    run_dir = Path(run_dir)
    model.save_pretrained(str(run_dir / MODEL_DIR), safe_serialization=True)
    tokenizer.save(run_dir / TOKENIZER_DIR)
    save_labels(run_dir, labels)


@dataclass
class LoadedRun:
    folder: Path
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: BertTokenizer
    labels: list[str]
    config: dict


def load_run(run_dir: Path | str) -> LoadedRun:
    """Load a trained run folder (weights from safetensors only)."""
    from transformers import AutoModelForSequenceClassification

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist")
    weights = run_dir / MODEL_DIR / WEIGHTS_FILE
    if not weights.is_file():
        raise RunFolderError(f"{run_dir}: no {MODEL_DIR}/model.safetensors; is this a bertserve run folder?")
    labels = load_labels(run_dir)
    tokenizer = BertTokenizer.load(run_dir / TOKENIZER_DIR)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(run_dir / MODEL_DIR), local_files_only=True, use_safetensors=True
    )
    model.eval()
    config_path = run_dir / CONFIG_FILE
    config = read_json(config_path) if config_path.is_file() else {}
    return LoadedRun(run_dir, model, tokenizer, labels, config)
