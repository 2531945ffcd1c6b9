"""The REST app over a real manager holding two versions of the tiny exported model: exact JSON."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import httpx
import pytest

from app_client import AppClient

DEMO_IDS = [101, 6821, 2157, 6983, 2421, 2523, 1962, 102] + [0] * 120  # 这家酒店很好, padded to 128


@pytest.fixture(scope="module")
def base(tiny_export, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rest") / "tiny"
    for version in (1, 2):
        shutil.copytree(tiny_export, folder / str(version))
    return folder


@pytest.fixture(scope="module")
def client(base):
    loop_client = AppClient(base, version_labels={"stable": 1}, max_body_bytes=4096, max_instances=8)
    yield loop_client
    loop_client.close()


def check(response: httpx.Response, status: int, body) -> None:
    assert response.headers["content-type"] == "application/json"
    assert (response.status_code, response.json()) == (status, body)


def probability_rows(rows) -> None:
    for row in rows:
        assert len(row) == 2 and abs(sum(row) - 1) < 1e-5


def test_models_status_versions_and_labels(client):
    check(client.request("GET", "/v1/models"), 200, {"models": ["tiny"]})
    available = lambda version: {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    check(client.request("GET", "/v1/models/tiny"), 200, {"model_version_status": [available(2), available(1)]})
    check(client.request("GET", "/v1/models/tiny/versions/1"), 200, {"model_version_status": [available(1)]})
    check(client.request("GET", "/V1/MODELS/tiny/labels/stable"), 200, {"model_version_status": [available(1)]})


def test_metadata(client):
    body = client.request("GET", "/v1/models/tiny/versions/1/metadata").json()
    assert body["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    assert body["bertserve"]["labels"] == ["negative", "positive"]
    assert client.request("GET", "/v1/models/tiny/metadata").json()["model_spec"]["version"] == "2"


def test_demo_request_unchanged(client):
    response = client.request("POST", "/v1/models/chnsenticorp:predict", json={"inputs": {"input_ids": [DEMO_IDS]}})
    check(response, 404, {"error": "Servable not found for request: Latest(chnsenticorp)"})
    response = client.request("POST", "/v1/models/tiny:predict", json={"inputs": {"input_ids": [DEMO_IDS]}})
    assert response.status_code == 200 and list(response.json()) == ["outputs"]
    probability_rows(response.json()["outputs"])
    # Same sentence as text: the server's tokenizer gives the same ids, hence the same answer.
    text = client.request("POST", "/v1/models/tiny:predict", json={"instances": ["这家酒店很好"]}).json()
    assert text == {"predictions": response.json()["outputs"]}


def test_text_in_forms_agree(client):
    rows = client.request("POST", "/v1/models/tiny/versions/1:predict", json={"instances": ["很好", "太差了"]}).json()
    probability_rows(rows["predictions"])
    for body in ({"inputs": ["很好", "太差了"]}, {"inputs": {"text": ["很好", "太差了"]}}):
        assert client.request("POST", "/v1/models/tiny:predict", json=body).json() == {"outputs": rows["predictions"]}
    objects = {"instances": [{"text": "很好"}, {"text": {"b64": "5aSq5beu5LqG"}}]}
    assert client.request("POST", "/v1/models/tiny/labels/stable:predict", json=objects).json() == rows


def test_classify_and_regress(client):
    predictions = client.request("POST", "/v1/models/tiny:predict", json={"instances": ["很好"]}).json()["predictions"]
    response = client.request("POST", "/v1/models/tiny:classify", json={"examples": [{"text": "很好"}]})
    check(response, 200, {"results": [[["negative", predictions[0][0]], ["positive", predictions[0][1]]]]})
    check(client.request("POST", "/v1/models/tiny:regress", json={"examples": [{"text": "很好"}]}), 400, {
        "error": "Expected regression signature method_name to be tensorflow/serving/regress. Was: "
        "tensorflow/serving/predict (this model is a classifier: use :classify or :predict)"})


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/tiny/versions/7", None, 404, "Could not find version 7 of model tiny"),
        ("POST", "/v1/models/tiny/versions/7:predict", b'{"instances": ["a"]}', 404,
         "Servable not found for request: Specific(tiny, 7)"),
        ("GET", "/v1/models/tiny:predict", None, 400, "Malformed request: GET /v1/models/tiny:predict"),
        ("POST", "/v1/models/tiny", b"{}", 400, "Malformed request: POST /v1/models/tiny"),
        ("DELETE", "/v1/models/tiny", None, 400, "Malformed request: DELETE /v1/models/tiny"),
        ("GET", "/v1/anything", None, 400, "Malformed request: GET /v1/anything"),
        ("POST", "/v1/models/tiny:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("POST", "/v1/models/tiny:predict", b'{"instances": [', 400, "JSON Parse error: Invalid value. at offset: 15"),
        ("POST", "/v1/models/tiny:predict", b'{"x": 1}', 400, "Missing 'inputs' or 'instances' key"),
        ("POST", "/v1/models/tiny:predict", b'{"inputs": {"input_ids": [[101, 2], [101]]}}', 400,
         "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ("POST", "/v1/models/tiny:predict", b'{"inputs": {"input_ids": [[101, 1.0]]}}', 400,
         "JSON Value: 1.0 Type: Number is not of expected type: int64"),
        ("POST", "/v1/models/tiny:predict", b'{"inputs": {"input_ids": [[101, 99999999]]}}', 400,
         "input_ids must lie in [0, 21128) for this model's vocabulary"),
        ("POST", "/v1/models/tiny:predict", json.dumps({"inputs": {"input_ids": [[101] * 129]}}).encode(), 400,
         "sequence length 129 exceeds this model's max_seq_length 128"),
        ("POST", "/v1/models/tiny:predict", json.dumps({"instances": ["a"] * 9}).encode(), 400,
         "Request has 9 instances; the limit is 8 per request (split the request or raise --max_instances)"),
        ("POST", "/v1/models/tiny:classify", b'{"examples": []}', 400,
         "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"),
    ],
)
def test_errors(client, method, path, body, status, message):
    check(client.request(method, path, content=body), status, {"error": message})


def test_body_limits_and_gzip(client):
    too_big = json.dumps({"instances": ["好" * 2000]}).encode()
    check(client.request("POST", "/v1/models/tiny:predict", content=too_big), 413, {
        "error": "Request body is larger than the limit of 4096 bytes; send fewer instances per request "
        "or raise --max_body_bytes"})
    # A small gzip body that inflates past the limit is refused too (a zip bomb never lands in memory).
    bomb = gzip.compress(b'{"instances": ["' + b"a" * 100_000 + b'"]}')
    response = client.request("POST", "/v1/models/tiny:predict", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    plain = client.request("POST", "/v1/models/tiny:predict", json={"instances": ["很好"]}).json()
    zipped = gzip.compress(json.dumps({"instances": ["很好"]}).encode() + b"\n trailing bytes")
    response = client.request("POST", "/v1/models/tiny:predict", content=zipped, headers={"Content-Encoding": "gzip"})
    check(response, 200, plain)
    check(client.request("POST", "/v1/models/tiny:predict", content=b"not gzip", headers={"Content-Encoding": "gzip"}),
          400, {"error": "Content-Encoding: gzip body is not valid gzip (Error -3 while decompressing data: incorrect header check)"})


def test_page_docs_request_id_and_unknown_paths(client):
    page = client.request("GET", "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    check(client.request("GET", "/"), 200, {"status": "alive"})  # KServe's V1 liveness check; not a browser
    schema = client.request("GET", "/openapi.json").json()
    assert "/v1/models/{model_name}:predict" in schema["paths"]
    assert schema["paths"]["/v1/models/{model_name}:predict"]["post"]["requestBody"]["required"] is True
    response = client.request("GET", "/v1/models", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    check(client.request("GET", "/nope"), 404, {"error": "Not found: GET /nope; the API is under /v1/ (see /docs)"})


def test_json_access_log_and_metrics_hook(base, caplog):
    class Recorder:
        def __init__(self):
            self.calls = []

        def observe_request(self, model, route, status, seconds, protocol="rest"):
            self.calls.append((model, route, status))

    recorder = Recorder()
    loop_client = AppClient(base, version_labels={"stable": 1}, access_log_json=True, metrics=recorder, cors_origins=("http://example.com",))
    try:
        with caplog.at_level("INFO", logger="bertserve.access"):
            response = loop_client.request("POST", "/v1/models/tiny:predict", json={"instances": ["很好", "不好"]},
                                           headers={"Origin": "http://example.com"})
        assert response.headers["access-control-allow-origin"] == "http://example.com"
        line = json.loads(caplog.records[-1].getMessage())
        assert {key: line[key] for key in ("model", "version", "route", "status", "instances")} == {
            "model": "tiny", "version": 2, "route": "predict", "status": 200, "instances": 2}
        assert recorder.calls == [("tiny", "predict", 200)]
    finally:
        loop_client.close()
