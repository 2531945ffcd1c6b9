"""Convert an exported ONNX graph to OpenVINO IR (`model.xml` + `model.bin`), fp32, bf16 or int8.

Called by `bertserve.export.version` for `--format openvino`; not used on its own:

    facts = write_openvino_model(plain_onnx, folder, "int8", calibration_inputs)

- "none" (fp32) and "bf16" write the same fp32 IR; they differ in the inference precision
  recorded in export_config.json (`engine.inference_precision`), which `OpenVinoEngine` applies
  when it compiles the model. bf16 keeps fp32 weights on disk so a CPU without bf16 still runs it.
- "int8" is static post-training quantisation with NNCF (`model_type=TRANSFORMER`, which keeps
  the attention softmax and LayerNorm-sensitive spots in float), calibrated on real texts (see
  `bertserve.export.calibration`). Its remaining float ops run in fp32 (`INT8_REST_PRECISION`): on our
  CPUs (AVX512-BF16, no AMX) that was faster than bf16 for them (BERT-base batch 1: 114 vs 130 ms
  at 75 tokens, 163 vs 186 ms at 128, interleaved under load; docs/benchmarks.md, "Engines"), and
  it is the more accurate choice. On AMX CPUs bf16 may win: load with inference_precision="bf16".

Input is the plain (unfused) ONNX graph: OpenVINO applies its own fusions (attention, GELU,
LayerNorm) when it compiles, and ONNX Runtime's contrib ops would not convert.
Weights are stored in fp32 (`compress_to_fp16=False`) so fp32 parity with torch holds at 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
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


def quantize_int8(model: Any, calibration_inputs: list[dict[str, np.ndarray]]) -> Any:
    import nncf

    if not calibration_inputs:
        raise ExportError("int8 quantisation needs at least one calibration text")
    with quiet_nncf():
        try:
            return nncf.quantize(
                model,
                nncf.Dataset(calibration_inputs),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration_inputs),
            )
        except Exception as error:  # NNCF raises many kinds of errors for graphs it cannot handle
            raise ExportError(f"NNCF int8 quantisation failed: {error}") from error


def write_openvino_model(
    onnx_path: Path, folder: Path, quantize: str, calibration_inputs: list[dict[str, np.ndarray]]
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
        model = quantize_int8(model, calibration_inputs)
        facts["quantization"] = "NNCF post-training static int8, model_type=TRANSFORMER"
        facts["calibration_examples"] = len(calibration_inputs)
    openvino.save_model(model, str(folder / OPENVINO_MODEL_FILE), compress_to_fp16=False)
    if not (folder / OPENVINO_WEIGHTS_FILE).is_file():
        raise ExportError(f"OpenVINO wrote no {OPENVINO_WEIGHTS_FILE} beside {OPENVINO_MODEL_FILE}")
    facts["inference_precision"] = INFERENCE_PRECISION[quantize]
    return facts
