"""Golden tests of the pure TF Serving wire format: paths, JSON parsing, tensors, responses."""

from __future__ import annotations

import numpy as np
import pytest

from bertserve.errors import RequestError
from bertserve.serving.json_tensor import Limits, parse_classify, parse_predict
from bertserve.serving.tfserving import (
    Route,
    format_classify,
    format_metadata,
    format_predict,
    format_status,
    parse_json,
    parse_route,
)


def error_of(function, *args) -> tuple[int, str]:
    with pytest.raises(RequestError) as caught:
        function(*args)
    return caught.value.status, str(caught.value)


@pytest.mark.parametrize(
    "method, path, route",
    [
        ("GET", "/v1/models", Route("list")),
        ("GET", "/v1/models/m", Route("status", "m")),
        ("GET", "/V1/Models/m/VERSIONS/7", Route("status", "m", 7)),
        ("GET", "/v1/models/m/labels/stable/metadata", Route("metadata", "m", None, "stable")),
        ("POST", "/v1/models/m:predict", Route("predict", "m")),
        ("POST", "/v1/models/m/versions/3:CLASSIFY", Route("classify", "m", 3)),
        ("POST", "/v1/models/my%20model/labels/canary:regress", Route("regress", "my model", None, "canary")),
    ],
)
def test_routes(method, path, route):
    assert parse_route(method, path) == route


@pytest.mark.parametrize(
    "method, path, message",
    [
        ("GET", "/v1/models/m:predict", "Malformed request: GET /v1/models/m:predict"),
        ("POST", "/v1/models/m", "Malformed request: POST /v1/models/m"),
        ("POST", "/v1/models/m:explain", "Malformed request: POST /v1/models/m:explain"),
        ("PUT", "/v1/models/m", "Malformed request: PUT /v1/models/m"),
        ("GET", "/v1/models/m/versions/x", "Malformed request: GET /v1/models/m/versions/x"),
        ("GET", "/v1/models/versions/3", "Missing model name in request."),
        ("GET", "/v1/models/m/versions/99999999999999999999", "Failed to convert version: 99999999999999999999 to numeric."),
    ],
)
def test_malformed_paths(method, path, message):
    assert error_of(parse_route, method, path) == (400, message)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n", "JSON Parse error: The document is empty"),
        (b'{"instances": [1 2]}', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 17"),
        (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
        (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
        (b"{a: 1}", "JSON Parse error: Missing a name for object member. at offset: 1"),
        (b'{"a": "x', "JSON Parse error: Missing a closing quotation mark in string. at offset: 6"),
        (b'{"a": tru}', "JSON Parse error: Invalid value. at offset: 6"),
        (b'{"\xe5\xa5\xbd": x}', "JSON Parse error: Invalid value. at offset: 8"),  # byte offsets, as rapidjson
        (b"[1, 2]", "JSON Value: [\n    1,\n    2\n] Is not object"),
    ],
)
def test_json_parse_errors(body, message):
    assert error_of(parse_json, body) == (400, message)


def test_trailing_bytes_after_the_json_value_are_ignored():
    assert parse_json(b' {"instances": ["a"]} \x00garbage') == {"instances": ["a"]}


def test_row_texts_plain_b64_and_objects():
    request = parse_predict({"instances": ["很好", {"b64": "5aSq5beu5LqG"}]}, Limits())
    assert (request.row_format, request.texts, request.ids) == (True, ["很好", "太差了"], None)
    assert parse_predict({"instances": [{"text": "a"}, {"text": "b"}]}, Limits()).texts == ["a", "b"]


def test_columnar_texts():
    assert parse_predict({"inputs": ["a", "b"]}, Limits()).texts == ["a", "b"]
    request = parse_predict({"signature_name": "serving_default", "inputs": {"text": ["a"], "extra": 1}}, Limits())
    assert (request.row_format, request.texts) == (False, ["a"])


def test_demo_ids_derive_mask_and_zero_segments():
    ids = [101, 2523, 1962, 102] + [0] * 124
    request = parse_predict({"inputs": {"input_ids": [ids]}}, Limits())
    assert request.row_format is False
    encoded = request.encoded_ids(pad_id=0)
    assert encoded["input_ids"].shape == (1, 128) and encoded["input_ids"].dtype == np.int64
    assert encoded["attention_mask"].tolist() == [[1, 1, 1, 1] + [0] * 124]
    assert encoded["token_type_ids"].tolist() == [[0] * 128]


def test_row_ids_with_mask():
    request = parse_predict({"instances": [{"input_ids": [101, 102], "attention_mask": [1, 1]}]}, Limits())
    assert request.row_format and request.encoded_ids(0)["attention_mask"].tolist() == [[1, 1]]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"instances": ["a"], "inputs": ["a"]},
         'JSON Value: {\n    "instances": [\n        "a"\n    ],\n    "inputs": [\n        "a"\n    ]\n} '
         "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
        ({"foo": 1}, "Missing 'inputs' or 'instances' key"),
        ({"instances": []}, "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
        ({"instances": "a"}, "JSON Value: {\n    \"instances\": \"a\"\n} Excepting 'instances' to be an list/array"),
        ({"signature_name": 1, "instances": ["a"]},
         "JSON Value: {\n    \"signature_name\": 1,\n    \"instances\": [\n        \"a\"\n    ]\n} "
         "not formatted correctly. 'signature_name' key must be a string value."),
        ({"signature_name": "nope", "instances": ["a"]}, 'Serving signature name: "nope" not found in signature def'),
        ({"instances": [[1, 2], [3, 4, 5]]},
         "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3"),
        ({"instances": [[1, 2], [[3, 4]]]},
         "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [2] but got: [1,2]"),
        ({"inputs": {"input_ids": [[1, 2], [3]]}}, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ({"inputs": {"input_ids": [[1, 2.0]]}}, "JSON Value: 2.0 Type: Number is not of expected type: int64"),
        ({"inputs": {"input_ids": [[1, 2], 3]}},
         "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
        ({"instances": ["a", 5]},
         "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
         "JSON Value: 5 Type: Number is not of expected type: string"),
        ({"instances": [{"b64": "!!"}]},
         "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Unable to base64 decode"),
        ({"instances": [{"text": "a"}, {"text": "b", "x": 1}]},
         "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: "
         "JSON object: does not have named input: x"),
        ({"instances": [{"text": "a"}, "b"]}, "Expecting object but got list at item 1 of input list"),
        ({"instances": ["a", {"text": "b"}]}, "Expecting value/list but got object at item 1 of input list"),
        ({"inputs": {"x": ["a"]}}, "Missing named input: text in 'inputs' object."),
        ({"inputs": [["a"]]}, "Input 'text' must have shape [-1] (a list of strings), got [1,1]"),
        ({"inputs": {"input_ids": [101, 102]}},
         "Input 'input_ids' must have shape [-1, -1] (a list of id lists, one per sentence), got [2]"),
        ({"instances": ["a"] * 3}, "Request has 3 instances; the limit is 2 per request (split the request or raise --max_instances)"),
        ({"instances": ["abcdef"]}, "Text 0 has 6 characters; the limit is 5 (shorten it or raise --max_text_chars)"),
    ],
)
def test_predict_errors(document, message):
    assert error_of(parse_predict, document, Limits(max_instances=2, max_text_chars=5)) == (400, message)


def test_classify_examples_and_context():
    assert parse_classify({"examples": [{"text": "a"}, {"text": ["b"]}, {}], "context": {"text": "c"}}, Limits()) == [
        "a", "b", "c"]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"instances": ["a"]},
         "JSON Value: {\n    \"instances\": [\n        \"a\"\n    ]\n} "
         "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": []}, "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"),
        ({"examples": {}}, "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array"),
        ({"examples": ["a"]}, "Example must be JSON object but got JSON String"),
        ({"examples": [{"words": "a"}]}, 'Example 0 has no \'text\' feature; send {"examples": [{"text": "..."}]}'),
    ],
)
def test_classify_errors(document, message):
    assert error_of(parse_classify, document, Limits()) == (400, message)


def test_responses():
    probabilities = np.array([[0.96, 0.04], [0.3, 0.7]], dtype=np.float32)
    # float32 written as its shortest decimal, as TF Serving does (not 0.9599999785423279).
    assert format_predict(probabilities, row_format=True) == {"predictions": [[0.96, 0.04], [0.3, 0.7]]}
    assert format_predict(probabilities[:1], row_format=False) == {"outputs": [[0.96, 0.04]]}
    assert format_classify(probabilities[:1], ["negative", "positive"]) == {
        "results": [[["negative", 0.96], ["positive", 0.04]]]}


def test_status_and_metadata():
    from bertserve.serving.manager import VersionState, VersionStatus

    statuses = [VersionStatus(1569141360, VersionState.AVAILABLE), VersionStatus(7, VersionState.END, "INVALID_ARGUMENT", "bad")]
    assert format_status(statuses) == {"model_version_status": [
        {"version": "1569141360", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "7", "state": "END", "status": {"error_code": "INVALID_ARGUMENT", "error_message": "bad"}},
    ]}
    metadata = format_metadata("m", 1569141360, ["negative", "positive"], 128, 21128)
    assert metadata["model_spec"] == {"name": "m", "signature_name": "", "version": "1569141360"}
    default = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default == {
        "inputs": {"text": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
                            "name": "text:0"}},
        "outputs": {"probabilities": {"dtype": "DT_FLOAT", "tensor_shape": {
            "dim": [{"size": "-1", "name": ""}, {"size": "2", "name": ""}], "unknown_rank": False}, "name": "probabilities:0"}},
        "method_name": "tensorflow/serving/predict",
    }
    ids = metadata["metadata"]["signature_def"]["signature_def"]["ids"]
    assert list(ids["inputs"]) == ["input_ids", "attention_mask", "token_type_ids"]
    assert ids["inputs"]["input_ids"]["dtype"] == "DT_INT64"
    assert metadata["bertserve"] == {"labels": ["negative", "positive"], "max_seq_length": 128, "vocab_size": 21128}
