"""The peer servers' commands and their shared engine (benchmarks/peers/peer_engine.py): the Ray and
LitServe peers must compute exactly what bertserve computes on the same export."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from bertserve.bench import peers
from bertserve.errors import ConfigError


def test_venv_peer_commands_carry_the_export_batch_cap_and_precision(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setattr(peers, "PEER_VENV", venv)
    command = peers.peer_command("litserve", 8800, None, tmp_path / "1", 32, "bf16")
    assert command == [str(venv / "bin" / "python"), str(peers.PEERS_DIR / "litserve_app.py"), "--export",
                       str(tmp_path / "1"), "--port", "8800", "--max-batch-size", "32", "--precision", "bf16"]
    command = peers.peer_command("ray", 8700, None, tmp_path / "1", 8)
    assert command[1] == str(peers.PEERS_DIR / "ray_app.py") and "--precision" not in command
    assert (peers.PEERS_DIR / "litserve_app.py").is_file() and (peers.PEERS_DIR / "ray_app.py").is_file()


@pytest.mark.parametrize("name", ["ray", "litserve"])
def test_venv_peers_need_the_export_and_the_venv(name, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=f"--peers {name} needs --engine-dir VERSION_DIR"):
        peers.peer_command(name, 1, None, None, 8)
    monkeypatch.setattr(peers, "PEER_VENV", tmp_path / "none")
    with pytest.raises(ConfigError, match="run `bash benchmarks/peers/setup_peer_venv.sh`"):
        peers.peer_command(name, 1, None, tmp_path, 8)
    with pytest.raises(ConfigError, match="unknown peer 'triton'; choose from naive, ray, litserve"):
        peers.peer_command("triton", 1, None, tmp_path, 8)


@pytest.fixture(scope="module")
def peer_engine_module():
    spec = importlib.util.spec_from_file_location("peer_engine", peers.PEERS_DIR / "peer_engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "bertserve" not in {name.split(".")[0] for name in vars(module) if name != "__builtins__"}
    return module


def test_the_peer_engine_answers_like_bertserve(peer_engine_module, tiny_export):
    from bertserve.inference.model import ExportedModel

    texts = ["很好", "这家酒店的房间太小了，隔音很差，不推荐。" * 20, "Good value 价格合理"]  # the long one is truncated
    expected = ExportedModel.load(tiny_export, verify=False, threads=1).predict_texts(texts)
    runtime = peer_engine_module.PeerEngine(tiny_export, threads=1)  # model.onnx: ONNX Runtime
    assert runtime.description == "ONNX Runtime, 1 threads"
    np.testing.assert_allclose(np.array(runtime.predict(texts)), expected, atol=1e-5)


def test_the_peer_engine_truncates_head_and_tail_like_bertserve(peer_engine_module, tiny_export, tmp_path):
    import json
    import shutil

    from bertserve.tokenizer import load_saved_tokenizer

    folder = tmp_path / "1"
    shutil.copytree(tiny_export, folder)
    settings = folder / "tokenizer" / "tokenizer_settings.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "truncation": "head+tail"}))
    texts = ["开头" + "中间的内容很长" * 40 + "结尾很差", "很好"]
    expected = load_saved_tokenizer(folder / "tokenizer").token_ids(texts)
    engine = peer_engine_module.PeerEngine(folder, threads=1)
    seen = []
    engine._run = lambda feed: seen.append(feed) or np.zeros((len(texts), 2), dtype=np.float32)
    engine.predict(texts)
    ids, mask = seen[0]["input_ids"], seen[0]["attention_mask"]
    assert [row[mask[index] == 1].tolist() for index, row in enumerate(ids)] == expected
    assert len(expected[0]) == 128  # the long text was cut (head+tail keeps its end too)


def test_the_peer_engine_runs_openvino_ir_at_the_precision_given(peer_engine_module, tiny_export, tmp_path):
    import shutil

    import openvino

    folder = tmp_path / "1"
    shutil.copytree(tiny_export, folder)
    openvino.save_model(openvino.Core().read_model(str(folder / "model.onnx")), str(folder / "model.xml"),
                        compress_to_fp16=False)
    (folder / "model.onnx").unlink()
    engine = peer_engine_module.PeerEngine(folder, precision="fp32", threads=1)
    assert engine.description == "OpenVINO fp32, 1 threads"
    from bertserve.inference.model import ExportedModel

    expected = ExportedModel.load(tiny_export, verify=False, threads=1).predict_texts(["很好", "太差了"])
    np.testing.assert_allclose(np.array(engine.predict(["很好", "太差了"])), expected, atol=1e-4)
