"""Inference engines: the one interface that runs an exported graph on a batch of token ids.

An `Engine` takes the model inputs as int64 numpy arrays keyed by name (`input_ids`,
`attention_mask`, `token_type_ids`, each (batch, sequence)) and returns float32 logits
(batch, num_labels). Two engines sit behind that interface, so `ExportedModel` and the server
never care which one runs:

- `OnnxRuntimeEngine` runs `model.onnx` (fp32 or dynamic int8; CPU, or CUDA where onnxruntime
  has the CUDA provider - untested here, no GPU in CI).
- `OpenVinoEngine` runs OpenVINO IR `model.xml` + `model.bin` (fp32, bf16 inference precision,
  or NNCF static int8), or a plain `model.onnx`. On our 2-core CPUs it is the fastest path (see
  docs/benchmarks.md, section "Engines").

`create_engine(version_dir)` picks by the files an export holds (`engine="auto"`) or by name:

    from bertserve.inference.engines import create_engine
    engine = create_engine("models/chnsenticorp/1569141360", threads=2)
    logits = engine.run(encoded.as_dict())

This module never imports torch: the serving process stays torch-free.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from bertserve.errors import ExportError
from bertserve.layout import (EXPORT_CONFIG_FILE, ONNX_MODEL_FILE, OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE,
                              VARIANTS_DIR)

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

# OpenVINO IR: the graph (XML) and its raw weights. model.bin is a flat array of tensor bytes that
# model.xml indexes by offset, not a pickle; manifest.py allows it only beside model.xml.
ENGINE_CHOICES = ("auto", "onnxruntime", "openvino")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")
# Our names for OpenVINO's INFERENCE_PRECISION_HINT values. "default" leaves the hint unset: OpenVINO
# then picks by CPU (bf16 where the CPU has AVX512-BF16 or AMX, else f32). Which one is fastest
# depends on the CPU (../docs/benchmarks.md): `bertserve.inference.tuning` measures it at load.
INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "default": None}


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
    apply its layout and fusion passes on top of what the export already fused.

    `spinning` (off by default): ONNX Runtime's worker threads busy-wait after each call for the
    next one. On our 2 shared cores that steals the CPU the tokenizer, the HTTP loop and other
    processes need; measured interleaved under load, BERT-base int8 batch-1 p50 at 75 tokens
    was 219 ms spinning vs 117 ms not (docs/benchmarks.md, "Engines")."""

    kind = "onnxruntime"

    def __init__(
        self,
        path: Path | str,
        threads: int | None = None,
        providers: Sequence[str] = (CPU_PROVIDER,),
        spinning: bool = False,
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
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        available = set(onnxruntime.get_available_providers())
        chosen = [provider for provider in providers if provider in available] or [CPU_PROVIDER]
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), sess_options=options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own untyped errors for bad graphs
            raise ExportError(f"{self.path}: ONNX Runtime cannot load this model: {error}") from error
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        # What runs, for the model status and /metrics (see `bertserve.inference.tuning`). ONNX
        # Runtime runs the graph's own types (fp32, or int8 weights with fp32 activations).
        self.settings: dict[str, Any] = {
            "engine": self.kind, "precision": "graph", "hint": "LATENCY",
            "threads": options.intra_op_num_threads, "streams": 1,
        }
        self.input_names: tuple[str, ...] = tuple(node.name for node in self.session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(node.name for node in self.session.get_outputs())

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ExportError(f"{self.path}: missing model inputs {missing}; the graph needs {list(self.input_names)}")
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        (logits,) = self.session.run(self.output_names[:1], feed)
        return np.asarray(logits, dtype=np.float32)


class OpenVinoEngine:
    """Runs OpenVINO IR (`model.xml` beside `model.bin`) or an ONNX file with OpenVINO on the CPU.

    - `threads`: INFERENCE_NUM_THREADS (default: every core).
    - `performance_hint`: "LATENCY" (default: one stream, every thread on one request: the
      batch-1 serving case) or "THROUGHPUT" (several streams run requests side by side).
    - `num_streams`: overrides the hint's stream count.
    - `inference_precision`: "fp32", "bf16" or "default" (OpenVINO's choice for this CPU: bf16
      where the CPU has AVX512-BF16/AMX). Int8 layers of an NNCF-quantised model run in int8
      either way; this sets the rest. Which is fastest depends on the CPU: the server measures it
      at load (`bertserve.inference.tuning`) instead of baking one machine's answer in.
    - `cache_dir`: OpenVINO's compile cache (CACHE_DIR), so a restart skips graph compilation.
      Never inside a version folder: the manifest would refuse the cache files.
    - `cpu_pinning`: ENABLE_CPU_PINNING, off by default: OpenVINO pins its threads to cores for
      LATENCY, which hurts when the cores are shared with other processes, as on our 2-core
      machines (measured in benchmarks/engines.py, variant ov-int8-pinned).

    One infer request per calling thread, because a request is not thread-safe and the server
    may run several batches at once (`--num_batch_threads`)."""

    kind = "openvino"

    def __init__(
        self,
        path: Path | str,
        threads: int | None = None,
        performance_hint: str = "LATENCY",
        inference_precision: str = "fp32",
        num_streams: int | None = None,
        cache_dir: Path | str | None = None,
        cpu_pinning: bool = False,
    ):
        import openvino

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: OpenVINO model not found")
        if self.path.suffix == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise ExportError(f"{self.path}: its weights file {self.path.with_suffix('.bin').name} is missing; re-export")
        if threads is not None and threads < 1:
            raise ExportError(f"threads must be a positive integer, got {threads}")
        if performance_hint not in PERFORMANCE_HINTS:
            raise ExportError(f"performance hint must be one of {list(PERFORMANCE_HINTS)}, got {performance_hint!r}")
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ExportError(
                f"inference precision must be one of {list(INFERENCE_PRECISIONS)}, got {inference_precision!r}"
            )
        if num_streams is not None and num_streams < 1:
            raise ExportError(f"num_streams must be a positive integer, got {num_streams}")
        self.config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1,
            "PERFORMANCE_HINT": performance_hint,
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS[inference_precision],
            "ENABLE_CPU_PINNING": bool(cpu_pinning),
        }
        if self.config["INFERENCE_PRECISION_HINT"] is None:
            del self.config["INFERENCE_PRECISION_HINT"]
        if num_streams is not None:
            self.config["NUM_STREAMS"] = num_streams
        if cache_dir is not None:
            self.config["CACHE_DIR"] = str(cache_dir)
        self.inference_precision = inference_precision
        core = openvino.Core()
        try:
            self.compiled = core.compile_model(str(self.path), "CPU", self.config)
        except Exception as error:  # OpenVINO raises RuntimeError with its own text for any bad graph
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ExportError(f"{self.path}: OpenVINO cannot load this model: {first_line}") from error
        self.input_names: tuple[str, ...] = tuple(port.get_any_name() for port in self.compiled.inputs)
        self.output_names: tuple[str, ...] = tuple(port.get_any_name() for port in self.compiled.outputs)
        # Each input's element type as numpy's (int64 in our exports), for wrapping the buffers as-is.
        self._input_dtypes = tuple(_numpy_dtype(port) for port in self.compiled.inputs)
        self._tensor = openvino.Tensor  # for run(); openvino is imported here only, lazily
        self._requests = threading.local()
        self.settings: dict[str, Any] = {
            "engine": self.kind,
            # What OpenVINO resolved ("default" becomes f32 or bf16 here), in our names.
            "precision": _compiled_precision(self.compiled, inference_precision),
            "hint": performance_hint,
            "threads": self.config["INFERENCE_NUM_THREADS"],
            "streams": _compiled_int(self.compiled, "NUM_STREAMS", num_streams or 1),
        }

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ExportError(f"{self.path}: missing model inputs {missing}; the graph needs {list(self.input_names)}")
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        # Each numpy buffer wrapped as the request's input tensor in place: no copy, and none of
        # OpenVINO's Python input dispatching. On a tiny model that is 490 instead of 568 us per
        # batch-1 call and 1,056 instead of 1,218 us of CPU (benchmarks/engine_call.py). OpenVINO
        # reads the buffers only inside infer(), while they are alive here.
        for index, (name, dtype) in enumerate(zip(self.input_names, self._input_dtypes)):
            buffer = np.ascontiguousarray(inputs[name], dtype=dtype)
            request.set_input_tensor(index, self._tensor(buffer, shared_memory=True))
        request.infer()
        # Copy: the output tensor's memory belongs to the request and is reused by the next call.
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def _numpy_dtype(port: Any) -> np.dtype:
    """The numpy type of an OpenVINO input; int64 (our exports' ids) where the graph leaves it open."""
    try:
        return np.dtype(port.get_element_type().to_dtype())
    except Exception:  # a dynamic or unusual element type has no numpy twin
        return np.dtype(np.int64)


def _compiled_precision(compiled: Any, asked: str) -> str:
    try:
        value = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # an older OpenVINO without the read-back
        return asked
    value = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(value, value)


def _compiled_int(compiled: Any, name: str, fallback: int) -> int:
    try:
        return int(compiled.get_property(name))
    except Exception:
        return fallback


def export_engine_settings(version_dir: Path) -> dict[str, Any]:
    """The `engine` block an export recorded in export_config.json (format, precision), or {}."""
    path = Path(version_dir) / EXPORT_CONFIG_FILE
    try:
        settings = json.loads(path.read_text(encoding="utf-8")).get("engine", {}) if path.is_file() else {}
    except (OSError, ValueError, AttributeError):
        return {}  # ExportedModel reports an unreadable export_config.json itself
    return settings if isinstance(settings, dict) else {}


def resolve_engine_kind(version_dir: Path, engine: str = "auto") -> str:
    """"onnxruntime" or "openvino": `engine` itself, or for "auto" the one the folder's files call for."""
    if engine not in ENGINE_CHOICES:
        raise ExportError(f"engine must be one of {list(ENGINE_CHOICES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if (Path(version_dir) / OPENVINO_MODEL_FILE).is_file():
        return "openvino"
    if (Path(version_dir) / ONNX_MODEL_FILE).is_file():
        return "onnxruntime"
    raise ExportError(f"{version_dir}: neither {ONNX_MODEL_FILE} nor {OPENVINO_MODEL_FILE} found; re-export the model")


def available_variants(version_dir: Path | str) -> list[str]:
    """The other-precision twins an OpenVINO export carries (`variants/<name>/model.xml`), sorted."""
    folder = Path(version_dir) / VARIANTS_DIR
    if not (Path(version_dir) / OPENVINO_MODEL_FILE).is_file() or not folder.is_dir():
        return []
    return sorted(child.name for child in folder.iterdir() if (child / OPENVINO_MODEL_FILE).is_file())


def create_engine(
    version_dir: Path | str,
    engine: str = "auto",
    *,
    threads: int | None = None,
    device: str = "cpu",
    performance_hint: str = "LATENCY",
    inference_precision: str | None = None,
    num_streams: int | None = None,
    cache_dir: Path | str | None = None,
    cpu_pinning: bool = False,
    spinning: bool = False,
    variant: str | None = None,
) -> Engine:
    """The engine for an export version folder.

    `engine="auto"` follows the files: `model.xml` -> OpenVINO, `model.onnx` -> ONNX Runtime.
    "openvino" also runs a `model.onnx` (OpenVINO reads ONNX; the fused graph's ONNX Runtime
    contrib ops may not load, export with --no-optimize then). `inference_precision=None` uses
    what the export recorded (a bf16 export says "bf16"), else fp32. `device="cuda"` needs ONNX
    Runtime with its CUDA provider. `cpu_pinning` applies to OpenVINO, `spinning` to ONNX Runtime.
    `variant` ("fp32"): run `variants/<variant>/model.xml` (an OpenVINO export's unquantised twin,
    see `available_variants`) instead of the main model."""
    version_dir = Path(version_dir)
    engine = resolve_engine_kind(version_dir, engine)
    if variant is not None:
        if engine != "openvino" or variant not in available_variants(version_dir):
            raise ExportError(f"{version_dir}: no {VARIANTS_DIR}/{variant}/{OPENVINO_MODEL_FILE} for the OpenVINO engine; "
                              "re-export with --fp32-variant")
        built = OpenVinoEngine(version_dir / VARIANTS_DIR / variant / OPENVINO_MODEL_FILE, threads=threads,
                               performance_hint=performance_hint, inference_precision=inference_precision or "fp32",
                               num_streams=num_streams, cache_dir=cache_dir, cpu_pinning=cpu_pinning)
        built.settings["model"] = f"{VARIANTS_DIR}/{variant}"
        return built
    onnx_file, openvino_file = version_dir / ONNX_MODEL_FILE, version_dir / OPENVINO_MODEL_FILE
    if engine == "onnxruntime":
        if not onnx_file.is_file():
            raise ExportError(
                f"{version_dir}: no {ONNX_MODEL_FILE} for ONNX Runtime (this export holds OpenVINO IR); "
                "use engine 'openvino' or re-export with --format onnx"
            )
        return OnnxRuntimeEngine(onnx_file, threads=threads, providers=providers_for(device), spinning=spinning)
    if device.lower() != "cpu":
        raise ExportError(f"the OpenVINO engine runs on the CPU only; for device {device!r} export with --format onnx")
    if inference_precision is None:
        inference_precision = str(export_engine_settings(version_dir).get("inference_precision", "fp32"))
    return OpenVinoEngine(
        openvino_file if openvino_file.is_file() else onnx_file,
        threads=threads,
        performance_hint=performance_hint,
        inference_precision=inference_precision,
        num_streams=num_streams,
        cache_dir=cache_dir,
        cpu_pinning=cpu_pinning,
    )
