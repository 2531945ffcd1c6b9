"""The run folder: what `bertserve train` writes and `evaluate` / `export` read.

    RUN_DIR/
      config.json        effective training config (defaults < file < flags), seed included
      labels.json        {"labels": [...]}: class id = position
      model/             Hugging Face format: config.json + model.safetensors (best dev epoch)
      tokenizer/         tokenizer.json, tokenizer_settings.json, vocab.txt (WordPiece) or normalization.json (unigram)
      history.jsonl      one JSON object per epoch (train loss, dev metrics, time)
      metrics.json       final dev/test metrics of the kept weights
      environment.json   library versions, machine, command line
      model_card.md      what the model is, its data, numbers, licence notes
      plots/             loss_accuracy.png, confusion_matrix.png

Weights are only ever loaded from safetensors here.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertserve import __version__
from bertserve.errors import RunFolderError
from bertserve.files import read_json, write_folder_atomically, write_json_atomic, write_text_atomic
from bertserve.tokenizer import TextTokenizer, load_saved_tokenizer
from bertserve.layout import (CONFIG_FILE, DATA_REPORT_FILE, ENVIRONMENT_FILE, HISTORY_FILE, LABELS_FILE, MODEL_DIR,
                              TOKENIZER_DIR, WEIGHTS_FILE)


# ---- writing a run folder, in the order `bertserve train` does -----------------------------------


def prepare_run_folder(output: Path, resume: bool) -> None:
    """Refuse to overwrite a trained run (unless resuming it); after a crash, finish an interrupted
    swap of the kept weights."""
    from bertserve.training.checkpoint import CHECKPOINT_DIR, recover_interrupted_swap

    if resume:
        if not (output / CONFIG_FILE).is_file():
            raise RunFolderError(f"--resume: {output} is not a run folder (no config.json)")
        recover_interrupted_swap(output, MODEL_DIR)
        return
    if (output / MODEL_DIR).exists() or (output / CHECKPOINT_DIR).exists():
        raise RunFolderError(f"{output} already holds a trained model; choose another --output, delete it, "
                             "or continue it with --resume")
    output.mkdir(parents=True, exist_ok=True)
    (output / HISTORY_FILE).unlink(missing_ok=True)


def start_run_folder(output: Path, config_values: dict, data_report: dict, environment: dict, tokenizer: TextTokenizer,
                     label_names: list[str], label_values: list[str]) -> None:
    """What is known before the first step: config, data report, environment, tokenizer, labels."""
    write_json_atomic(output / CONFIG_FILE, config_values)
    write_json_atomic(output / DATA_REPORT_FILE, data_report)
    write_json_atomic(output / ENVIRONMENT_FILE, environment)
    tokenizer.save(output / TOKENIZER_DIR)
    save_labels(output, label_names, label_values)


def environment_info(device, autocast_dtype, world_size: int) -> dict:
    import tokenizers
    import torch
    import transformers

    return {
        "bertserve": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "precision": "bf16-autocast" if autocast_dtype is not None else "fp32",
        "command": sys.argv,
        "world_size": world_size,
    }


def save_kept_weights(model, output: Path) -> None:
    """Write the weights to a temporary folder, then swap it in as model/: a crash never leaves half a model."""
    with write_folder_atomically(output / MODEL_DIR, replace=True) as temporary:
        model.save_pretrained(str(temporary), safe_serialization=True)


def append_history(output: Path, record: dict) -> None:
    with open(output / HISTORY_FILE, "a", encoding="utf-8") as history:
        history.write(json.dumps(record) + "\n")


def trim_history(output: Path, before_epoch: int) -> None:
    """On resume: drop history lines of epochs at or after `before_epoch` (logged before the crash,
    trained again now)."""
    path = output / HISTORY_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = [line for line in lines if line and json.loads(line)["epoch"] < before_epoch]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


# ---- reading a run folder -------------------------------------------------------------------------



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


def save_model(run_dir: Path, model, tokenizer: TextTokenizer, labels: list[str]) -> None:
    """Write weights (safetensors), tokenizer and labels into `run_dir`."""
    run_dir = Path(run_dir)
    model.save_pretrained(str(run_dir / MODEL_DIR), safe_serialization=True)
    tokenizer.save(run_dir / TOKENIZER_DIR)
    save_labels(run_dir, labels)


@dataclass
class LoadedRun:
    folder: Path
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: TextTokenizer
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
    tokenizer = load_saved_tokenizer(run_dir / TOKENIZER_DIR)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(run_dir / MODEL_DIR), local_files_only=True, use_safetensors=True
    )
    model.eval()
    config_path = run_dir / CONFIG_FILE
    config = read_json(config_path) if config_path.is_file() else {}
    return LoadedRun(run_dir, model, tokenizer, labels, config)
