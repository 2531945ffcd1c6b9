"""The Open Inference Protocol over REST: exact JSON of every route, binary tensor data, and the
same probabilities as TF Serving's `:predict` for the same texts and token ids."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from bertserve import __version__

from v2_app import v2, v2_base  # noqa: F401  (fixtures)

TEXTS = ["这家酒店很好", "房间太差了"]
DEMO_IDS = [101, 6821, 2157, 6983, 2421, 2523, 1962, 102] + [0] * 120  # 这家酒店很好, padded to 128
LABELS = ["negative", "positive"]


def check(response, status: int, body) -> None:
    assert response.headers["content-type"] == "application/json"
    assert (response.status_code, response.json()) == (status, body)


def v1_predict(v2, payload) -> np.ndarray:
    body = v2.request("POST", "/v1/models/tiny/versions/2:predict", json=payload).json()
    return np.asarray(body.get("predictions", body.get("outputs")), dtype=np.float32)


def text_input(texts, shape=None) -> dict:
    return {"name": "text", "datatype": "BYTES", "shape": shape or [len(texts)], "data": texts}


def test_server_metadata_health_and_v1_liveness(v2):
    check(v2.request("GET", "/v2"), 200, {"name": "bertserve", "version": __version__, "extensions": ["binary_tensor_data"]})
    check(v2.request("GET", "/v2/health/live"), 200, {"live": True})
    check(v2.request("GET", "/v2/health/ready"), 200, {"ready": True})
    check(v2.request("GET", "/"), 200, {"status": "alive"})


def test_model_metadata_describes_inputs_and_outputs_exactly(v2):
    expected = {
        "name": "tiny",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [-1]},
            {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "token_type_ids", "datatype": "INT64", "shape": [-1, -1]},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"labels": LABELS, "max_seq_length": 128},
    }
    check(v2.request("GET", "/v2/models/tiny"), 200, expected)
    check(v2.request("GET", "/v2/models/tiny/versions/1"), 200, {**expected, "versions": ["1"]})
    check(v2.request("GET", "/v2/models/nope"), 404, {"error": "Servable not found for request: Latest(nope)"})
    check(v2.request("GET", "/v2/models/tiny/versions/7"), 404, {"error": "Servable not found for request: Specific(tiny, 7)"})
    check(v2.request("GET", "/v2/models/tiny/versions/x"), 400, {"error": "model version must be a non-negative integer, got 'x'"})


def test_model_ready(v2):
    check(v2.request("GET", "/v2/models/tiny/ready"), 200, {"name": "tiny", "ready": True})
    check(v2.request("GET", "/v2/models/tiny/versions/1/ready"), 200, {"name": "tiny", "ready": True})
    check(v2.request("GET", "/v2/models/nope/ready"), 404, {"error": "Could not find any versions of model nope"})
    check(v2.request("GET", "/v2/models/tiny/versions/9/ready"), 404, {"error": "Could not find version 9 of model tiny"})


def test_infer_texts_matches_tfserving_predict(v2):
    response = v2.request("POST", "/v2/models/tiny/infer", json={"id": "r1", "inputs": [text_input(TEXTS)]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    expected = v1_predict(v2, {"instances": TEXTS})
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("probabilities", "FP32", [2, 2]), ("label", "BYTES", [2])]
    assert (body["model_name"], body["model_version"], body["id"]) == ("tiny", "2", "r1")
    probabilities = np.asarray(body["outputs"][0]["data"], dtype=np.float32).reshape(2, 2)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert body["outputs"][1]["data"] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_infer_token_ids_int64_and_int32_match_text_and_v1(v2):
    expected = v1_predict(v2, {"inputs": {"input_ids": [DEMO_IDS]}})
    np.testing.assert_allclose(expected, v1_predict(v2, {"instances": [TEXTS[0]]}), atol=1e-5)
    for datatype in ("INT64", "INT32"):
        request = {"inputs": [{"name": "input_ids", "datatype": datatype, "shape": [1, 128], "data": DEMO_IDS}],
                   "outputs": [{"name": "probabilities"}]}
        body = v2.request("POST", "/v2/models/tiny/versions/2/infer", json=request).json()
        assert [o["name"] for o in body["outputs"]] == ["probabilities"] and "id" not in body
        np.testing.assert_allclose(np.asarray(body["outputs"][0]["data"]).reshape(1, 2), expected, atol=1e-6)
    # An explicit mask and segment ids, nested data: the same answer.
    mask = [1 if token else 0 for token in DEMO_IDS]
    request = {"inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": [1, 128], "data": [DEMO_IDS]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [1, 128], "data": [mask]},
        {"name": "token_type_ids", "datatype": "INT64", "shape": [1, 128], "data": [[0] * 128]},
    ]}
    body = v2.request("POST", "/v2/models/tiny/infer", json=request).json()
    np.testing.assert_allclose(np.asarray(body["outputs"][0]["data"]).reshape(1, 2), expected, atol=1e-6)


def test_outputs_selects_and_texts_of_shape_batch_by_one(v2):
    request = {"inputs": [text_input(TEXTS, [2, 1])], "outputs": [{"name": "label"}]}
    body = v2.request("POST", "/v2/models/tiny/infer", json=request).json()
    expected = v1_predict(v2, {"instances": TEXTS})
    assert body["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [2], "data": [LABELS[i] for i in expected.argmax(axis=1)]}]


def binary_texts(texts) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def test_binary_tensor_data_in_and_out(v2):
    raw = binary_texts(TEXTS)
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    # tritonclient.http posts without a Content-Type header.
    response = v2.request("POST", "/v2/models/tiny/infer", content=header + raw,
                          headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    assert [(o["name"], o["parameters"]) for o in document["outputs"]] == [
        ("probabilities", {"binary_data_size": 16}), ("label", {"binary_data_size": sum(4 + len(n) for n in document_labels(response.content[length + 16:]))})]
    probabilities = np.frombuffer(response.content[length:length + 16], dtype="<f4").reshape(2, 2)
    expected = v1_predict(v2, {"instances": TEXTS})
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert document_labels(response.content[length + 16:]) == [LABELS[i] for i in expected.argmax(axis=1)]


def test_binary_per_output_overrides_the_request_default(v2):
    request = {"inputs": [text_input(TEXTS)], "parameters": {"binary_data_output": True},
               "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}]}
    response = v2.request("POST", "/v2/models/tiny/infer", json=request)
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    assert document["outputs"][0]["data"] == [LABELS[i] for i in v1_predict(v2, {"instances": TEXTS}).argmax(axis=1)]
    assert document["outputs"][1]["parameters"] == {"binary_data_size": 16} and len(response.content) == length + 16


def document_labels(raw: bytes) -> list[str]:
    names, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        names.append(raw[offset + 4:offset + 4 + size].decode())
        offset += 4 + size
    return names


def test_requests_are_counted_under_protocol_v2(v2):
    v2.request("POST", "/v2/models/tiny/infer", json={"inputs": [text_input(["很好"])]})
    text = v2.metrics.render()[0].decode()
    assert 'bertserve_requests_total{code="200",model="tiny",protocol="v2",route="infer"}' in text
    assert 'protocol="rest",route="infer"' not in text


def test_ready_is_503_while_the_server_is_not_ready(v2):
    """server.py hands the app its readiness check (which knows about draining)."""
    v2.app.state.ready_problem = lambda: "Server is shutting down; send requests to another replica"
    try:
        check(v2.request("GET", "/v2/health/ready"), 503,
              {"ready": False, "error": "Server is shutting down; send requests to another replica"})
        check(v2.request("GET", "/v2/health/live"), 200, {"live": True})
    finally:
        del v2.app.state.ready_problem
    check(v2.request("GET", "/v2/health/ready"), 200, {"ready": True})


def test_a_configured_model_still_loading_is_503_not_404(v2, tmp_path):
    """A model the server is configured for, with no version loaded yet: not ready, not unknown."""
    from bertserve.serving.app import create_app
    from bertserve.serving.batching import BatchingOptions
    from bertserve.serving.manager import ModelConfig, ModelManager
    import httpx

    manager = ModelManager([ModelConfig("later", tmp_path / "later")], BatchingOptions(), poll_seconds=60)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(manager)), base_url="http://test")
    response = v2.call(client.get("/v2/models/later/ready"))
    assert (response.status_code, response.json()) == (
        503, {"name": "later", "ready": False, "error": "Servable not found for request: Latest(later)"})
    check(v2.call(client.get("/v2/health/ready")), 503, {"ready": False, "error": "Not ready: a model has no AVAILABLE version yet"})
    v2.call(client.aclose())


def test_the_fast_path_and_fastapi_routing_answer_alike(v2):
    """With CORS on, app.py skips its fast path: V2 infer then goes through FastAPI's routing."""
    from bertserve.serving.app import create_app
    import httpx

    routed = create_app(v2.manager, v2.app.state.options.__class__(**{**v2.app.state.options.__dict__, "cors_origins": ("http://x",)}))
    assert routed.fast_path is None and v2.app.fast_path is not None
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=routed), base_url="http://test")
    for path, body in (("/v2/models/tiny/versions/1/infer", {"inputs": [text_input(TEXTS)], "id": "x"}),
                       ("/v2/models/tiny/infer", {"inputs": [text_input(TEXTS, [3])]}),
                       ("/v2/models/nope/infer", {"inputs": [text_input(TEXTS)]})):
        fast, slow = v2.request("POST", path, json=body), v2.call(client.post(path, json=body))
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json())
    v2.call(client.aclose())
