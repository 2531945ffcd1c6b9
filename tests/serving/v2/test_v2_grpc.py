"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`): exact messages, raw and
typed contents, status codes, and the same probabilities as V2 REST and TF Serving's `:predict`."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from bertserve import __version__
from bertserve.serving.grpc import v2_service
from bertserve.serving.grpc.protos import load
from bertserve.serving.grpc.rpc import GrpcContext

from v2_app import v2, v2_base  # noqa: F401  (fixtures)

pb, pb_grpc = load("grpc_predict_v2")
TEXTS = ["这家酒店很好", "房间太差了"]
DEMO_IDS = [101, 6821, 2157, 6983, 2421, 2523, 1962, 102] + [0] * 120
LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def channel(v2):
    """A grpc.aio server with only the V2 service, on the test app's loop and manager."""

    async def start():
        server = grpc.aio.server()
        v2_service.add_to_server(server, GrpcContext(v2.manager, v2.app.state.options, v2.metrics))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = v2.call(start())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    v2.call(server.stop(0))


@pytest.fixture(scope="module")
def stub(channel):
    return pb_grpc.GRPCInferenceServiceStub(channel)


def expected_probabilities(v2, texts) -> np.ndarray:
    body = v2.request("POST", "/v1/models/tiny:predict", json={"instances": texts}).json()
    return np.asarray(body["predictions"], dtype=np.float32)


def raw_texts(texts) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def test_health_and_metadata(stub):
    assert stub.ServerLive(pb.ServerLiveRequest()) == pb.ServerLiveResponse(live=True)
    assert stub.ServerReady(pb.ServerReadyRequest()) == pb.ServerReadyResponse(ready=True)
    assert stub.ModelReady(pb.ModelReadyRequest(name="tiny", version="1")).ready is True
    assert stub.ServerMetadata(pb.ServerMetadataRequest()) == pb.ServerMetadataResponse(
        name="bertserve", version=__version__, extensions=["binary_tensor_data"])
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"))
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("tiny", ["1", "2"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("text", "BYTES", [-1]), ("input_ids", "INT64", [-1, -1]),
        ("attention_mask", "INT64", [-1, -1]), ("token_type_ids", "INT64", [-1, -1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("probabilities", "FP32", [-1, 2]), ("label", "BYTES", [-1])]


def test_infer_raw_texts_answers_raw_outputs(stub, v2):
    request = pb.ModelInferRequest(model_name="tiny", id="a1", raw_input_contents=[raw_texts(TEXTS)])
    request.inputs.add(name="text", datatype="BYTES", shape=[2])
    response = stub.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("tiny", "2", "a1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [("probabilities", "FP32", [2, 2]), ("label", "BYTES", [2])]
    probabilities = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 2)
    expected = expected_probabilities(v2, TEXTS)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    labels = [LABELS[i] for i in expected.argmax(axis=1)]
    assert response.raw_output_contents[1] == b"".join(struct.pack("<I", len(n)) + n.encode() for n in labels)


def test_infer_typed_ids_and_output_selection(stub, v2):
    request = pb.ModelInferRequest(model_name="tiny", model_version="1")
    tensor = request.inputs.add(name="input_ids", datatype="INT64", shape=[1, 128])
    tensor.contents.int64_contents.extend(DEMO_IDS)
    request.outputs.add(name="probabilities")
    response = stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["probabilities"] and response.model_version == "1"
    probabilities = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(1, 2)
    np.testing.assert_allclose(probabilities, expected_probabilities(v2, [TEXTS[0]]), atol=1e-5)


@pytest.mark.parametrize("change, code, message", [
    (lambda r: setattr(r, "model_name", "nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (lambda r: setattr(r, "model_version", "x"), grpc.StatusCode.INVALID_ARGUMENT, "model version must be a non-negative integer, got 'x'"),
    (lambda r: r.raw_input_contents.append(b"\x05\x00\x00\x00ab"), grpc.StatusCode.INVALID_ARGUMENT,
     "input text: BYTES element 0 claims 5 bytes, only 2 remain"),
    (lambda r: r.outputs.add(name="logits"), grpc.StatusCode.INVALID_ARGUMENT, "unknown output logits; this model gives probabilities, label"),
    (lambda r: r.inputs[0].shape.append(5), grpc.StatusCode.INVALID_ARGUMENT, "input text: shape [1, 5] needs 5 elements, got 1"),
    (lambda r: r.inputs[0].shape.extend([1, 1]), grpc.StatusCode.INVALID_ARGUMENT, "input text must have shape [batch] or [batch, 1], got [1, 1, 1]"),
])
def test_errors_are_status_codes(stub, change, code, message):
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append("很好".encode())
    change(request)
    if request.raw_input_contents:
        tensor.ClearField("contents")
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert (caught.value.code(), caught.value.details()) == (code, message)


def test_unimplemented_and_counted_as_v2_grpc(stub, channel, v2):
    stub.ServerLive(pb.ServerLiveRequest())
    assert 'protocol="v2-grpc",route="ServerLive"' in v2.metrics.render()[0].decode()
    # Triton's service has more methods (RepositoryIndex, ...): not served here.
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/inference.GRPCInferenceService/RepositoryIndex")(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def infer_request(**fields):
    request = pb.ModelInferRequest(model_name="tiny", **fields)
    return request


@pytest.mark.parametrize("build, message", [
    (lambda: infer_request(), "no inputs: send text (BYTES) or input_ids (INT64)"),
    (lambda: _with_text(infer_request(raw_input_contents=[b"", b""])), "raw_input_contents has 2 entries for 1 inputs; give one per input"),
    (lambda: _with_text(infer_request(raw_input_contents=[b"\x02\x00\x00\x00ok"]), typed=True),
     "input text: contents and raw_input_contents cannot be used together"),
    (lambda: _ids(infer_request(), "FP16", [1, 1]), "input input_ids: FP16 data must be sent in raw_input_contents"),
    (lambda: _ids(infer_request(), "INT64", [2**40]), "input input_ids: shape [1099511627776] has 1099511627776 elements, more than the limit of 65536"),
    (lambda: _ids(infer_request(), "INT64", [1, 3]), "input input_ids: shape [1, 3] needs 3 elements, got 2"),
    (lambda: _ids(infer_request(), "INT64", [1, 2], raw=b"\x00" * 5), "input input_ids: shape [1, 2] of INT64 needs 16 bytes, got 5"),
    (lambda: _with_text(infer_request(id="请求-1\x00")), None),
])
def test_malformed_infer_requests_are_invalid_argument(stub, build, message):
    request = build()
    if message is None:  # a harmless id (replacement character, NUL) is echoed, not refused
        assert stub.ModelInfer(request).id == request.id
        return
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def _with_text(request, typed: bool = False):
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
    if typed or not request.raw_input_contents:
        tensor.contents.bytes_contents.append("很好".encode())
    return request


def _ids(request, datatype: str, shape: list[int], raw: bytes | None = None):
    tensor = request.inputs.add(name="input_ids", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    elif datatype == "INT64":
        tensor.contents.int64_contents.extend([101, 102])
    return request


def test_garbage_message_bytes_are_invalid_argument(channel):
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(b"\xff\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
