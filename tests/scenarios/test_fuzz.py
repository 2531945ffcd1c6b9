"""Property-based fuzzing of every REST route of a real server: zero 5xx, every refusal a useful 4xx.

Two generators, both against one in-process uvicorn server on 127.0.0.1 serving the tiny model:

* hypothesis on raw requests: any method, `/v1/...` paths with hostile model names, versions and
  labels, and bodies that are wrong types, deep nesting, huge numbers, NaN, invalid UTF-8, lone
  surrogates, empty and long strings, gzip (valid, truncated, bombs), wrong content types and
  encodings, unknown signatures and input names;
* schemathesis on our own OpenAPI document (`/openapi.json`), schema-valid and schema-violating.

Every answer must be < 500; every 4xx must be JSON `{"error": "<non-empty text>"}`; afterwards the
server still answers a real prediction. CI runs a small count; the full >= 10,000-request run is
`scripts/reliability/fuzz.sh` (it sets BERTSERVE_FUZZ_EXAMPLES and BERTSERVE_FUZZ_SCHEMA_EXAMPLES).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertserve.serving.app import AppOptions
from inprocess_server import InProcessServer

# Examples per generator; CI keeps the suite fast (~1,200 requests in ~25 s on 2 busy cores),
# the reliability script raises it. Schemathesis generates ~4x slower than the raw generator.
EXAMPLES = int(os.environ.get("BERTSERVE_FUZZ_EXAMPLES", "1000"))
SCHEMA_EXAMPLES = int(os.environ.get("BERTSERVE_FUZZ_SCHEMA_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize="BERTSERVE_FUZZ_EXAMPLES" not in os.environ,  # CI: the same examples every run
    suppress_health_check=list(HealthCheck),
)
MAX_BODY_BYTES = 64 * 1024  # small, so that the 413 path is reached often


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    options = AppOptions(max_body_bytes=MAX_BODY_BYTES, max_instances=16, max_text_chars=2000)
    with InProcessServer(base, app_options=options, version_labels={"stable": 1}) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tally():
    counts = {"requests": 0}
    yield counts
    print(f"\nfuzz: {counts['requests']} requests")


def check_answer(response: httpx.Response, what: str) -> None:
    """The contract for any answer to any request."""
    assert response.status_code < 500, f"{what} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers.get("content-type") == "application/json", what
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], what


# ---- raw requests ---------------------------------------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from(
        ["tiny", "TINY", "missing", "..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%ff", "%00", "a%3Ab", "%2F", "1", "-1",
         "99999999999999999999999", "stable", "", "%E5%A5%BD"]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#"), max_size=12),
)
PATHS = st.builds(
    lambda template, a, b, c: template.format(m=a, v=b, l=c),
    st.sampled_from([
        "/v1/models", "/v1/models/{m}", "/v1/models/{m}/versions/{v}", "/v1/models/{m}/labels/{l}",
        "/v1/models/{m}/metadata", "/v1/models/{m}/versions/{v}/metadata", "/v1/models/{m}/labels/{l}/metadata",
        "/v1/models/{m}:predict", "/v1/models/{m}/versions/{v}:predict", "/v1/models/{m}/labels/{l}:predict",
        "/v1/models/{m}:classify", "/v1/models/{m}/labels/{l}:classify", "/v1/models/{m}:regress",
        "/v1/models/{m}:{l}", "/v1/models/{m}/versions/{v}/labels/{l}", "/v1/{m}", "/V1/MODELS/{m}:PREDICT",
        "/healthz", "/readyz", "/metrics", "/monitoring/prometheus/metrics", "/", "/docs", "/openapi.json", "/{m}",
    ]),
    SEGMENTS, SEGMENTS, SEGMENTS,
)
KEYS = st.one_of(
    st.sampled_from(["text", "input_ids", "attention_mask", "token_type_ids", "b64", "instances", "inputs", "examples"]),
    st.text(max_size=8),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=0, max_value=21127),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.builds(lambda text: {"b64": text}, st.text(max_size=12)),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=30)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "instances": VALUES, "inputs": VALUES, "examples": VALUES, "context": VALUES,
        "signature_name": st.one_of(st.sampled_from(["", "serving_default", "ids", "nope"]), SCALARS),
    },
) | st.dictionaries(KEYS, VALUES, max_size=3) | VALUES


def _serialize(document, ascii_only: bool) -> bytes:
    return json.dumps(document, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


MUTATIONS = st.sampled_from(["none", "none", "none", "truncate", "invalid_utf8", "surrogate", "huge_int", "deep", "garbage", "pad"])


def _mutate(body: bytes, mutation: str, cut: int, garbage: bytes) -> bytes:
    if mutation == "truncate":
        return body[: cut % (len(body) + 1)]
    if mutation == "invalid_utf8":
        return body[: cut % (len(body) + 1)] + b"\xff\xfe\xc3" + body[cut % (len(body) + 1):]
    if mutation == "surrogate":
        return b'{"instances": ["\\udc80"], "x": ' + body + b"}"
    if mutation == "huge_int":
        return b'{"inputs": {"input_ids": [[1' + b"7" * (4300 + cut % 3000) + b"]]}}"
    if mutation == "deep":
        depth = 10 + cut * 37 % 30000
        return b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"
    if mutation == "garbage":
        return garbage
    if mutation == "pad":
        return b'{"instances": ["' + "好".encode() * (cut * 97 % 40_000) + b'"]}'
    return body


ENCODINGS = st.sampled_from(["plain", "plain", "plain", "gzip", "gzip_truncated", "gzip_bomb", "deflate", "bad_gzip"])


def _encode(body: bytes, encoding: str) -> tuple[bytes, dict[str, str]]:
    if encoding == "gzip":
        return gzip.compress(body), {"content-encoding": "gzip"}
    if encoding == "gzip_truncated":
        compressed = gzip.compress(body)
        return compressed[: len(compressed) // 2], {"content-encoding": "gzip"}
    if encoding == "gzip_bomb":
        return GZIP_BOMB, {"content-encoding": "gzip"}
    if encoding == "bad_gzip":
        return body, {"content-encoding": "gzip"}
    if encoding == "deflate":
        return body, {"content-encoding": "deflate"}
    return body, {}


GZIP_BOMB = gzip.compress(b"[" * (50 * 1024 * 1024), compresslevel=9)  # 50 MB of '[' in ~50 KB
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=latin-1", "\u00ff".encode("latin-1")])
METHODS = st.sampled_from(["POST", "POST", "POST", "GET", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


@SETTINGS
@given(
    method=METHODS, path=PATHS, document=DOCUMENTS, ascii_only=st.booleans(), mutation=MUTATIONS,
    cut=st.integers(0, 10_000), garbage=st.binary(max_size=200), encoding=ENCODINGS, content_type=CONTENT_TYPES,
)
def test_raw_requests_never_get_a_5xx(http, tally, method, path, document, ascii_only, mutation, cut, garbage,
                                      encoding, content_type):
    body, headers = _encode(_mutate(_serialize(document, ascii_only), mutation, cut, garbage), encoding)
    if content_type is not None:
        headers["content-type"] = content_type
    response = http.request(method, path, content=body if method not in ("GET", "HEAD") else None, headers=headers)
    tally["requests"] += 1
    check_answer(response, f"{method} {path} {body[:120]!r} {headers}")


# ---- schemathesis on our OpenAPI document ---------------------------------------------------------


def _operations(server_url: str):
    import schemathesis

    schema = schemathesis.openapi.from_dict(httpx.get(f"{server_url}/openapi.json").json())
    return [result.ok() for result in schema.get_all_operations()]


def test_openapi_operations_never_get_a_5xx(server, tally):
    from hypothesis import strategies as strategies
    from schemathesis import GenerationMode

    operations = _operations(server.url)
    assert len(operations) >= 16  # every TF Serving route is documented
    cases = strategies.one_of(
        [operation.as_strategy(generation_mode=mode) for operation in operations
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    )
    import requests

    session = requests.Session()

    @settings(SETTINGS, max_examples=SCHEMA_EXAMPLES)
    @given(case=cases, aim_at_our_model=st.booleans())
    def run(case, aim_at_our_model):
        if aim_at_our_model and isinstance(case.path_parameters, dict):
            # Random names mostly test the 404 path; half the time talk to the real model.
            case.path_parameters.update(
                {key: value for key, value in (("model_name", "tiny"), ("version", "1"), ("label", "stable"))
                 if key in case.path_parameters}
            )
        response = case.call(base_url=server.url, session=session, timeout=30)
        tally["requests"] += 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.body!r:.300} -> {response.text[:300]}"
        if response.status_code >= 400:
            assert isinstance(response.json().get("error"), str), response.text[:300]

    run()


def test_server_still_serves_after_fuzzing(http, tally):
    response = http.post("/v1/models/tiny:predict", json={"instances": ["这家酒店很好"]})
    assert response.status_code == 200 and len(response.json()["predictions"][0]) == 2
    assert http.get("/healthz").json() == {"status": "ok"}
    assert tally["requests"] >= (EXAMPLES + SCHEMA_EXAMPLES) * 0.9  # both generators really ran
