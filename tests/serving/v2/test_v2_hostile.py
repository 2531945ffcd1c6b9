"""Hostile input to `POST /v2/models/{name}/infer`: every malformed body, tensor, binary header or
size gets a clear 4xx with `{"error": ...}`, never a 500 or a crash. The app's limits here:
4 rows, 50 characters per text, 64 KiB per body (v2_app.py)."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2_app import v2, v2_base  # noqa: F401  (fixtures)

INFER = "/v2/models/tiny/infer"


def text(data, shape=None, datatype="BYTES", name="text") -> dict:
    return {"name": name, "datatype": datatype, "shape": [len(data)] if shape is None else shape, "data": data}


def ids(data, shape, datatype="INT64", name="input_ids") -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


INPUTS_NEEDED = ('"inputs" must be a non-empty list of tensors, e.g. '
                 '[{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["很好"]}]')
CASES = [
    # (body, expected error) -- all 400
    ({}, INPUTS_NEEDED),
    ({"inputs": []}, INPUTS_NEEDED),
    ({"inputs": {"text": ["a"]}}, INPUTS_NEEDED),
    ({"inputs": ["很好"]}, "every input must be an object, got \"\\u5f88\\u597d\""),
    ({"inputs": [{"datatype": "BYTES", "shape": [1], "data": ["a"]}]}, "every input needs a \"name\" (a short printable string), got None"),
    ({"inputs": [text(["a"], datatype="STRING")]}, "input text: unknown datatype 'STRING'; use one of BYTES, BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64"),
    ({"inputs": [text(["a"], shape=[-1])]}, "input text: \"shape\" must be a list of at most 8 non-negative integers, got [-1]"),
    ({"inputs": [text(["a"], shape="1")]}, "input text: \"shape\" must be a list of at most 8 non-negative integers, got '1'"),
    ({"inputs": [text(["a"], shape=[True])]}, "input text: \"shape\" must be a list of at most 8 non-negative integers, got [True]"),
    ({"inputs": [text(["a"], shape=[1] * 9)]}, "input text: \"shape\" must be a list of at most 8 non-negative integers, got [1, 1, 1, 1, 1, 1, 1, 1, 1]"),
    ({"inputs": [text(["a"], shape=[10**12])]}, "input text: shape [1000000000000] has 1000000000000 elements, more than the limit of 65536"),
    ({"inputs": [text(["a", "b"], shape=[3])]}, "input text: shape [3] needs 3 elements, got 2"),
    ({"inputs": [text("abc", shape=[1])]}, "input text: \"data\" must be a list, got 'abc'"),
    ({"inputs": [text([1])]}, "input text: BYTES elements must be strings, got 1"),
    ({"inputs": [text([["a", "b"], ["c"]], shape=[2, 2])]}, "input text: shape [2, 2] needs 4 elements, got 3"),
    ({"inputs": [text(["a"], datatype="INT64")]}, "input text: INT64 elements must be numbers, got 'a'"),
    ({"inputs": [ids([1], [1], datatype="INT64", name="text")]}, "input text must be BYTES, got INT64"),
    ({"inputs": [ids([101, 1.5], [1, 2])]}, "input input_ids: INT64 elements must be integers, got 1.5"),
    ({"inputs": [ids([101, True], [1, 2])]}, "input input_ids: INT64 elements must be numbers, got True"),
    ({"inputs": [ids([101, 2**70], [1, 2])]}, "input input_ids: a value lies outside the range of INT64"),
    ({"inputs": [ids([101, 102], [1, 2], datatype="FP32")]}, "input input_ids must be INT64 or INT32, got FP32"),
    ({"inputs": [ids([101, 102], [2])]}, "input input_ids must have shape [batch, sequence], got [2]"),
    ({"inputs": [ids([101, 102], [1, 2]), ids([1], [1, 1], name="attention_mask")]},
     "input attention_mask has shape [1, 1], expected [1, 2] like input_ids"),
    ({"inputs": [ids([101, 102], [1, 2]), text(["a"])]}, "give either text or input_ids, not both"),
    ({"inputs": [text(["a"]), ids([1], [1, 1], name="token_type_ids")]}, "attention_mask and token_type_ids go with input_ids, not with text"),
    ({"inputs": [ids([1], [1, 1], name="attention_mask")]}, "no input: send text (BYTES texts) or input_ids (INT64 token ids)"),
    ({"inputs": [text(["a"]), text(["b"])]}, "input text is given twice"),
    ({"inputs": [text(["a"], name="sentence")]}, "unknown input sentence; this model takes text (BYTES) or input_ids, attention_mask, token_type_ids (INT64)"),
    ({"inputs": [text([])]}, "input text has no rows; send at least one"),
    ({"inputs": [text(["a"] * 5)]}, "input text has 5 rows, more than the limit of 4 per request"),
    ({"inputs": [text(["好" * 51])]}, "input text: element 0 has 51 characters, more than the limit of 50"),
    ({"inputs": [text(["\ud800"])]}, "input text: element 0 is not valid UTF-8"),
    ({"inputs": [ids([101, 99999], [1, 2])]}, "input_ids must lie in [0, 21128) for this model's vocabulary"),
    ({"inputs": [ids([101, -1], [1, 2])]}, "input_ids must lie in [0, 21128) for this model's vocabulary"),
    ({"inputs": [text(["a"])], "outputs": [{"name": "logits"}]}, "unknown output logits; this model gives probabilities, label"),
    ({"inputs": [text(["a"])], "outputs": {"name": "label"}}, "\"outputs\" must be a list of {\"name\": ...} objects"),
    ({"inputs": [text(["a"])], "outputs": [{"name": "label"}, {"name": "label"}]}, "output label is requested twice"),
    ({"inputs": [text(["a"])], "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]},
     "output label: binary_data must be true or false"),
    ({"inputs": [text(["a"])], "outputs": [{}]}, "every requested output needs a \"name\" (a string)"),
    ({"inputs": [text(["a"])], "id": 7}, "\"id\" must be a string"),
    ({"inputs": [text(["a"])], "id": "\udc00"}, "\"id\" is not valid UTF-8 (a lone surrogate?)"),
    ({"inputs": [text(["a"])], "parameters": []}, "\"parameters\" of the request must be an object"),
    ({"inputs": [text(["a"])], "parameters": {"binary_data_output": 1}}, "parameter binary_data_output must be true or false"),
    ({"inputs": [{**text(["a"]), "parameters": {"binary_data_size": 3}}]}, "input text: give \"data\" or binary_data_size, not both"),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}, "input text: no \"data\" and no binary_data_size"),
    ({"inputs": [text([[[[[[[[[["a"]]]]]]]]]], shape=[1])]}, "input text: \"data\" is nested deeper than 8 levels"),
]


@pytest.mark.parametrize("body, error", CASES)
def test_malformed_requests_get_400_with_the_reason(v2, body, error):
    response = v2.request("POST", INFER, content=json.dumps(body).encode())
    assert response.headers["content-type"] == "application/json"
    assert (response.status_code, response.json()) == (400, {"error": error})


@pytest.mark.parametrize("content, error", [
    (b"", "the request body is empty; send a JSON object with \"inputs\""),
    (b'{"inputs": [', "malformed JSON: Expecting value at offset 12"),
    (b"[1, 2]", "the body must be a JSON object with \"inputs\""),
    (b'{"a": "\xff"}', "the JSON part of the body is not valid UTF-8"),
    (b"[" * 60_000, "malformed JSON: nested too deeply"),
])
def test_malformed_json(v2, content, error):
    response = v2.request("POST", INFER, content=content)
    assert (response.status_code, response.json()) == (400, {"error": error})


def binary_request(raw: bytes, size: int, header_length: str | None = None, shape=(1,)) -> tuple[bytes, dict]:
    document = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": list(shape),
                                       "parameters": {"binary_data_size": size}}]}).encode()
    header = str(len(document)) if header_length is None else header_length
    return document + raw, {"Inference-Header-Content-Length": header}


def framed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.parametrize("raw, size, header, shape, error", [
    (framed(b"ok"), 6, "abc", (1,), "Inference-Header-Content-Length must be a non-negative integer, got 'abc'"),
    (framed(b"ok"), 6, "-5", (1,), "Inference-Header-Content-Length must be a non-negative integer, got '-5'"),
    (framed(b"ok"), 6, "99999", (1,), "Inference-Header-Content-Length is 99999 but the body has only {total} bytes; it must give the length of the JSON part"),
    (framed(b"ok"), 60, None, (1,), "input text: binary_data_size 60 runs past the end of the body (6 binary bytes remain)"),
    (framed(b"ok") + b"zz", 6, None, (1,), "2 binary bytes after the JSON are claimed by no input's binary_data_size"),
    (framed(b"ok"), -6, None, (1,), "input text: binary_data_size must be a non-negative integer, got -6"),
    (struct.pack("<I", 1000) + b"ok", 6, None, (1,), "input text: BYTES element 0 claims 1000 bytes, only 2 remain"),
    (b"\x01\x00", 2, None, (1,), "input text: raw BYTES data ends inside the length of element 0"),
    (framed(b"ok", b"no"), 12, None, (1,), "input text: 6 bytes left after 1 BYTES elements; check the shape"),
    (framed(b"\xff\xfe"), 6, None, (1,), "input text: element 0 is not valid UTF-8"),
    (framed(b"a") * 3, 15, None, (10**9,), "input text: shape [1000000000] has 1000000000 elements, more than the limit of 65536"),
    (framed(b"a") * 3, 15, None, (4,), "input text: raw BYTES data ends inside the length of element 3"),
])
def test_bad_binary_data(v2, raw, size, header, shape, error):
    content, headers = binary_request(raw, size, header, shape)
    response = v2.request("POST", INFER, content=content, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": error.format(total=len(content))}


def test_raw_numbers_of_the_wrong_length(v2):
    document = json.dumps({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 4],
                                       "parameters": {"binary_data_size": 12}}]}).encode()
    response = v2.request("POST", INFER, content=document + b"\x00" * 12,
                          headers={"Inference-Header-Content-Length": str(len(document))})
    assert (response.status_code, response.json()) == (400, {"error": "input input_ids: shape [1, 4] of INT64 needs 32 bytes, got 12"})


def test_limits_and_unknown_models(v2):
    big = json.dumps({"inputs": [text(["a" * 70_000])]}).encode()
    assert v2.request("POST", INFER, content=big).status_code == 413
    body = {"inputs": [text(["a"])]}
    assert v2.request("POST", "/v2/models/nope/infer", json=body).json() == {"error": "Servable not found for request: Latest(nope)"}
    assert v2.request("POST", "/v2/models/tiny/versions/01x/infer", json=body).status_code == 400
    assert v2.request("POST", "/v2/models/tiny/versions/99/infer", json=body).status_code == 404
    assert v2.request("GET", INFER).status_code == 405


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    document=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(["name", "datatype", "shape", "data", "inputs", "outputs", "parameters", "binary_data_size",
                             "binary_data", "binary_data_output", "id", "text", "input_ids", "BYTES", "INT64"]),
            children, max_size=5),
        max_leaves=20,
    ),
    tail=st.binary(max_size=16),
    header=st.none() | st.integers(min_value=-2, max_value=400).map(str),
)
def test_fuzzed_bodies_never_get_a_5xx(v2, document, tail, header):
    content = json.dumps(document).encode() + tail
    headers = {} if header is None else {"Inference-Header-Content-Length": header}
    response = v2.request("POST", INFER, content=content, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert set(response.json()) == {"error"}
