"""Hostile input on the gRPC surface: every bad message gets a clear status (never UNKNOWN or
INTERNAL), and the server keeps answering afterwards."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_harness import GrpcInProcessServer, core, grpc_base, serving, stubs  # noqa: F401 (grpc_base: a fixture)

from bertserve.serving.app import AppOptions
from bertserve.serving.grpc import tensors

PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def small_limit_server(grpc_base):
    # A 64 KiB receive limit (REST's --max_body_bytes), so "huge" stays small for the test.
    with GrpcInProcessServer(grpc_base, "tiny", app_options=AppOptions(max_body_bytes=64 * 1024, max_instances=8)) as server:
        channel, prediction, _ = stubs(server.grpc_target)
        yield server, channel, prediction
        channel.close()


def raw_call(channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(payload, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def tensor(dtype: str, shape: list[int], **values) -> object:
    proto = core.TensorProto(dtype=getattr(core, dtype), **values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def predict(prediction, signature: str = "", **inputs) -> tuple[grpc.StatusCode, str]:
    request = serving.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    try:
        prediction.Predict(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


INVALID = grpc.StatusCode.INVALID_ARGUMENT
CASES = {
    "empty request": ({}, "Missing named input: text in 'inputs' object."),
    "float ids": ({"input_ids": tensor("DT_FLOAT", [1, 3], float_val=[1, 2, 3])},
                  "input 'input_ids' must be DT_INT32 or DT_INT64 (token ids), got DT_FLOAT"),
    "int text": ({"text": tensor("DT_INT64", [1], int64_val=[5])}, "input 'text' must be DT_STRING (the texts), got DT_INT64"),
    "unknown dtype": ({"input_ids": tensor("DT_INVALID", [1, 1])}, "must be DT_INT32 or DT_INT64 (token ids), got DT_INVALID"),
    "text of rank 2": ({"text": tensor("DT_STRING", [1, 1], string_val=[b"x"])},
                       "Input 'text' must have shape [-1] (a list of strings), got [1,1]"),
    "ids of rank 1": ({"input_ids": tensor("DT_INT64", [3], int64_val=[101, 5, 102])},
                      "Input 'input_ids' must have shape [-1, -1] (a list of id lists, one per sentence), got [3]"),
    "no texts": ({"text": tensor("DT_STRING", [0])}, "Input 'text' is empty; send at least one text"),
    "too many values": ({"text": tensor("DT_STRING", [1], string_val=[b"a", b"b"])},
                        "input 'text' holds 2 values but its shape has room for 1; fix tensor_shape"),
    "huge shape, one value": ({"input_ids": tensor("DT_INT64", [10**6, 10**6], int64_val=[1])},
                              "input 'input_ids' has shape [1000000, 1000000] (1000000000000 values)"),
    "negative dimension": ({"text": tensor("DT_STRING", [-1], string_val=[b"a"])}, "has a negative dimension"),
    "unknown rank": ({"text": core.TensorProto(dtype=core.DT_STRING, tensor_shape=core.TensorShapeProto(unknown_rank=True))},
                     "input 'text' has an unknown rank"),
    "short tensor_content": ({"input_ids": tensor("DT_INT32", [1, 4], tensor_content=b"\x01\x00\x00\x00")},
                             "input 'input_ids': tensor_content has 4 bytes, shape [1, 4] of DT_INT32 needs 16"),
    "bad utf-8": ({"text": tensor("DT_STRING", [1], string_val=[b"\xff\xfe"])}, "is not valid UTF-8"),
    "id out of vocabulary": ({"input_ids": tensor("DT_INT64", [1, 2], int64_val=[101, 10**12])}, "input_ids must lie in [0, "),
    "negative id": ({"input_ids": tensor("DT_INT32", [1, 2], int_val=[101, -5])}, "input_ids must lie in [0, "),
    "mask of another shape": ({"input_ids": tensor("DT_INT64", [1, 2], int64_val=[101, 102]),
                               "attention_mask": tensor("DT_INT64", [1, 3], int64_val=[1, 1, 1])},
                              "attention_mask has shape [1, 3] but input_ids has [1, 2]"),
    "unknown input": ({"image": tensor("DT_STRING", [1], string_val=[b"x"])},
                      "input tensor alias not found in signature: image. Inputs expected to be in the set "
                      "{text,input_ids,attention_mask,token_type_ids}."),
    "too many instances": ({"text": tensor("DT_STRING", [9], string_val=[b"x"] * 9)}, "Request has 9 instances; the limit is 8"),
    "text too long": ({"text": tensor("DT_STRING", [1], string_val=[("长" * 10_001).encode()])}, "Text 0 has 10001 characters"),
}


@pytest.mark.parametrize("inputs, message", CASES.values(), ids=CASES.keys())
def test_bad_tensors_are_invalid_argument_with_a_message(small_limit_server, inputs, message):
    _, _, prediction = small_limit_server
    code, details = predict(prediction, **inputs)
    assert code == INVALID and message in details, details


def test_unknown_signature_is_invalid_argument(small_limit_server):
    _, _, prediction = small_limit_server
    assert predict(prediction, "classify_x", text=tensors.string_tensor(["a"])) == (
        INVALID, 'Serving signature name: "classify_x" not found in signature def')
    code, details = predict(prediction, "ids", text=tensors.string_tensor(["a"]))
    assert code == INVALID and "input tensor alias not found in signature: text" in details


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05abc", bytes(range(256))],
                         ids=["garbage", "huge length", "truncated map entry", "all bytes"])
def test_malformed_protobuf_bytes_are_invalid_argument(small_limit_server, payload):
    _, channel, _ = small_limit_server
    code, details = raw_call(channel, PREDICT, payload)
    assert code == INVALID and "Request is not a valid tensorflow.serving.PredictRequest message" in details


def test_hostile_multi_inference_requests_are_invalid_argument(small_limit_server):
    _, channel, prediction = small_limit_server
    method = "/tensorflow.serving.PredictionService/MultiInference"
    code, details = raw_call(channel, method, b"\x0a\xff\xff\xff\xff\x0f")
    assert code == INVALID and "Request is not a valid tensorflow.serving.MultiInferenceRequest message" in details
    assert raw_call(channel, method, b"")[0] == INVALID  # no tasks
    request = serving.MultiInferenceRequest()
    for _ in range(1000):  # many tasks: refused at the second, as a duplicate
        request.tasks.add(method_name="tensorflow/serving/classify").model_spec.name = "tiny"
    for _ in range(9):  # over max_instances 8, were the tasks fine
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append("好".encode())
    assert raw_call(channel, method, request.SerializeToString()) == (
        INVALID, "Duplicate evaluation of signature: serving_default")
    del request.tasks[1:]
    assert raw_call(channel, method, request.SerializeToString()) == (
        INVALID, "Request has 9 instances; the limit is 8 per request (split the request or raise --max_instances)")


def test_an_empty_message_is_a_valid_empty_request(small_limit_server):
    _, channel, _ = small_limit_server
    assert raw_call(channel, PREDICT, b"") == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest()")


def test_a_message_over_the_receive_limit_is_resource_exhausted(small_limit_server):
    _, _, prediction = small_limit_server
    code, _ = predict(prediction, text=tensors.string_tensor(["好" * 30_000]))  # 90 KB > 64 KiB
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_deeply_nested_bytes_are_invalid_argument(small_limit_server):
    # Field 1 (model_spec) nested 5,000 times: protobuf's recursion limit, not a crash.
    _, channel, _ = small_limit_server
    payload = b""
    for _ in range(5000):
        payload = b"\x0a" + _varint(len(payload)) + payload
    code, details = raw_call(channel, PREDICT, payload)
    assert code == INVALID


def test_server_still_answers_after_the_abuse(small_limit_server):
    server, channel, prediction = small_limit_server
    request = serving.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["text"].CopyFrom(tensors.string_tensor(["很好"]))
    output = prediction.Predict(request, timeout=30).outputs["probabilities"]
    probabilities = np.asarray(output.float_val)
    assert probabilities.shape == (2,) and abs(probabilities.sum() - 1) < 1e-5
    metrics = server.metrics.render()[0].decode()
    assert 'code="INVALID_ARGUMENT",model="tiny",protocol="grpc",route="Predict"' in metrics
    assert 'code="INTERNAL"' not in metrics and 'code="UNKNOWN"' not in metrics


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
