"""The torch -> ONNX step of `bertserve export`: trace, fuse with ONNX Runtime, quantise dynamically.

    export_torchscript(model, inputs, Path("plain.onnx"), opset=17)
    optimize_graph(Path("plain.onnx"), Path("fused.onnx"), num_heads=12, hidden_size=768)
    quantize_graph(Path("fused.onnx"), Path("model.onnx"))     # dynamic int8, QInt8 weights

How: torch.onnx.export with the TorchScript exporter (`dynamo=False`: the dynamo exporter emits
attention that ONNX Runtime's transformer optimizer cannot fuse) on the eager attention path, then
`onnxruntime.transformers.optimizer` (model_type "bert") fuses embeddings+LayerNorm, attention,
GELU and skip+LayerNorm. Dynamic quantisation uses QInt8 weights (QUInt8 was 2.5-3x slower on
our CPUs). `bertserve.export.graph` checks every graph against the torch model.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bertserve.errors import ExportError
from bertserve.inference.signature import INPUT_NAMES, OUTPUT_NAME


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
