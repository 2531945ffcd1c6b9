"""OnnxRuntimeEngine: session settings, inputs and outputs, and clear errors for bad models."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime
import pytest

from bertserve.errors import ExportError
from bertserve.inference.engines import CPU_PROVIDER, OnnxRuntimeEngine, OpenVinoEngine, create_engine, providers_for


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


# ---- OpenVINO engine and create_engine ---------------------------------------------------------


def test_openvino_engine_runs_onnx_and_matches_onnxruntime(engine, tiny_export, chinese_tokenizer):
    inputs = chinese_tokenizer.encode(["很好", "太差了，不推荐"]).as_dict()
    openvino = OpenVinoEngine(tiny_export / "model.onnx", threads=1)
    assert openvino.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert openvino.config == {
        "INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,
    }
    logits = openvino.run(inputs)
    assert logits.dtype == np.float32 and logits.shape == (2, 2)
    np.testing.assert_allclose(logits, engine.run(inputs), atol=1e-4)
    assert openvino.run({name: value.astype(np.int32) for name, value in inputs.items()}).shape == (2, 2)


def test_openvino_engine_options_and_compile_cache(tiny_export, tmp_path):
    cache = tmp_path / "cache"
    openvino = OpenVinoEngine(
        tiny_export / "model.onnx", threads=2, performance_hint="THROUGHPUT", num_streams=2, cache_dir=cache
    )
    assert str(openvino.compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
    assert int(openvino.compiled.get_property("NUM_STREAMS")) == 2
    assert int(openvino.compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert any(cache.iterdir())  # the compiled blob is cached for the next start


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threads": 0}, "threads must be a positive integer"),
        ({"performance_hint": "FAST"}, r"performance hint must be one of \['LATENCY', 'THROUGHPUT'\]"),
        ({"inference_precision": "fp16"}, r"inference precision must be one of \['fp32', 'bf16', 'default'\]"),
        ({"num_streams": 0}, "num_streams must be a positive integer"),
    ],
)
def test_openvino_engine_bad_options(tiny_export, options, message):
    with pytest.raises(ExportError, match=message):
        OpenVinoEngine(tiny_export / "model.onnx", **options)


def test_openvino_engine_bad_models(tmp_path):
    with pytest.raises(ExportError, match="OpenVINO model not found"):
        OpenVinoEngine(tmp_path / "model.xml")
    (tmp_path / "model.xml").write_text("<net/>", encoding="utf-8")
    with pytest.raises(ExportError, match="its weights file model.bin is missing"):
        OpenVinoEngine(tmp_path / "model.xml")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ExportError, match="OpenVINO cannot load this model"):
        OpenVinoEngine(tmp_path / "model.xml")


def test_create_engine_picks_by_files_and_name(tiny_export, tmp_path):
    assert isinstance(create_engine(tiny_export, threads=1), OnnxRuntimeEngine)
    assert isinstance(create_engine(tiny_export, "onnxruntime", threads=1), OnnxRuntimeEngine)
    chosen = create_engine(tiny_export, "openvino", threads=1)
    assert isinstance(chosen, OpenVinoEngine) and chosen.path.name == "model.onnx"
    assert chosen.inference_precision == "fp32"  # an ONNX export records fp32
    assert create_engine(tiny_export, "openvino", threads=1, inference_precision="bf16").inference_precision == "bf16"
    with pytest.raises(ExportError, match=r"engine must be one of \['auto', 'onnxruntime', 'openvino'\]"):
        create_engine(tiny_export, "tensorrt")
    with pytest.raises(ExportError, match="neither model.onnx nor model.xml found"):
        create_engine(tmp_path)


def test_onnxruntime_spinning_is_off_unless_asked(engine, tiny_export):
    entries = engine.session.get_session_options().get_session_config_entry
    assert entries("session.intra_op.allow_spinning") == "0"
    spinning = OnnxRuntimeEngine(tiny_export / "model.onnx", threads=1, spinning=True)
    assert spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
