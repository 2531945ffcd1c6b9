"""Export a trained run folder to a servable, checksummed ONNX or OpenVINO version folder.

    from bertserve.export.version import ExportSettings, export_run
    result = export_run("runs/chnsenticorp", "models/chnsenticorp", ExportSettings(quantize="int8"))

or `bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp`. Writes

    BASE/<version>/              version: --version, default the current Unix timestamp (TF Serving style)
      model.onnx                 inputs input_ids/attention_mask/token_type_ids int64 [batch, sequence],
                                 output logits float32 [batch, num_labels]
      tokenizer/                 vocab.txt, tokenizer.json, tokenizer_settings.json (the run's tokenizer)
      labels.json                {"labels": [...]}
      signature.json             the serving signature (see `bertserve.inference.signature`)
      model_card.md              the run's card plus an "Export" section
      export_config.json         effective settings, library versions, source run, parity numbers
      manifest.json              sha256 and size of every other file (see `bertserve.inference.manifest`)

How: torch.onnx.export with the TorchScript exporter (`dynamo=False`: the dynamo exporter emits
attention that ONNX Runtime's transformer optimizer cannot fuse) on the eager attention path, then
`onnxruntime.transformers.optimizer` (model_type "bert") fuses embeddings+LayerNorm, attention,
GELU and skip+LayerNorm. Every graph is checked against the torch model on `PARITY_TEXTS`; a fused
graph that disagrees falls back to the plain one. `quantize="int8"` applies dynamic quantisation
with QInt8 weights (QUInt8 was 2.5-3x slower on our CPUs) to the fused graph.

`ExportSettings()` defaults to fp32 ONNX, the exact reference the tests compare against; the
`bertserve export` command defaults to `--format openvino --quantize int8`, the fastest variant
measured that kept dev accuracy (docs/benchmarks.md, "Engines").

`format="openvino"` converts the plain graph to OpenVINO IR instead (`model.xml` + `model.bin`
in place of `model.onnx`; see `bertserve.export.openvino`): fp32, bf16 inference, or NNCF static
int8 calibrated on texts chosen by `bertserve.export.calibration` (the source goes in
export_config.json). Parity bounds: fp32 `FP32_TOLERANCE`; bf16 and int8 `REDUCED_TOLERANCE`,
a sanity bound against a broken graph - accuracy on dev data is the real check
(benchmarks/engines.py).

Everything is written into `BASE/.tmp-<version>-<random>/`, fsynced, then renamed to
`BASE/<version>`, so a polling server never sees half a version (dot-folders are not versions).
On any failure the temporary folder is removed and no version folder appears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bertserve import __version__
from bertserve.errors import ExportError
from bertserve.inference.model import softmax
from bertserve.layout import (EXPORT_CONFIG_FILE, LABELS_FILE, MODEL_CARD_FILE, ONNX_MODEL_FILE, OPENVINO_MODEL_FILE,
                              OPENVINO_WEIGHTS_FILE, SIGNATURE_FILE, TOKENIZER_DIR)
from bertserve.files import write_json_atomic, write_text_atomic
from bertserve.inference.manifest import write_manifest
from bertserve.inference.engines import OnnxRuntimeEngine, OpenVinoEngine
from bertserve.inference.signature import INPUT_NAMES, OUTPUT_NAME, build_signature

logger = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("none", "int8", "bf16")
FORMAT_CHOICES = ("onnx", "openvino")
# Largest |probability difference| allowed between the torch model and an fp32 graph.
FP32_TOLERANCE = 1e-4
# The same for OpenVINO bf16 and static int8: bf16 keeps ~3 significant digits and int8
# activations are rounded to 1/255 of their calibrated range, so probabilities move by up to a
# few hundredths; more than this means a broken graph, not rounding.
REDUCED_TOLERANCE = 0.1
# Varied lengths, punctuation, Latin, digits, emoji and [UNK]s: the batch that traces the graph and
# checks parity. Padding inside the batch exercises the attention mask.
PARITY_TEXTS = (
    "很好",
    "太差了",
    "房间干净，服务热情，下次还来！",
    "这本书写得一般般，不推荐购买。",
    "酒店位置不错，但是隔音太差，晚上根本睡不着觉。",
    "性价比高",
    "Wi-Fi 信号很弱，速度只有 1Mbps。",
    "价格￥399，物有所值😀",
    "不好",
    "送货很快，包装完好，电脑运行流畅，屏幕显示效果也很清晰，总体来说非常满意。",
    "呵呵",
    "早餐种类少，味道也一般；前台态度冷淡。",
    "THE BEST hotel in Beijing!!!",
    "一般",
    "我买的是黑色款，收到的却是白色款，联系客服也没人回复，非常失望……",
    "第二次入住了，依然满意。",
    "？？？",
    "电池续航只有两个小时，和宣传的八小时差距太大。",
    "好" * 60,
    "環境優美，交通便利",
)


@dataclass(frozen=True)
class ExportSettings:
    version: int | None = None  # None: the current Unix timestamp, like TF Serving's 1569141360
    quantize: str = "none"  # "none" (fp32); "int8": onnx dynamic (QInt8 weights), openvino static (NNCF); "bf16": openvino only
    opset: int = 17  # ONNX opset; 17 is the first with LayerNormalization and runs on every ORT >= 1.14
    force: bool = False  # replace an existing BASE/<version>
    optimize: bool = True  # fuse with ONNX Runtime's transformer optimizer (needs ORT contrib ops to run)
    format: str = "onnx"  # "onnx" (model.onnx, ONNX Runtime) or "openvino" (model.xml + model.bin)
    calibration_data: str | None = None  # static int8: texts file; None = the run's dev data, else parity texts
    calibration_size: int = 300  # static int8: calibration texts used (NNCF's default subset size)


@dataclass
class ExportResult:
    path: Path
    version: int
    model_bytes: int
    parity_max_abs_diff: float  # max |p_torch - p_onnx| over PARITY_TEXTS, final graph
    seconds: float
    optimized: bool
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        kind = {"int8": "int8", "bf16": "bf16"}.get(self.details.get("quantize", "none"), "fp32")
        if self.details.get("format") == "openvino":
            files, how = f"{OPENVINO_MODEL_FILE}+{OPENVINO_WEIGHTS_FILE}", f"openvino {kind}"
        else:
            files, how = ONNX_MODEL_FILE, f"{kind}, {'fused' if self.optimized else 'unfused'}"
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
    if settings.calibration_size < 1:
        raise ExportError(f"--calibration-size must be a positive integer, got {settings.calibration_size}")
    if settings.calibration_data is not None:
        if (settings.format, settings.quantize) != ("openvino", "int8"):
            raise ExportError("--calibration-data is only used by --format openvino --quantize int8 (static int8)")
        if not Path(settings.calibration_data).is_file():
            raise ExportError(f"--calibration-data {settings.calibration_data} does not exist")
    if settings.version is not None and settings.version <= 0:
        raise ExportError(f"--version must be a positive integer, got {settings.version}")
    if not 14 <= settings.opset <= 20:
        # 14 is the first opset with the ops BERT needs on this exporter; 20 is its newest.
        raise ExportError(f"--opset must be between 14 and 20, got {settings.opset}")


def torch_probabilities(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model(**{name: torch.from_numpy(value) for name, value in inputs.items()}).logits
    return softmax(logits.float().numpy())


def onnx_probabilities(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return softmax(OnnxRuntimeEngine(path).run(inputs))


def export_torchscript(model: Any, inputs: dict[str, np.ndarray], path: Path, opset: int) -> None:
    """Trace `model` to ONNX with the three token inputs and a `logits` output, batch and sequence dynamic."""
    import torch

    class LogitsOnly(torch.nn.Module):
        """The classifier with positional inputs and a bare logits tensor, as ONNX wants."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    # eval(): torch.onnx.export restores the wrapper's training flag afterwards, and a fresh Module
    # starts in training mode, which would switch dropout on in the model we compare against.
    wrapper = LogitsOnly(model).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    example = tuple(torch.from_numpy(inputs[name]) for name in INPUT_NAMES)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated and chatty about tracing; both are expected here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as error:  # the exporter raises many untyped errors
        raise ExportError(f"torch.onnx.export failed (opset {opset}): {error}") from error


@contextlib.contextmanager
def quiet_logging(level: int) -> Iterator[None]:
    """Silence log records up to `level` (ONNX Runtime's tools log to module-named and root loggers)."""
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def optimize_graph(source: Path, target: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Fuse with ONNX Runtime's BERT optimizer (Python fusions only: the graph stays portable across
    ORT versions and devices); return the counts of fused operators."""
    from onnxruntime.transformers import optimizer

    with quiet_logging(logging.INFO):  # one INFO line per fusion pass; we report the counts instead
        optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
        optimized.save_model_to_file(str(target))
        statistics = optimized.get_fused_operator_statistics()
    return {name: count for name, count in statistics.items() if count}


def quantize_graph(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a generic "consider pre-processing" warning on the root logger; it does not
    # apply to dynamic quantisation of a transformer, so keep it off the user's screen.
    with quiet_logging(logging.WARNING):
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            # The fused graph's contrib ops lack type info for the quantizer; assume float tensors.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def build_openvino_graph(
    plain: Path, folder: Path, settings: ExportSettings, calibration: list[dict[str, np.ndarray]],
    inputs: dict[str, np.ndarray], expected: np.ndarray,
) -> dict[str, Any]:
    """Write `folder/model.xml` + `model.bin` from the plain ONNX graph; check parity as served."""
    from bertserve.export.openvino import write_openvino_model

    facts = write_openvino_model(plain, folder, settings.quantize, calibration)
    engine = OpenVinoEngine(folder / OPENVINO_MODEL_FILE, inference_precision=facts["inference_precision"])
    difference = float(np.abs(softmax(engine.run(inputs)) - expected).max())
    tolerance = FP32_TOLERANCE if settings.quantize == "none" else REDUCED_TOLERANCE
    if difference > tolerance:
        raise ExportError(
            f"the OpenVINO {settings.quantize} graph disagrees with the torch model (max |dp| {difference:.2e} > "
            f"{tolerance:.0e}); try another --quantize or --calibration-data"
        )
    return {"optimized": True, "fused_operators": {}, "parity_max_abs_diff": difference, "parity_tolerance": tolerance,
            "engine": {"format": "openvino", "inference_precision": facts.pop("inference_precision")}, **facts}


def build_model_graph(
    run: Any, folder: Path, settings: ExportSettings, inputs: dict[str, np.ndarray],
    calibration: list[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Write the model file(s) and return facts about how they were made (fusion, parity)."""
    model = run.model
    # The eager attention path is the one ONNX Runtime's optimizer recognises and fuses.
    model.set_attn_implementation("eager")
    expected = torch_probabilities(model, inputs)
    work = folder / "_work"
    work.mkdir()
    plain = work / "plain.onnx"
    export_torchscript(model, inputs, plain, settings.opset)
    plain_diff = float(np.abs(onnx_probabilities(plain, inputs) - expected).max())
    if plain_diff > FP32_TOLERANCE:
        raise ExportError(f"the exported graph disagrees with the torch model (max |dp| {plain_diff:.2e}); cannot export")
    facts: dict[str, Any] = {"plain_parity_max_abs_diff": plain_diff, "optimized": False, "fused_operators": {}}
    if settings.format == "openvino":
        facts |= build_openvino_graph(plain, folder, settings, calibration or [], inputs, expected)
        shutil.rmtree(work)
        return facts
    fp32 = plain
    if settings.optimize:
        fused = work / "fused.onnx"
        try:
            facts["fused_operators"] = optimize_graph(plain, fused, model.config.num_attention_heads, model.config.hidden_size)
            fused_diff = float(np.abs(onnx_probabilities(fused, inputs) - expected).max())
        except Exception as error:  # the optimizer is best effort; a plain graph still serves
            logger.warning("ONNX Runtime optimizer failed (%s); exporting the unfused graph", error)
            fused_diff = float("inf")
        if fused_diff <= FP32_TOLERANCE:
            fp32, facts["optimized"] = fused, True
            facts["fused_parity_max_abs_diff"] = fused_diff
        else:
            logger.warning("fused graph max |dp| %.2e > %.0e; exporting the unfused graph", fused_diff, FP32_TOLERANCE)
    final = folder / ONNX_MODEL_FILE
    if settings.quantize == "int8":
        quantize_graph(fp32, final)
    else:
        shutil.copyfile(fp32, final)
    facts["parity_max_abs_diff"] = float(np.abs(onnx_probabilities(final, inputs) - expected).max())
    facts["engine"] = {"format": "onnx", "inference_precision": "fp32"}
    shutil.rmtree(work)
    return facts


def write_model_card(run_dir: Path, folder: Path, facts: dict[str, Any]) -> None:
    source = Path(run_dir) / MODEL_CARD_FILE
    card = source.read_text(encoding="utf-8").rstrip() + "\n\n" if source.is_file() else "# Model card\n\n"
    lines = ["## Export", ""] + [f"- {key}: {value}" for key, value in facts.items()]
    write_text_atomic(folder / MODEL_CARD_FILE, card + "\n".join(lines) + "\n")


def fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def finalize_tree(folder: Path) -> None:
    """Make every file readable by other users (mkstemp/mkdtemp create 0600/0700, but the server
    may run as another user) and flush files and folders to disk, so the rename publishes
    complete files."""
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
            fsync_directory(path)
            continue
        path.chmod(0o644)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    folder.chmod(0o755)
    fsync_directory(folder)


def publish(temporary: Path, target: Path, force: bool) -> None:
    """Rename the finished folder into place. With `force`, the old version is moved aside first
    (a directory cannot be replaced atomically), so it is briefly absent, never half-written."""
    old = None
    if target.exists():
        if not force:
            raise ExportError(f"{target} already exists; pass --force to replace it or choose another --version")
        old = target.with_name(f".old-{target.name}-{temporary.name.rsplit('-', 1)[-1]}")
        os.rename(target, old)
    os.rename(temporary, target)
    fsync_directory(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_run(run_dir: Path | str, base_path: Path | str, settings: ExportSettings = ExportSettings()) -> ExportResult:
    from bertserve.training.run_folder import load_run

    started = time.perf_counter()
    check_settings(settings)
    run_dir, base_path = Path(run_dir), Path(base_path)
    version = settings.version if settings.version is not None else int(time.time())
    target = base_path / str(version)
    if target.exists() and not settings.force:
        raise ExportError(f"{target} already exists; pass --force to replace it or choose another --version")
    run = load_run(run_dir)
    tokenizer, labels = run.tokenizer, run.labels
    if run.model.config.max_position_embeddings < tokenizer.max_seq_length:
        raise ExportError(
            f"{run_dir}: tokenizer max_seq_length {tokenizer.max_seq_length} exceeds the model's "
            f"max_position_embeddings {run.model.config.max_position_embeddings}"
        )
    try:
        base_path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create --base-path {base_path}: {error}") from error
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_path))
    try:
        inputs = tokenizer.encode(list(PARITY_TEXTS)).as_dict()
        calibration, calibration_source = [], None
        if settings.format == "openvino" and settings.quantize == "int8":
            from bertserve.export.calibration import calibration_texts

            texts, calibration_source = calibration_texts(
                run_dir, settings.calibration_data, settings.calibration_size, PARITY_TEXTS
            )
            calibration = [tokenizer.encode([text]).as_dict() for text in texts]
        facts = build_model_graph(run, temporary, settings, inputs, calibration)
        facts["calibration_source"] = calibration_source
        tokenizer.save(temporary / TOKENIZER_DIR)
        write_json_atomic(temporary / LABELS_FILE, {"labels": list(labels)})
        signature = build_signature(labels, tokenizer.max_seq_length, tokenizer.lowercase, tokenizer.vocab_size)
        write_json_atomic(temporary / SIGNATURE_FILE, signature)
        model_files = [ONNX_MODEL_FILE] if settings.format == "onnx" else [OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE]
        model_bytes = sum((temporary / name).stat().st_size for name in model_files)
        seconds = time.perf_counter() - started
        config = {
            "settings": asdict(settings) | {"version": version},
            "source_run": str(run_dir.resolve()),
            "source_run_config": run.config,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(seconds, 3),
            "model_bytes": model_bytes,
            "fp32_tolerance": FP32_TOLERANCE,
            "parity_texts": len(PARITY_TEXTS),
            **facts,
            "library_versions": library_versions(),
            "command": sys.argv,
        }
        write_json_atomic(temporary / EXPORT_CONFIG_FILE, config)
        write_model_card(
            run_dir,
            temporary,
            {
                "version": version,
                "source run": run_dir.resolve(),
                "format": settings.format,
                "quantize": settings.quantize,
                "opset": settings.opset,
                "fused operators": facts["fused_operators"] or ("by OpenVINO at load" if settings.format == "openvino" else "none"),
                "calibration": calibration_source or "none (not static int8)",
                "parity max |p_torch - p_export|": f"{facts['parity_max_abs_diff']:.2e} on {len(PARITY_TEXTS)} texts",
                f"{' + '.join(model_files)} bytes": model_bytes,
            },
        )
        write_manifest(temporary)
        finalize_tree(temporary)
        publish(temporary, target, settings.force)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return ExportResult(
        path=target,
        version=version,
        model_bytes=model_bytes,
        parity_max_abs_diff=facts["parity_max_abs_diff"],
        seconds=time.perf_counter() - started,
        optimized=facts["optimized"],
        details={"quantize": settings.quantize, "format": settings.format, **facts},
    )
