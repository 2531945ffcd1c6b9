"""A classifier fine-tuned by Google's `run_classifier.py` (the 2019 demo), loaded without TensorFlow.

`run_classifier.py --do_train --output_dir OUT` leaves `OUT/model.ckpt-N.index` + `.data-*` (one
per saved step, the newest listed in `OUT/checkpoint`) holding the encoder `bert/...`, the head
`output_weights` [num_labels, hidden] and `output_bias` [num_labels] (logits =
`pooled_output @ output_weights^T + output_bias`), `global_step` and the Adam slots
`.../adam_m`, `.../adam_v`; `bert_config.json` and `vocab.txt` stay in the pretrained model's folder.

    from bertserve.pretrained.tf_classifier import find_fine_tuned_checkpoint, load_fine_tuned_classifier
    checkpoint = find_fine_tuned_checkpoint(Path("demo/output"))         # newest model.ckpt-N
    model = load_fine_tuned_classifier(checkpoint.prefix, bert_config, ["negative", "positive"])

Only the encoder and the head are read (the Adam slots, two-thirds of the file, never are);
every problem is a `CheckpointError` that says what to do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertserve.errors import CheckpointError
from bertserve.pretrained.tf_checkpoint import find_checkpoint_prefix, hf_bert_config, load_checkpoint_state_dict, read_tensor_bundle

# What tf.estimator (run_classifier.py) names its checkpoints: model.ckpt-<global step>.
_STEP_INDEX = re.compile(r"^model\.ckpt-(\d+)\.index$")
_DATA_FILE = re.compile(r"\.data-\d{5}-of-\d{5}$")


@dataclass(frozen=True)
class FineTunedCheckpoint:
    prefix: Path  # <prefix>.index + <prefix>.data-*
    global_step: int | None  # the checkpoint's own global_step variable, when it has one


def checkpoint_steps(folder: Path) -> dict[int, Path]:
    """{step: prefix} of every `model.ckpt-N` in `folder`."""
    steps = {}
    for path in Path(folder).glob("model.ckpt-*.index"):
        match = _STEP_INDEX.match(path.name)
        if match:
            steps[int(match.group(1))] = path.with_suffix("")
    return steps


def _stored_global_step(prefix: Path) -> int | None:
    value = read_tensor_bundle(prefix, include=lambda name: name == "global_step").get("global_step")
    return None if value is None or value.size != 1 else int(value.reshape(()))


def find_fine_tuned_checkpoint(path: Path, step: int | None = None) -> FineTunedCheckpoint:
    """The checkpoint named by `path`: a prefix (`OUT/model.ckpt-1000`) or one of its files, or a folder, where `step`
    picks `model.ckpt-<step>` and the default is the highest step (else the folder's only checkpoint)."""
    path = Path(path)
    if path.is_file() and (path.suffix == ".index" or _DATA_FILE.search(path.name)):  # one of the files, for the prefix
        path = path.with_name(_DATA_FILE.sub("", path.name.removesuffix(".index")))
    if path.with_name(path.name + ".index").is_file():
        if step is not None and path.name != f"model.ckpt-{step}":
            raise CheckpointError(f"--checkpoint {path} is one checkpoint; --checkpoint-step {step} names another")
        return FineTunedCheckpoint(path, _stored_global_step(path))
    if not path.is_dir():
        raise CheckpointError(
            f"--checkpoint {path}: neither a folder nor a TensorFlow checkpoint (give run_classifier.py's --output_dir, "
            "or a prefix like OUT/model.ckpt-1000 whose .index file exists)"
        )
    steps = checkpoint_steps(path)
    if step is not None:
        if step not in steps:
            found = ", ".join(str(number) for number in sorted(steps)) or "none"
            raise CheckpointError(f"{path}: no model.ckpt-{step}.index (steps saved there: {found})")
        prefix = steps[step]
    elif steps:
        prefix = steps[max(steps)]
    else:
        prefix = find_checkpoint_prefix(path)  # bert_model.ckpt, the `checkpoint` file, or the only .index
    return FineTunedCheckpoint(prefix, _stored_global_step(prefix))


def read_bert_config(path: Path) -> dict[str, Any]:
    """`bert_config.json` as a dict, with the fields a BERT encoder cannot do without."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found; it sits in the pretrained model's folder that run_classifier.py read "
            "(--bert_config_file, e.g. chinese_L-12_H-768_A-12/bert_config.json): copy it there or pass --bert-config"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                "max_position_embeddings")
    missing = [key for key in required if not isinstance(config, dict) or not isinstance(config.get(key), int)]
    if missing:
        raise CheckpointError(f"{path}: not a Google BERT config (no integer {', '.join(missing)})")
    return config


def read_classifier_head(prefix: Path) -> dict[str, np.ndarray]:
    """The Hugging Face state dict of a run_classifier.py checkpoint, after checking it has a head."""
    state = load_checkpoint_state_dict(prefix)
    weight, bias = state.get("classifier.weight"), state.get("classifier.bias")
    if weight is None:
        raise CheckpointError(
            f"{prefix}: no output_weights, so this is a pre-trained, not a fine-tuned, checkpoint; "
            f"fine-tune it first: bertserve train --pretrained {prefix.parent} --data DATA --output RUN"
        )
    if weight.ndim != 2 or bias is None or bias.shape != (weight.shape[0],):
        raise CheckpointError(
            f"{prefix}: output_weights {list(weight.shape)} and output_bias "
            f"{None if bias is None else list(bias.shape)} are not a run_classifier.py head ([labels, hidden], [labels])"
        )
    return state


def load_fine_tuned_classifier(prefix: Path, bert_config: dict[str, Any], labels: list[str]):
    """A `transformers` BertForSequenceClassification (eval mode) holding the checkpoint's encoder
    and head; `labels` are the class names in class-id order (run_classifier.py's label_list order)."""
    return build_classifier(read_classifier_head(prefix), bert_config, labels, prefix)


def build_classifier(state: dict[str, np.ndarray], bert_config: dict[str, Any], labels: list[str], prefix: Path):
    """`load_fine_tuned_classifier` for a state dict already read by `read_classifier_head(prefix)`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    rows = state["classifier.weight"].shape[0]
    if rows != len(labels):
        raise CheckpointError(
            f"{prefix}: output_weights has {rows} rows (classes) but {len(labels)} labels were given "
            f"({', '.join(labels)}); give one name per class, in run_classifier.py's label_list order"
        )
    config = BertConfig(
        **hf_bert_config(bert_config),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    try:
        result = model.load_state_dict(tensors, strict=False)
    except RuntimeError as error:  # size mismatches: the config does not describe this checkpoint
        first = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), str(error))
        raise CheckpointError(f"{prefix}: does not match bert_config.json: {first}") from None
    if result.missing_keys:
        raise CheckpointError(
            f"{prefix}: weights missing for {len(result.missing_keys)} tensors (e.g. {result.missing_keys[:3]}); "
            "does bert_config.json (num_hidden_layers) describe this checkpoint?"
        )
    if result.unexpected_keys:
        raise CheckpointError(
            f"{prefix}: {len(result.unexpected_keys)} tensors have no place in the model bert_config.json describes "
            f"(e.g. {result.unexpected_keys[:3]}); is it the config this checkpoint was trained with?"
        )
    return model.eval()
