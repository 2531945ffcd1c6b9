"""Export trained run folders to a servable, checksummed ONNX or OpenVINO version folder.

    from bertserve.export.version import ExportSettings, export_run, export_runs
    result = export_run("runs/chnsenticorp", "models/chnsenticorp", ExportSettings(quantize="int8"))
    result = export_runs(["runs/a", "runs/b"], "models/ensemble", ExportSettings())   # an ensemble

or `bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp`. Writes

    BASE/<version>/              version: --version, default the current Unix timestamp (TF Serving style)
      model.onnx                 inputs input_ids/attention_mask/token_type_ids int64 [batch, sequence],
                                 output logits float32 [batch, num_labels]
      tokenizer/                 vocab.txt, tokenizer.json, tokenizer_settings.json (the run's tokenizer)
      labels.json                {"labels": [...]}
      signature.json             the serving signature (see `bertserve.inference.signature`)
      model_card.md              the run's card plus an "Export" section
      export_config.json         effective settings, library versions, source run, parity and accuracy numbers
      manifest.json              sha256 and size of every other file (see `bertserve.inference.manifest`)

`format="openvino"` writes OpenVINO IR (`model.xml` + `model.bin`) in place of `model.onnx`
(`bertserve.export.openvino`): fp32, bf16 inference, or NNCF static int8 calibrated on texts chosen
by `bertserve.export.calibration` (the run's own dev split when it has one). The graph itself is
made by `bertserve.export.graph` (trace, fuse, quantise, parity with torch); int8 and bf16 are then
checked against fp32 on the run's dev split (`bertserve.export.accuracy`, bound
`--max-accuracy-drop`).

An ensemble (several runs with the same labels and tokenizer, `bertserve.export.ensemble`) puts each
member's model files and its own export_config.json under `members/<index>/`; the tokenizer,
labels and signature are shared at the top, and `ExportedModel` averages the members' probabilities.

`ExportSettings()` defaults to fp32 ONNX, the exact reference the tests compare against; the
`bertserve export` command defaults to `--format openvino --quantize int8`, the fastest variant
measured that kept dev accuracy (docs/benchmarks.md, "Engines").

Everything is written by `bertserve.files.write_folder_atomically`: into `BASE/.<version>.tmp-XXXX/`,
fsynced, then renamed to `BASE/<version>`, so a polling server never sees half a version
(dot-folders are not versions). On any failure the temporary folder is removed and no version
folder appears.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bertserve import __version__
from bertserve.errors import ExportError
from bertserve.export.accuracy import DEFAULT_MAX_ACCURACY_DROP
from bertserve.export.dev_split import run_dev_split
from bertserve.export.ensemble import check_members_agree, ensemble_facts, member_folder
from bertserve.export.graph import build_model_graph
from bertserve.export.parity import FP32_TOLERANCE, PARITY_TEXTS
from bertserve.files import write_folder_atomically, write_json_atomic, write_text_atomic
from bertserve.inference.manifest import write_manifest
from bertserve.inference.signature import build_signature
from bertserve.layout import (EXPORT_CONFIG_FILE, LABELS_FILE, MEMBERS_DIR, MODEL_CARD_FILE, ONNX_MODEL_FILE,
                              OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE, SIGNATURE_FILE, TOKENIZER_DIR)

QUANTIZE_CHOICES = ("none", "int8", "bf16")
FORMAT_CHOICES = ("onnx", "openvino")


@dataclass(frozen=True)
class ExportSettings:
    version: int | None = None  # None: the current Unix timestamp, like TF Serving's 1569141360
    quantize: str = "none"  # "none" (fp32); "int8": onnx dynamic (QInt8 weights), openvino static (NNCF); "bf16": openvino only
    opset: int = 17  # ONNX opset; 17 is the first with LayerNormalization and runs on every ORT >= 1.14
    force: bool = False  # replace an existing BASE/<version>
    optimize: bool = True  # fuse with ONNX Runtime's transformer optimizer (needs ORT contrib ops to run)
    format: str = "onnx"  # "onnx" (model.onnx, ONNX Runtime) or "openvino" (model.xml + model.bin)
    calibration_data: str | None = None  # static int8: texts file; None = the run's dev split, else parity texts
    calibration_size: int = 300  # static int8: calibration texts used (NNCF's default subset size)
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP  # int8/bf16: dev accuracy points allowed below fp32
    strict_accuracy: bool = False  # over the bound after recovery: an error instead of a warning
    fp32_variant: bool = False  # openvino int8/bf16: also write the fp32 IR (variants/fp32/); the server runs whichever it measures faster


@dataclass
class ExportResult:
    path: Path
    version: int
    model_bytes: int
    parity_max_abs_diff: float  # max |p_torch - p_export| over PARITY_TEXTS, final graph (worst member)
    seconds: float
    optimized: bool
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        kind = {"int8": "int8", "bf16": "bf16"}.get(self.details.get("quantize", "none"), "fp32")
        if self.details.get("format") == "openvino":
            files, how = f"{OPENVINO_MODEL_FILE}+{OPENVINO_WEIGHTS_FILE}", f"openvino {kind}"
        else:
            files, how = ONNX_MODEL_FILE, f"{kind}, {'fused' if self.optimized else 'unfused'}"
        members = self.details.get("members", 1)
        if members > 1:
            files, how = f"{members} x {files}", f"ensemble of {members}, {how}"
        return (
            f"exported {self.path} ({files} {self.model_bytes / 1e6:.2f} MB, {how}, "
            f"parity max |dp| {self.parity_max_abs_diff:.2e}) in {self.seconds:.1f} s"
        )


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import tokenizers
    import torch
    import transformers

    versions = {
        "bertserve": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }
    for optional in ("openvino", "nncf"):  # only needed for --format openvino
        with contextlib.suppress(ImportError):
            versions[optional] = __import__(optional).__version__
    return versions


def check_settings(settings: ExportSettings) -> None:
    if settings.quantize not in QUANTIZE_CHOICES:
        raise ExportError(f"--quantize must be one of {list(QUANTIZE_CHOICES)}, got {settings.quantize!r}")
    if settings.format not in FORMAT_CHOICES:
        raise ExportError(f"--format must be one of {list(FORMAT_CHOICES)}, got {settings.format!r}")
    if settings.quantize == "bf16" and settings.format != "openvino":
        raise ExportError("--quantize bf16 needs --format openvino (ONNX Runtime has no fast bf16 path on CPU)")
    if settings.fp32_variant and (settings.format != "openvino" or settings.quantize == "none"):
        raise ExportError("--fp32-variant adds an fp32 twin to an OpenVINO int8 or bf16 export; "
                          "it needs --format openvino and --quantize int8 or bf16")
    if settings.calibration_size < 1:
        raise ExportError(f"--calibration-size must be a positive integer, got {settings.calibration_size}")
    if settings.calibration_data is not None:
        if (settings.format, settings.quantize) != ("openvino", "int8"):
            raise ExportError("--calibration-data is only used by --format openvino --quantize int8 (static int8)")
        if not Path(settings.calibration_data).is_file():
            raise ExportError(f"--calibration-data {settings.calibration_data} does not exist")
    if not 0 <= settings.max_accuracy_drop <= 100:
        raise ExportError(f"--max-accuracy-drop must be between 0 and 100 accuracy points, got {settings.max_accuracy_drop}")
    if settings.version is not None and settings.version <= 0:
        raise ExportError(f"--version must be a positive integer, got {settings.version}")
    if not 14 <= settings.opset <= 20:
        # 14 is the first opset with the ops BERT needs on this exporter; 20 is its newest.
        raise ExportError(f"--opset must be between 14 and 20, got {settings.opset}")


def write_model_card(run_dir: Path, folder: Path, facts: dict[str, Any]) -> None:
    source = Path(run_dir) / MODEL_CARD_FILE
    card = source.read_text(encoding="utf-8").rstrip() + "\n\n" if source.is_file() else "# Model card\n\n"
    lines = ["## Export", ""] + [f"- {key}: {value}" for key, value in facts.items()]
    write_text_atomic(folder / MODEL_CARD_FILE, card + "\n".join(lines) + "\n")


def model_files(settings: ExportSettings) -> list[str]:
    return [ONNX_MODEL_FILE] if settings.format == "onnx" else [OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE]


def export_member(run: Any, folder: Path, settings: ExportSettings) -> dict[str, Any]:
    """Write one run's model file(s) into `folder`; return its facts (calibration, parity, accuracy)."""
    tokenizer = run.tokenizer
    if run.model.config.max_position_embeddings < tokenizer.max_seq_length:
        raise ExportError(
            f"{run.folder}: tokenizer max_seq_length {tokenizer.max_seq_length} exceeds the model's "
            f"max_position_embeddings {run.model.config.max_position_embeddings}"
        )
    inputs = tokenizer.encode(list(PARITY_TEXTS)).as_dict()
    needs_dev = settings.quantize != "none"  # calibration and the accuracy check; fp32 needs neither
    dev = run_dev_split(run.folder) if needs_dev else None
    calibration, calibration_source = [], None
    if settings.format == "openvino" and settings.quantize == "int8":
        from bertserve.export.calibration import calibration_texts

        texts, calibration_source = calibration_texts(settings.calibration_data, settings.calibration_size,
                                                      PARITY_TEXTS, dev)
        calibration = [tokenizer.encode([text]).as_dict() for text in texts]
    facts = build_model_graph(run, folder, settings, inputs, calibration, dev)
    facts["calibration_source"] = calibration_source
    facts["model_bytes"] = sum((folder / name).stat().st_size for name in model_files(settings))
    facts["model_bytes"] += sum(variant["model_bytes"] for variant in facts.get("variants", {}).values())
    return facts


def card_facts(version: int, run_dirs: Sequence[Path], settings: ExportSettings, members: list[dict[str, Any]],
               model_bytes: int) -> dict[str, Any]:
    first = members[0]
    worst = max(member["parity_max_abs_diff"] for member in members)
    facts = {
        "version": version,
        "source run": ", ".join(str(path.resolve()) for path in run_dirs),
        "format": settings.format,
        "quantize": settings.quantize,
        "opset": settings.opset,
        "fused operators": first["fused_operators"] or ("by OpenVINO at load" if settings.format == "openvino" else "none"),
        "calibration": first["calibration_source"] or "none (not static int8)",
        "parity max |p_torch - p_export|": f"{worst:.2e} on {len(PARITY_TEXTS)} texts",
        f"{' + '.join(model_files(settings))} bytes": model_bytes,
    }
    accuracies = [member for member in members if "exported_dev_accuracy" in member]
    if accuracies:
        facts["dev accuracy (fp32 -> exported)"] = "; ".join(
            f"{m['fp32_dev_accuracy'] * 100:.2f}% -> {m['exported_dev_accuracy'] * 100:.2f}% on {m['dev_texts']} texts"
            for m in accuracies)
    if len(members) > 1:
        facts["ensemble"] = f"{len(members)} members ({MEMBERS_DIR}/0..{len(members) - 1}), mean of their probabilities"
    return facts


def write_version(temporary: Path, runs: list[Any], settings: ExportSettings, version: int, started: float) -> dict:
    """Fill the temporary version folder; return the export_config.json written."""
    ensemble = len(runs) > 1
    members = []
    for index, run in enumerate(runs):
        folder = member_folder(temporary, index) if ensemble else temporary
        folder.mkdir(parents=True, exist_ok=True)
        members.append(export_member(run, folder, settings))
        if ensemble:
            write_json_atomic(folder / EXPORT_CONFIG_FILE, {"source_run": str(run.folder.resolve()),
                                                            "source_run_config": run.config, **members[-1]})
    tokenizer, labels = runs[0].tokenizer, runs[0].labels
    tokenizer.save(temporary / TOKENIZER_DIR)
    write_json_atomic(temporary / LABELS_FILE, {"labels": list(labels)})
    write_json_atomic(temporary / SIGNATURE_FILE,
                      build_signature(labels, tokenizer.max_seq_length, tokenizer.lowercase, tokenizer.vocab_size))
    model_bytes = sum(member["model_bytes"] for member in members)
    config = {
        "settings": asdict(settings) | {"version": version},
        "source_run": str(runs[0].folder.resolve()) if not ensemble else [str(run.folder.resolve()) for run in runs],
        "source_run_config": runs[0].config if not ensemble else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "export_seconds": round(time.perf_counter() - started, 3),
        "model_bytes": model_bytes,
        "fp32_tolerance": FP32_TOLERANCE,
        "parity_texts": len(PARITY_TEXTS),
        **(members[0] if not ensemble else {"ensemble": ensemble_facts(temporary, runs, members)}),
        "library_versions": library_versions(),
        "command": sys.argv,
    }
    write_json_atomic(temporary / EXPORT_CONFIG_FILE, config)
    write_model_card(runs[0].folder, temporary,
                     card_facts(version, [run.folder for run in runs], settings, members, model_bytes))
    write_manifest(temporary)
    return config | {"members": members}


def export_runs(run_dirs: Sequence[Path | str], base_path: Path | str, settings: ExportSettings = ExportSettings()) -> ExportResult:
    """Export one run (`len(run_dirs) == 1`) or an ensemble of runs to BASE/<version>/."""
    from bertserve.training.run_folder import load_run

    started = time.perf_counter()
    check_settings(settings)
    if not run_dirs:
        raise ExportError("export needs at least one --run")
    base_path = Path(base_path)
    version = settings.version if settings.version is not None else int(time.time())
    target = base_path / str(version)
    exists = f"{target} already exists; pass --force to replace it or choose another --version"
    if target.exists() and not settings.force:
        raise ExportError(exists)
    if settings.fp32_variant and len(run_dirs) > 1:
        raise ExportError("--fp32-variant is for a single run; an ensemble's members carry no variants")
    runs = [load_run(Path(run_dir)) for run_dir in run_dirs]
    check_members_agree(runs)
    try:
        base_path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create --base-path {base_path}: {error}") from error
    try:
        with write_folder_atomically(target, replace=settings.force) as temporary:
            config = write_version(temporary, runs, settings, version, started)
    except FileExistsError:  # another export published this version meanwhile
        raise ExportError(exists) from None
    members = config["members"]
    return ExportResult(
        path=target,
        version=version,
        model_bytes=config["model_bytes"],
        parity_max_abs_diff=max(member["parity_max_abs_diff"] for member in members),
        seconds=time.perf_counter() - started,
        optimized=all(member["optimized"] for member in members),
        details={"quantize": settings.quantize, "format": settings.format, "members": len(members),
                 **({} if len(members) > 1 else members[0]), **({"ensemble": config["ensemble"]} if len(members) > 1 else {})},
    )


def export_run(run_dir: Path | str, base_path: Path | str, settings: ExportSettings = ExportSettings()) -> ExportResult:
    """Export one run folder to BASE/<version>/ (see the module docstring)."""
    return export_runs([run_dir], base_path, settings)
