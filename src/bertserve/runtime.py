"""Inference engines: the one interface that runs an exported graph on a batch of token ids.

An `Engine` takes the model inputs as int64 numpy arrays keyed by name (`input_ids`,
`attention_mask`, `token_type_ids`, each (batch, sequence)) and returns float32 logits
(batch, num_labels). `OnnxRuntimeEngine` is the default; other engines (OpenVINO, ...) sit
beside it with the same two members so `ExportedModel` and the server never care which runs.

    from bertserve.runtime import OnnxRuntimeEngine
    engine = OnnxRuntimeEngine("models/chnsenticorp/1569141360/model.onnx", threads=2)
    logits = engine.run(encoded.as_dict())

This module never imports torch: the serving process stays torch-free.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from bertserve.errors import ExportError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class Engine(Protocol):
    """What every inference engine offers."""

    input_names: tuple[str, ...]

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits, float32 (batch, num_labels), for int64 inputs keyed by `input_names`."""
        ...


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for `device` ("cpu" or "cuda"/"gpu"), best first.

    CUDA is used only when asked for *and* this onnxruntime build has it; otherwise we fall back
    to CPU with a warning rather than failing, so one config works on both kinds of machine."""
    import onnxruntime

    device = device.lower()
    if device == "cpu":
        return [CPU_PROVIDER]
    if device in ("cuda", "gpu"):
        if CUDA_PROVIDER in onnxruntime.get_available_providers():
            return [CUDA_PROVIDER, CPU_PROVIDER]
        logger.warning("device %r asked for but onnxruntime has no CUDAExecutionProvider; using CPU", device)
        return [CPU_PROVIDER]
    raise ExportError(f"unknown device {device!r}; use 'cpu' or 'cuda'")


class OnnxRuntimeEngine:
    """Runs an ONNX graph with ONNX Runtime.

    `threads` sets intra-op parallelism (default: every core, `os.cpu_count()`); inter-op
    parallelism is off (sequential execution) because a BERT graph is one chain of big ops and
    parallel branches only add scheduling overhead. Graph optimisation level ALL lets ONNX Runtime
    apply its layout and fusion passes on top of what the export already fused."""

    def __init__(
        self,
        path: Path | str,
        threads: int | None = None,
        providers: Sequence[str] = (CPU_PROVIDER,),
    ):
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: ONNX model not found")
        if threads is not None and threads < 1:
            raise ExportError(f"threads must be a positive integer, got {threads}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = set(onnxruntime.get_available_providers())
        chosen = [provider for provider in providers if provider in available] or [CPU_PROVIDER]
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), sess_options=options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own untyped errors for bad graphs
            raise ExportError(f"{self.path}: ONNX Runtime cannot load this model: {error}") from error
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        self.input_names: tuple[str, ...] = tuple(node.name for node in self.session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(node.name for node in self.session.get_outputs())

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ExportError(f"{self.path}: missing model inputs {missing}; the graph needs {list(self.input_names)}")
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        (logits,) = self.session.run(self.output_names[:1], feed)
        return np.asarray(logits, dtype=np.float32)
