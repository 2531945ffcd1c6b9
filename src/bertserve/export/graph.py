"""The model files of one run: torch -> ONNX -> (fused / int8 ONNX | OpenVINO IR), checked.

    facts = build_model_graph(run, folder, settings, parity_inputs, calibration, dev)

writes `folder/model.onnx` (or `model.xml` + `model.bin`) and returns what export_config.json
records about it: fusion, parity with the torch model (`bertserve.export.parity`), calibration
and, for int8/bf16, the dev accuracy check (`bertserve.export.accuracy`). The plain traced graph is
the fp32 reference for that check; it lives in `folder/_work/` and is removed before returning.
A fused graph that disagrees with torch falls back to the plain one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bertserve.errors import ExportError
from bertserve.export.accuracy import check_accuracy
from bertserve.export.dev_split import DevSplit
from bertserve.export.onnx import export_torchscript, optimize_graph, quantize_graph
from bertserve.export.parity import FP32_TOLERANCE, REDUCED_TOLERANCE, max_difference, torch_probabilities
from bertserve.inference.engines import OnnxRuntimeEngine, OpenVinoEngine
from bertserve.layout import FP32_VARIANT, ONNX_MODEL_FILE, OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE, VARIANTS_DIR

logger = logging.getLogger(__name__)

WORK_DIR = "_work"  # scratch graphs inside the temporary version folder; removed before publishing
# Dev texts NNCF's accuracy control validates with, one engine call each per validation, ranking and
# every step: on m3e-small with all 1,200 ChnSentiCorp dev texts it had not finished after 21 minutes
# on our busy 2 cores. The final verdict is still measured on the whole split.
RECOVERY_TEXTS = 300


def openvino_parity(folder: Path, precision: str, inputs: dict[str, np.ndarray], expected: np.ndarray,
                    quantize: str) -> float:
    engine = OpenVinoEngine(folder / OPENVINO_MODEL_FILE, inference_precision=precision)
    difference = max_difference(engine, inputs, expected)
    tolerance = FP32_TOLERANCE if quantize == "none" else REDUCED_TOLERANCE
    if difference > tolerance:
        raise ExportError(
            f"the OpenVINO {quantize} graph disagrees with the torch model (max |dp| {difference:.2e} > "
            f"{tolerance:.0e}); try another --quantize or --calibration-data"
        )
    return difference


def build_openvino_graph(
    plain: Path, folder: Path, settings: Any, calibration: list[dict[str, np.ndarray]],
    inputs: dict[str, np.ndarray], expected: np.ndarray,
) -> dict[str, Any]:
    """Write `folder/model.xml` + `model.bin` from the plain ONNX graph; check parity as served."""
    from bertserve.export.openvino import write_openvino_model

    facts = write_openvino_model(plain, folder, settings.quantize, calibration)
    precision = facts.pop("inference_precision")
    difference = openvino_parity(folder, precision, inputs, expected, settings.quantize)
    tolerance = FP32_TOLERANCE if settings.quantize == "none" else REDUCED_TOLERANCE
    return {"optimized": True, "fused_operators": {}, "parity_max_abs_diff": difference, "parity_tolerance": tolerance,
            "engine": {"format": "openvino", "inference_precision": precision}, **facts}


def build_fp32_variant(plain: Path, folder: Path, inputs: dict[str, np.ndarray], expected: np.ndarray) -> dict[str, Any]:
    """`--fp32-variant`: write the unquantised IR to `folder/variants/fp32/` beside the int8 model.
    Int8 is not faster everywhere: on an AVX2 CPU without VNNI the fp32 IR of m3e-small took ~20 %
    less CPU per call than its int8 IR (docs/benchmarks.md), so the server measures both at load."""
    from bertserve.export.openvino import write_openvino_model

    variant = folder / VARIANTS_DIR / FP32_VARIANT
    variant.mkdir(parents=True)
    write_openvino_model(plain, variant, "none", [])
    difference = openvino_parity(variant, "fp32", inputs, expected, "none")
    size = sum((variant / name).stat().st_size for name in (OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE))
    return {FP32_VARIANT: {"path": f"{VARIANTS_DIR}/{FP32_VARIANT}/{OPENVINO_MODEL_FILE}", "inference_precision": "fp32",
                           "parity_max_abs_diff": difference, "model_bytes": size}}


def build_onnx_graph(
    plain: Path, folder: Path, settings: Any, model_config: Any, inputs: dict[str, np.ndarray], expected: np.ndarray,
) -> dict[str, Any]:
    """Write `folder/model.onnx`: fused when the fusion keeps parity, dynamic int8 if asked."""
    facts: dict[str, Any] = {"optimized": False, "fused_operators": {}}
    fp32 = plain
    if settings.optimize:
        fused = plain.with_name("fused.onnx")
        try:
            facts["fused_operators"] = optimize_graph(plain, fused, model_config.num_attention_heads, model_config.hidden_size)
            fused_diff = max_difference(OnnxRuntimeEngine(fused), inputs, expected)
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
    facts["parity_max_abs_diff"] = max_difference(OnnxRuntimeEngine(final), inputs, expected)
    facts["engine"] = {"format": "onnx", "inference_precision": "fp32"}
    return facts


def openvino_recovery(
    plain: Path, folder: Path, settings: Any, calibration: list[dict[str, np.ndarray]], tokenizer: Any,
    dev: DevSplit, facts: dict[str, Any], inputs: dict[str, np.ndarray], expected: np.ndarray,
) -> Callable[[], str]:
    """Re-quantise with NNCF's accuracy control on the dev split (replaces model.xml/.bin)."""
    from bertserve.export.openvino import AccuracyControl, write_openvino_model

    def recover() -> str:
        # Evenly spread over the split (files are often sorted by label), at most RECOVERY_TEXTS.
        step = max(1, -(-len(dev) // RECOVERY_TEXTS))
        pairs = list(zip(dev.texts, dev.label_ids or []))[::step]
        items = [(tokenizer.encode([text]).as_dict(), label) for text, label in pairs]
        control = AccuracyControl(items, max_drop=settings.max_accuracy_drop / 100)
        try:
            new_facts = write_openvino_model(plain, folder, "int8", calibration, accuracy_control=control)
        except ExportError as error:  # the plain int8 files are still in place
            logger.warning("int8 accuracy recovery failed: %s", error)
            return f"failed: {error}"
        facts["quantization"] = new_facts["quantization"]
        facts["parity_max_abs_diff"] = openvino_parity(folder, new_facts["inference_precision"], inputs, expected, "int8")
        return f"NNCF quantize_with_accuracy_control on {len(items)} dev texts (sensitive layers back in fp32)"

    return recover


def build_model_graph(
    run: Any, folder: Path, settings: Any, inputs: dict[str, np.ndarray],
    calibration: list[dict[str, np.ndarray]] | None = None, dev: DevSplit | None = None,
) -> dict[str, Any]:
    """Write the model file(s) of `run` into `folder`; return facts about how they were made."""
    model = run.model
    # The eager attention path is the one ONNX Runtime's optimizer recognises and fuses.
    model.set_attn_implementation("eager")
    expected = torch_probabilities(model, inputs)
    work = folder / WORK_DIR
    work.mkdir()
    try:
        plain = work / "plain.onnx"
        export_torchscript(model, inputs, plain, settings.opset)
        reference = OnnxRuntimeEngine(plain)
        plain_diff = max_difference(reference, inputs, expected)
        if plain_diff > FP32_TOLERANCE:
            raise ExportError(f"the exported graph disagrees with the torch model (max |dp| {plain_diff:.2e}); cannot export")
        facts: dict[str, Any] = {"plain_parity_max_abs_diff": plain_diff}
        recover = None
        if settings.format == "openvino":
            facts |= build_openvino_graph(plain, folder, settings, calibration or [], inputs, expected)
            load = lambda: OpenVinoEngine(folder / OPENVINO_MODEL_FILE,  # noqa: E731
                                          inference_precision=facts["engine"]["inference_precision"])
            if settings.quantize == "int8" and dev is not None and dev.label_ids:
                recover = openvino_recovery(plain, folder, settings, calibration or [], run.tokenizer, dev, facts,
                                            inputs, expected)
            if settings.fp32_variant:
                facts["variants"] = build_fp32_variant(plain, folder, inputs, expected)
        else:
            facts |= build_onnx_graph(plain, folder, settings, model.config, inputs, expected)
            load = lambda: OnnxRuntimeEngine(folder / ONNX_MODEL_FILE)  # noqa: E731
        if settings.quantize != "none":
            facts |= check_accuracy(settings.quantize, reference, load, recover, run.tokenizer, dev,
                                    settings.max_accuracy_drop, settings.strict_accuracy)
        return facts
    finally:
        shutil.rmtree(work, ignore_errors=True)
