"""export_run: the version folder's files and manifest, parity with the torch model, atomic publish."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import numpy as np
import onnx
import pytest

import bertserve.export.version as export_module
import bertserve.files as files_module
from bertserve.errors import ExportError, RunFolderError
from bertserve.export.version import ExportSettings, export_run
from bertserve.inference.model import ExportedModel, softmax

EXPECTED_FILES = {
    "model.onnx",
    "labels.json",
    "signature.json",
    "model_card.md",
    "export_config.json",
    "tokenizer/vocab.txt",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_settings.json",
}

# Not the texts export checks itself with: lengths 1-200 characters, punctuation, Latin, digits,
# emoji, traditional characters and characters outside the vocabulary.
PARITY_TEXTS = [
    "好",
    "差评",
    "还行吧",
    "这家店的菜很好吃，服务也周到。",
    "等了一个小时才上菜，太慢了！",
    "iPhone 15 Pro 用了三天就发热严重",
    "Great value for money.",
    "５星好评！！！",
    "质量不错😊👍",
    "不推荐，退货了。" * 5,
    "物流：3天；包装：完好；价格：￥59.9",
    "書的內容很充實",
    "嗯",
    "房间很小，窗户对着墙，空调还漏水，前台说没有别的房间可换。",
    "孩子很喜欢这个玩具",
    "一般般吧，没有想象中那么好，也没有那么差",
    "垃圾",
    "酒店 环境 还可以 就是 早餐 太 简单",
    "很好" * 100,
    "𠀀𠀁 罕见字",
]


def test_version_folder_files_and_manifest(tiny_export):
    base = tiny_export.parent
    assert [path.name for path in base.iterdir()] == ["1"]  # no temporary folder left behind
    present = {path.relative_to(tiny_export).as_posix() for path in tiny_export.rglob("*") if path.is_file()}
    assert present == EXPECTED_FILES | {"manifest.json"}
    manifest = json.loads((tiny_export / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == 1 and manifest["algorithm"] == "sha256"
    assert set(manifest["files"]) == EXPECTED_FILES
    for relative, entry in manifest["files"].items():
        data = (tiny_export / relative).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert json.loads((tiny_export / "labels.json").read_text(encoding="utf-8")) == {"labels": ["negative", "positive"]}
    assert (tiny_export / "model.onnx").stat().st_mode & 0o444 == 0o444  # readable by a server run as another user


def test_signature_and_graph_agree(tiny_export):
    signature = json.loads((tiny_export / "signature.json").read_text(encoding="utf-8"))
    token_input = {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]}
    assert signature["inputs"] == {name: token_input for name in ("input_ids", "attention_mask", "token_type_ids")}
    assert signature["outputs"] == {"logits": {"dtype": "float32", "shape": [-1, 2], "dims": ["batch", "num_labels"]}}
    assert (signature["signature_name"], signature["method_name"]) == ("serving_default", "tensorflow/serving/predict")
    assert (signature["labels"], signature["max_seq_length"], signature["vocab_size"]) == (["negative", "positive"], 128, 21128)

    graph = onnx.load(str(tiny_export / "model.onnx")).graph

    def dims(value):
        return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]

    assert [(value.name, value.type.tensor_type.elem_type, dims(value)) for value in graph.input] == [
        (name, onnx.TensorProto.INT64, ["batch", "sequence"]) for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    assert [(value.name, value.type.tensor_type.elem_type, dims(value)) for value in graph.output] == [
        ("logits", onnx.TensorProto.FLOAT, ["batch", 2])
    ]
    # ONNX Runtime's BERT optimizer fused the attention (the reason for dynamo=False and eager attention).
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization"} <= {node.op_type for node in graph.node}


def test_export_config_and_model_card(tiny_export, tiny_run):
    config = json.loads((tiny_export / "export_config.json").read_text(encoding="utf-8"))
    assert config["settings"] == {
        "version": 1, "quantize": "none", "opset": 17, "force": False, "optimize": True,
        "format": "onnx", "calibration_data": None, "calibration_size": 300,
        "max_accuracy_drop": 0.5, "strict_accuracy": False, "fp32_variant": False,
    }
    assert config["engine"] == {"format": "onnx", "inference_precision": "fp32"}
    assert config["calibration_source"] is None
    assert config["source_run"] == str(tiny_run.resolve())
    assert config["optimized"] is True and config["fused_operators"]["Attention"] == 2
    assert config["parity_max_abs_diff"] <= 1e-4
    assert {"torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy"} <= set(config["library_versions"])
    card = (tiny_export / "model_card.md").read_text(encoding="utf-8")
    assert "## Export" in card and "- quantize: none" in card


def test_fp32_parity_with_the_training_model(tiny_export, tiny_run):
    import torch

    from bertserve.training.run_folder import load_run

    run = load_run(tiny_run)
    encoded = run.tokenizer.encode(PARITY_TEXTS)
    with torch.no_grad():
        logits = run.model(**{name: torch.from_numpy(value) for name, value in encoded.as_dict().items()}).logits
    expected = softmax(logits.numpy())
    model = ExportedModel.load(tiny_export, threads=1)
    batched = model.predict_texts(PARITY_TEXTS)
    assert np.abs(batched - expected).max() <= 1e-4
    # One text at a time (no padding) agrees with the padded batch: the attention mask is honoured.
    one_by_one = np.concatenate([model.predict_texts([text]) for text in PARITY_TEXTS])
    assert np.abs(one_by_one - batched).max() <= 1e-5


def test_existing_version_is_refused_without_force(tiny_export, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_export, base / "1")
    with pytest.raises(ExportError, match=r"1 already exists; pass --force to replace it or choose another --version"):
        export_run("/nonexistent/run", base, ExportSettings(version=1))


def test_missing_run_and_bad_settings(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        export_run(tmp_path / "no-run", tmp_path / "base", ExportSettings(version=1))
    with pytest.raises(ExportError, match=r"--quantize must be one of \['none', 'int8', 'bf16'\]"):
        export_run(tmp_path / "no-run", tmp_path / "base", ExportSettings(quantize="fp16"))
    with pytest.raises(ExportError, match="--opset must be between 14 and 20, got 9"):
        export_run(tmp_path / "no-run", tmp_path / "base", ExportSettings(opset=9))
    assert not (tmp_path / "base").exists()


def test_failure_mid_export_leaves_nothing_behind(tiny_run, tmp_path, monkeypatch):
    def half_written(run, folder, settings, inputs, *calibration):
        (folder / "model.onnx").write_bytes(b"half a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(export_module, "build_model_graph", half_written)
    base = tmp_path / "base"
    with pytest.raises(OSError, match="No space left"):
        export_run(tiny_run, base, ExportSettings(version=3))
    assert list(base.iterdir()) == []


def test_publish_is_one_rename_of_a_complete_folder(tiny_run, tmp_path, monkeypatch):
    """Until the rename, BASE holds only the dot-prefixed temporary folder (never a partial
    BASE/<version>); a failing rename removes it. The default version is the Unix time."""
    seen = {}

    def failing_publish(temporary, target, replace):
        seen["listing"] = sorted(path.name for path in target.parent.iterdir())
        seen["files"] = {path.relative_to(temporary).as_posix() for path in temporary.rglob("*") if path.is_file()}
        seen["target"] = target
        raise OSError("rename failed")

    monkeypatch.setattr(files_module, "swap_into_place", failing_publish)
    base = tmp_path / "base"
    before = int(time.time())
    with pytest.raises(OSError, match="rename failed"):
        export_run(tiny_run, base, ExportSettings())
    version = int(seen["target"].name)
    assert before <= version <= int(time.time())
    assert len(seen["listing"]) == 1 and seen["listing"][0].startswith(f".{version}.tmp-")
    assert seen["files"] == EXPECTED_FILES | {"manifest.json"}
    assert list(base.iterdir()) == []


def test_model_card_keeps_the_run_card_and_adds_export_facts(tmp_path):
    run_dir, folder = tmp_path / "run", tmp_path / "export"
    run_dir.mkdir()
    folder.mkdir()
    (run_dir / "model_card.md").write_text("# ChnSentiCorp classifier\n\nTrained on hotel reviews.\n", encoding="utf-8")
    export_module.write_model_card(run_dir, folder, {"version": 5, "quantize": "int8"})
    assert (folder / "model_card.md").read_text(encoding="utf-8") == (
        "# ChnSentiCorp classifier\n\nTrained on hotel reviews.\n\n## Export\n\n- version: 5\n- quantize: int8\n"
    )
