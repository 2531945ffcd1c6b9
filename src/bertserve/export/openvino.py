"""Convert an exported ONNX graph to OpenVINO IR (`model.xml` + `model.bin`), fp32, bf16 or int8.

Called by `bertserve.export.version` for `--format openvino`; not used on its own:

    facts = write_openvino_model(plain_onnx, folder, "int8", calibration_inputs)
    facts = write_openvino_model(plain_onnx, folder, "int8", calibration_inputs,
                                 accuracy_control=AccuracyControl(dev_items, max_drop=0.005))

- "none" (fp32) and "bf16" write the same fp32 IR; they differ in the inference precision
  recorded in export_config.json (`engine.inference_precision`), which `OpenVinoEngine` applies
  when it compiles the model. bf16 keeps fp32 weights on disk so a CPU without bf16 still runs it.
- "int8" is static post-training quantisation with NNCF (`model_type=TRANSFORMER`, which keeps
  the attention softmax and LayerNorm-sensitive spots in float), calibrated on real texts (see
  `bertserve.export.calibration`). Its remaining float ops run in fp32 (`INT8_REST_PRECISION`): on our
  CPUs (AVX512-BF16, no AMX) that was faster than bf16 for them (BERT-base batch 1: 114 vs 130 ms
  at 75 tokens, 163 vs 186 ms at 128, interleaved under load; docs/benchmarks.md, "Engines"), and
  it is the more accurate choice. On AMX CPUs bf16 may win: load with inference_precision="bf16".
- "int8" with `accuracy_control` is NNCF's `quantize_with_accuracy_control`: quantise, then put the
  layers that cost the most dev accuracy back in fp32, one by one, until the drop is within
  `max_drop` (`bertserve.export.accuracy` calls it only when plain int8 lost too much).

Input is the plain (unfused) ONNX graph: OpenVINO applies its own fusions (attention, GELU,
LayerNorm) when it compiles, and ONNX Runtime's contrib ops would not convert.
Weights are stored in fp32 (`compress_to_fp16=False`) so fp32 parity with torch holds at 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bertserve.errors import ExportError
from bertserve.layout import OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE

logger = logging.getLogger(__name__)

# Our --quantize value -> the inference precision OpenVinoEngine compiles with.
INFERENCE_PRECISION = {"none": "fp32", "bf16": "bf16", "int8": "fp32"}
INT8_REST_PRECISION = INFERENCE_PRECISION["int8"]


@contextlib.contextmanager
def quiet_nncf() -> Iterator[None]:
    """NNCF logs INFO lines and draws progress bars (rich, on stdout); keep its warnings, and the
    bars only on a terminal, where they show progress of a calibration that takes minutes."""
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        with contextlib.ExitStack() as stack:
            if not sys.stdout.isatty():
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            yield
    finally:
        nncf_logger.setLevel(level)


# Layer groups NNCF's accuracy control may put back in fp32 (each step re-validates on the dev texts):
# a bound on export time. Past it, the export keeps the best model found and says if it is still over.
MAX_RESTORE_STEPS = 10


@dataclass(frozen=True)
class AccuracyControl:
    items: list[tuple[dict[str, np.ndarray], int]]  # (one tokenized dev text, its gold class id)
    max_drop: float  # absolute accuracy (a fraction) the int8 model may lose


def dev_accuracy_of_compiled(compiled_model: Any, items: Any) -> tuple[float, list[float]]:
    """NNCF's validation function: accuracy and the per-text 0/1 scores it ranks layers with."""
    output = compiled_model.output(0)
    scores = [float(np.argmax(compiled_model(inputs)[output]) == label) for inputs, label in items]
    return (sum(scores) / len(scores) if scores else 0.0), scores


def quantize_int8(model: Any, calibration_inputs: list[dict[str, np.ndarray]],
                  accuracy_control: AccuracyControl | None = None) -> Any:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    if not calibration_inputs:
        raise ExportError("int8 quantisation needs at least one calibration text")
    common = dict(model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration_inputs))
    with quiet_nncf():
        try:
            if accuracy_control is None:
                return nncf.quantize(model, nncf.Dataset(calibration_inputs), **common)
            return nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(calibration_inputs),
                nncf.Dataset(accuracy_control.items, lambda item: item[0]),
                dev_accuracy_of_compiled,
                max_drop=accuracy_control.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=MAX_RESTORE_STEPS),
                **common,
            )
        except Exception as error:  # NNCF raises many kinds of errors for graphs it cannot handle
            raise ExportError(f"NNCF int8 quantisation failed: {error}") from error


def write_openvino_model(
    onnx_path: Path, folder: Path, quantize: str, calibration_inputs: list[dict[str, np.ndarray]],
    accuracy_control: AccuracyControl | None = None,
) -> dict[str, Any]:
    """Write `folder/model.xml` + `folder/model.bin`; return facts for export_config.json."""
    import openvino

    if quantize not in INFERENCE_PRECISION:
        raise ExportError(f"--quantize must be one of {list(INFERENCE_PRECISION)} for OpenVINO, got {quantize!r}")
    try:
        model = openvino.convert_model(str(onnx_path))
    except Exception as error:
        raise ExportError(f"OpenVINO could not convert the ONNX graph: {error}") from error
    facts: dict[str, Any] = {"openvino_version": openvino.__version__}
    if quantize == "int8":
        model = quantize_int8(model, calibration_inputs, accuracy_control)
        facts["quantization"] = "NNCF post-training static int8, model_type=TRANSFORMER" + (
            f", accuracy control (max drop {accuracy_control.max_drop:g} on {len(accuracy_control.items)} dev texts)"
            if accuracy_control else "")
        facts["calibration_examples"] = len(calibration_inputs)
    openvino.save_model(model, str(folder / OPENVINO_MODEL_FILE), compress_to_fp16=False)
    if not (folder / OPENVINO_WEIGHTS_FILE).is_file():
        raise ExportError(f"OpenVINO wrote no {OPENVINO_WEIGHTS_FILE} beside {OPENVINO_MODEL_FILE}")
    facts["inference_precision"] = INFERENCE_PRECISION[quantize]
    return facts
