"""OnnxRuntimeEngine: session settings, inputs and outputs, and clear errors for bad models."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime
import pytest

from bertserve.errors import ExportError
from bertserve.runtime import CPU_PROVIDER, OnnxRuntimeEngine, providers_for


@pytest.fixture(scope="module")
def engine(tiny_export):
    return OnnxRuntimeEngine(tiny_export / "model.onnx", threads=1)


def test_engine_runs_a_batch_to_float32_logits(engine, chinese_tokenizer):
    assert engine.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert engine.providers == (CPU_PROVIDER,)
    logits = engine.run(chinese_tokenizer.encode(["很好", "太差了，不推荐"]).as_dict())
    assert logits.dtype == np.float32
    assert logits.shape == (2, 2)


def test_engine_accepts_int32_inputs_and_casts_them(engine, chinese_tokenizer):
    inputs = chinese_tokenizer.encode(["很好"]).as_dict()
    expected = engine.run(inputs)
    as_int32 = {name: value.astype(np.int32) for name, value in inputs.items()}
    np.testing.assert_array_equal(engine.run(as_int32), expected)


def test_session_options(engine, tiny_export):
    options = engine.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    default = OnnxRuntimeEngine(tiny_export / "model.onnx")
    assert default.session.get_session_options().intra_op_num_threads == os.cpu_count()


def test_missing_input_is_named(engine, chinese_tokenizer):
    inputs = chinese_tokenizer.encode(["很好"]).as_dict()
    del inputs["token_type_ids"]
    with pytest.raises(ExportError, match=r"missing model inputs \['token_type_ids'\]"):
        engine.run(inputs)


def test_missing_and_corrupt_models_raise_export_error(tmp_path):
    with pytest.raises(ExportError, match="ONNX model not found"):
        OnnxRuntimeEngine(tmp_path / "nope.onnx")
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ExportError, match="ONNX Runtime cannot load this model"):
        OnnxRuntimeEngine(garbage)
    with pytest.raises(ExportError, match="threads must be a positive integer"):
        OnnxRuntimeEngine(garbage, threads=0)


def test_providers_for_devices():
    assert providers_for("cpu") == [CPU_PROVIDER]
    cuda = providers_for("cuda")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert cuda == ["CUDAExecutionProvider", CPU_PROVIDER]
    else:  # asked for but absent: fall back to CPU rather than fail
        assert cuda == [CPU_PROVIDER]
    with pytest.raises(ExportError, match="unknown device 'tpu'"):
        providers_for("tpu")
