"""The engine settings a server chose, shown in the model's metadata and in /metrics; and the
served answers are the same on the inline (idle) path and the worker path."""

from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest

from bertserve.inference.tuning import TuningOptions
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.server import ServerOptions
from inprocess_server import InProcessServer


@pytest.fixture(scope="module")
def base(tiny_export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine_status") / "tiny"
    shutil.copytree(tiny_export, folder / "1")
    return folder


def test_metadata_and_metrics_show_the_engine_settings(base, tmp_path):
    options = ServerOptions(port=0, poll_seconds=0.2, tuning=TuningOptions(cache_dir=tmp_path, threads=1))
    with InProcessServer(base, "tiny", server_options=options) as server:
        metadata = httpx.get(f"{server.url}/v1/models/tiny/metadata", timeout=10).json()
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    engine = metadata["bertserve"]["engine"]
    # The tiny export is ONNX: ONNX Runtime, one thread asked for, nothing else to try.
    assert {key: engine[key] for key in ("engine", "precision", "hint", "threads", "streams")} == {
        "engine": "onnxruntime", "precision": "graph", "hint": "LATENCY", "threads": 1, "streams": 1}
    assert engine["tuning"]["source"] == "only-candidate"
    assert ('bertserve_engine_config{engine="onnxruntime",hint="LATENCY",model="tiny",model_file="main",precision="graph",'
            'source="only-candidate",streams="1",threads="1",version="1"} 1.0') in metrics


def test_inline_and_worker_paths_answer_the_same(base):
    texts = ["很好", "这家酒店的房间太小了，不推荐"]
    answers = []
    for inline in (True, False):
        with InProcessServer(base, "tiny", batching=BatchingOptions(inline_when_idle=inline)) as server:
            response = httpx.post(f"{server.url}/v1/models/tiny:predict", json={"instances": texts}, timeout=10)
            assert response.status_code == 200
            answers.append(np.array(response.json()["predictions"]))
            assert server.metrics.batch_size.labels("tiny")._sum.get() == 2  # one batch of both rows
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-6)
