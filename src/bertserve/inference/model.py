"""An exported model version loaded for inference: the server's and batch prediction's model.

A version folder is what `bertserve export` writes (see `bertserve.export.version`):

    BASE/1569141360/
      model.onnx  tokenizer/  labels.json  signature.json  model_card.md  export_config.json  manifest.json

or, for `--format openvino`, `model.xml` + `model.bin` (OpenVINO IR) in place of `model.onnx`,
or, for an ensemble (`bertserve export --run A --run B`), `members/0/`, `members/1/`, ... each with
its own model file(s) and export_config.json: every member is loaded and `AveragedEngine` returns
the mean of their probabilities, so callers see one model.

Use:

    from bertserve.inference.model import ExportedModel
    model = ExportedModel.load("models/chnsenticorp/1569141360", threads=2)
    model.predict_texts(["很好", "太差了"])        # float32 probabilities (2, num_labels)
    model.labels                                    # ["negative", "positive"]

Loading verifies the manifest checksums (`verify=False` skips them, e.g. for a quick reload of a
folder already verified) and always refuses any file that is not `.onnx/.json/.txt/.md` (or
OpenVINO's `model.xml` with `model.bin`). The engine follows the files (`engine="auto"`, see
`bertserve.inference.engines.create_engine`). Padded shapes (`bertserve.inference.padded_shapes`) are available but off
by default: on our CPU, padding to fixed lengths cost OpenVINO more than its shape changes did.
Every problem raises `bertserve.errors.ExportError`; a bad batch given to `predict_encoded`
(over-long, ids outside the vocabulary) raises `RequestError` (HTTP 400).

This module never imports torch: a serving process saves ~2.7 s of start-up and ~700 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bertserve.errors import BertServeError, ExportError, RequestError, VersionNotFoundError
from bertserve.files import read_json
from bertserve.inference.manifest import verify_folder
from bertserve.inference.padded_shapes import check_padded_lengths, pad_to_fixed_length
from bertserve.inference.engines import Engine, create_engine
from bertserve.inference.signature import check_signature
from bertserve.tokenizer import Encoded, TextTokenizer, load_saved_tokenizer
from bertserve.layout import (EXPORT_CONFIG_FILE, LABELS_FILE, MEMBERS_DIR, MODEL_CARD_FILE, ONNX_MODEL_FILE, SIGNATURE_FILE,
                              TOKENIZER_DIR)



def parse_version(folder: Path) -> int:
    """The version number of a version folder: its name, a positive integer."""
    name = Path(folder).name
    if not name.isdigit() or int(name) <= 0:
        raise ExportError(f"{folder}: a version folder must be named by a positive integer (e.g. 1569141360)")
    return int(name)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum so large logits cannot overflow."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


class AveragedEngine:
    """An ensemble's member engines behind the one-engine interface. `run` returns the log of the
    mean of the members' probabilities, so `softmax(run(...))` is exactly that mean (one engine
    call per member, in turn)."""

    def __init__(self, members: Sequence[Engine]):
        self.members = tuple(members)
        names = [name for member in self.members for name in member.input_names]
        self.input_names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.settings = {"ensemble": [getattr(member, "settings", None) for member in self.members]}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        probabilities = np.mean(
            [softmax(member.run({name: inputs[name] for name in member.input_names})) for member in self.members], axis=0
        )
        return np.log(np.maximum(probabilities, np.finfo(np.float32).tiny)).astype(np.float32)


def load_ensemble(path: Path, load_engine: Any) -> AveragedEngine:
    """The engines of `path/members/0..n-1` (an ensemble export), each loaded with its own export_config.json."""
    folders = sorted((child for child in (path / MEMBERS_DIR).iterdir() if child.is_dir()), key=lambda child: child.name)
    indices = sorted(int(folder.name) for folder in folders if folder.name.isdigit())
    if not folders or indices != list(range(len(folders))):
        raise ExportError(f"{path}: {MEMBERS_DIR}/ must hold folders 0..n-1, found {[folder.name for folder in folders]}; "
                          "re-export the ensemble")
    engines = []
    for index in indices:
        folder = path / MEMBERS_DIR / str(index)
        try:
            config = read_json(folder / EXPORT_CONFIG_FILE) if (folder / EXPORT_CONFIG_FILE).is_file() else {}
        except ValueError as error:
            raise ExportError(f"{folder}: unreadable {EXPORT_CONFIG_FILE} ({error}); re-export the ensemble") from error
        engines.append(load_engine(folder, config))
    return AveragedEngine(engines)


@dataclass
class ExportedModel:
    path: Path
    version: int
    labels: list[str]
    tokenizer: TextTokenizer
    signature: dict[str, Any]
    max_seq_length: int
    engine: Engine
    export_config: dict[str, Any] = field(default_factory=dict)
    padded_lengths: tuple[int, ...] = ()  # pad batches to these lengths before the engine; () = off

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        verify: bool = True,
        threads: int | None = None,
        device: str = "cpu",
        engine: str = "auto",
        padded_lengths: Sequence[int] = (),
        tuning: Any = None,
        **engine_options: Any,
    ) -> "ExportedModel":
        """Load and check a version folder. `engine`: "auto" (by the files), "onnxruntime" or
        "openvino"; `padded_lengths`: pad each batch to the next of these lengths (e.g.
        `bertserve.inference.padded_shapes.DEFAULT_PADDED_LENGTHS`), `()` (default) for none: measured with OpenVINO
        int8 on real dev texts one by one, padding was slower (docs/benchmarks.md, "Engines");
        `engine_options`: passed to `create_engine` (performance_hint, inference_precision,
        num_streams, cache_dir); `tuning`: a `bertserve.inference.tuning.TuningOptions` to choose
        the engine settings by measuring on this machine (the server's default), None to take them
        as given."""
        path = Path(path)
        if not path.is_dir():
            raise VersionNotFoundError(f"export version folder {path} does not exist")
        version = parse_version(path)
        verify_folder(path, check_checksums=verify)
        try:
            signature = check_signature(read_json(path / SIGNATURE_FILE), str(path))
            labels = read_json(path / LABELS_FILE).get("labels")
            config_path = path / EXPORT_CONFIG_FILE
            export_config = read_json(config_path) if config_path.is_file() else {}
            tokenizer = load_saved_tokenizer(path / TOKENIZER_DIR)
        except FileNotFoundError as error:
            raise ExportError(f"{path}: missing {Path(error.filename).name}; re-export the model") from error
        except ValueError as error:  # JSON decode errors
            raise ExportError(f"{path}: unreadable JSON ({error}); re-export the model") from error
        except BertServeError as error:
            if isinstance(error, ExportError):
                raise
            raise ExportError(f"{path}: {error}") from error
        if labels != signature["labels"]:
            raise ExportError(f"{path}: {LABELS_FILE} {labels} disagrees with {SIGNATURE_FILE} {signature['labels']}")

        def load_engine(folder: Path, config: dict[str, Any]) -> Engine:
            if tuning is None:
                return create_engine(folder, engine, threads=threads, device=device, **engine_options)
            from bertserve.inference.tuning import load_tuned_engine

            return load_tuned_engine(folder, engine, tokenizer=tokenizer, export_config=config, options=tuning,
                                     device=device, **engine_options)

        ensemble = (path / MEMBERS_DIR).is_dir()
        runner = load_ensemble(path, load_engine) if ensemble else load_engine(path, export_config)
        missing = [name for name in runner.input_names if name not in signature["inputs"]]
        if missing:
            raise ExportError(f"{path}: the model has inputs {missing} that {SIGNATURE_FILE} does not describe")
        return cls(
            path=path,
            version=version,
            labels=list(labels),
            tokenizer=tokenizer,
            signature=signature,
            max_seq_length=int(signature["max_seq_length"]),
            engine=runner,
            export_config=export_config,
            padded_lengths=check_padded_lengths(padded_lengths),
        )

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def predict_encoded(self, encoded: Encoded) -> np.ndarray:
        """Probabilities, float32 (batch, num_labels), for an already tokenized batch."""
        input_ids = np.asarray(encoded.input_ids)
        if input_ids.ndim != 2:
            raise RequestError(f"input_ids must be 2-D (batch, sequence), got shape {list(input_ids.shape)}")
        if input_ids.shape[0] == 0:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        if input_ids.shape[1] > self.max_seq_length:
            raise RequestError(
                f"sequence length {input_ids.shape[1]} exceeds this model's max_seq_length {self.max_seq_length}"
            )
        # Out-of-range ids would make ONNX Runtime fail inside Gather with an opaque message.
        if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= self.tokenizer.vocab_size):
            raise RequestError(f"input_ids must lie in [0, {self.tokenizer.vocab_size}) for this model's vocabulary")
        for name, value in encoded.as_dict().items():
            if np.shape(value) != input_ids.shape:
                raise RequestError(f"{name} has shape {list(np.shape(value))}, expected {list(input_ids.shape)}")
        if self.padded_lengths:
            encoded = pad_to_fixed_length(encoded, self.padded_lengths, self.max_seq_length, self.tokenizer.pad_id)
        inputs = {name: value for name, value in encoded.as_dict().items() if name in self.engine.input_names}
        return softmax(self.engine.run(inputs))

    def predict_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, float32 (len(texts), num_labels): tokenize (dynamic padding) and predict."""
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return self.predict_encoded(self.tokenizer.encode(list(texts)))
