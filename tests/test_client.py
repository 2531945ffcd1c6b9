"""bertserve.client: request shapes, answer parsing and error mapping (httpx.MockTransport), plus one
real connection-refused case. The real-server round trip lives in tests/commands/test_online.py."""

from __future__ import annotations

import json
import socket

import httpx
import numpy as np
import pytest

from bertserve.client import BertServeClient, labels_from_metadata
from bertserve.errors import BertServeError, ClientError

METADATA = {
    "model_spec": {"name": "m", "signature_name": "", "version": "1"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {"text": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}, "name": "text:0"}},
                    "outputs": {
                        "probabilities": {
                            "dtype": "DT_FLOAT",
                            "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}], "unknown_rank": False},
                            "name": "probabilities:0",
                        }
                    },
                    "method_name": "tensorflow/serving/predict",
                }
            }
        }
    },
}


def make_client(handler, **kwargs) -> tuple[BertServeClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = BertServeClient("http://server:8501/", model="m", transport=httpx.MockTransport(record), **kwargs)
    return client, seen


def test_predict_texts_sends_instances_and_returns_rows():
    client, seen = make_client(lambda r: httpx.Response(200, json={"predictions": [[0.25, 0.75], [0.5, 0.5]]}))
    assert client.predict_texts(["很好", "太差了"]) == [[0.25, 0.75], [0.5, 0.5]]
    assert seen[0].method == "POST"
    assert str(seen[0].url) == "http://server:8501/v1/models/m:predict"
    assert json.loads(seen[0].content) == {"instances": ["很好", "太差了"]}


def test_version_pins_the_path():
    client, seen = make_client(lambda r: httpx.Response(200, json={"model_version_status": []}), version=7)
    client.status()
    assert seen[0].url.path == "/v1/models/m/versions/7"


def test_predict_ids_uses_the_original_demo_wire_format():
    client, seen = make_client(lambda r: httpx.Response(200, json={"outputs": [[0.9, 0.1]]}))
    assert client.predict_ids([[101, 872, 102, 0]]) == [[0.9, 0.1]]
    assert json.loads(seen[0].content) == {"inputs": {"input_ids": [[101, 872, 102, 0]]}}


def test_predict_ids_accepts_named_outputs():
    client, _ = make_client(lambda r: httpx.Response(200, json={"outputs": {"probabilities": [[0.9, 0.1]], "logits": [[2, 0]]}}))
    assert client.predict_ids([[101, 102]]) == [[0.9, 0.1]]


def test_classify_sends_examples_and_returns_pairs():
    answer = {"results": [[["negative", 0.96], ["positive", 0.04]]]}
    client, seen = make_client(lambda r: httpx.Response(200, json=answer))
    assert client.classify(["差"]) == [[("negative", 0.96), ("positive", 0.04)]]
    assert seen[0].url.path == "/v1/models/m:classify"
    assert json.loads(seen[0].content) == {"examples": [{"text": "差"}]}


def test_labels_come_from_metadata_and_are_cached():
    with_names = json.loads(json.dumps(METADATA))
    signature = with_names["metadata"]["signature_def"]["signature_def"]["serving_default"]
    signature["outputs"]["probabilities"]["labels"] = ["neg", "neutral", "pos"]
    client, seen = make_client(lambda r: httpx.Response(200, json=with_names))
    assert client.labels() == ["neg", "neutral", "pos"]
    assert client.labels() == ["neg", "neutral", "pos"]
    assert len(seen) == 1
    assert seen[0].url.path == "/v1/models/m/metadata"


def test_labels_fall_back_to_class_numbers_for_plain_tf_serving():
    assert labels_from_metadata(METADATA) == ["0", "1", "2"]
    with pytest.raises(ClientError, match="cannot tell the labels"):
        labels_from_metadata({"metadata": {}})


def test_models_lists_names():
    client, _ = make_client(lambda r: httpx.Response(200, json={"models": ["a", "b"]}))
    assert client.models() == ["a", "b"]


def test_error_answer_becomes_client_error_with_status_and_message():
    client, _ = make_client(lambda r: httpx.Response(404, json={"error": "Could not find any versions of model m"}))
    with pytest.raises(ClientError) as caught:
        client.predict_texts(["x"])
    assert caught.value.status == 404
    assert str(caught.value) == "POST http://server:8501/v1/models/m:predict -> 404: Could not find any versions of model m"
    assert isinstance(caught.value, BertServeError)


def test_non_json_error_answer_keeps_the_text():
    client, _ = make_client(lambda r: httpx.Response(502, text="Bad Gateway from proxy"))
    with pytest.raises(ClientError, match="502: Bad Gateway from proxy") as caught:
        client.status()
    assert caught.value.status == 502


def test_non_json_success_is_an_error():
    client, _ = make_client(lambda r: httpx.Response(200, text="<html>hello</html>"))
    with pytest.raises(ClientError, match="without JSON"):
        client.status()


def test_wrong_number_of_predictions_is_an_error():
    client, _ = make_client(lambda r: httpx.Response(200, json={"predictions": [[0.5, 0.5]]}))
    with pytest.raises(ClientError, match="expected predictions for 2 instance"):
        client.predict_texts(["a", "b"])


def test_timeout_is_a_client_error():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = make_client(slow, timeout=2)
    with pytest.raises(ClientError, match=r"no answer from http://server:8501/v1/models/m within 2s") as caught:
        client.status()
    assert caught.value.status is None


def test_bad_texts_are_refused_before_sending():
    client, seen = make_client(lambda r: httpx.Response(200, json={}))
    with pytest.raises(ClientError, match="not a bare string"):
        client.predict_texts("很好")
    with pytest.raises(ClientError, match="at least one text"):
        client.predict_texts([])
    with pytest.raises(ClientError, match="must be a str"):
        client.classify([3])
    assert seen == []


def test_server_down_says_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now.
    with BertServeClient(f"http://127.0.0.1:{port}", model="m", timeout=5) as client:
        with pytest.raises(ClientError) as caught:
            client.status()
    assert str(caught.value).startswith(f"cannot reach the server at http://127.0.0.1:{port}: connection refused")
    assert "bertserve serve" in str(caught.value)
    assert caught.value.status is None


def test_real_server_round_trip(tiny_server):
    """Every call against one real `bertserve serve` process, compared with the model in-process."""
    from bertserve.inference.model import ExportedModel

    url, version = tiny_server
    expected = ExportedModel.load(version).predict_texts(["很好", "太差了"]).tolist()
    with BertServeClient(url, model="tiny", timeout=10) as client:
        assert client.models() == ["tiny"]
        assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
        assert client.labels() == ["negative", "positive"]
        np.testing.assert_allclose(client.predict_texts(["很好", "太差了"]), expected, atol=1e-6)
        ids = ExportedModel.load(version).tokenizer.encode(["很好"], pad_to=128).input_ids.tolist()
        np.testing.assert_allclose(client.predict_ids(ids), expected[:1], atol=1e-6)
        [pairs] = client.classify(["太差了"])
        assert [label for label, _ in pairs] == ["negative", "positive"]
        assert [score for _, score in pairs] == pytest.approx(expected[1], abs=1e-6)
        with pytest.raises(ClientError) as caught:
            client.predict_texts(["好" * 100_000])
        assert caught.value.status in (400, 413)
    with BertServeClient(url, model="tiny", version=2, timeout=10) as missing:
        with pytest.raises(ClientError) as caught:
            missing.status()
        assert caught.value.status == 404
