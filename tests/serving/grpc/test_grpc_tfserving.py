"""TF Serving's gRPC API over the tiny model, with our own generated stubs: every RPC and error code.

REST answers from the same server are the reference: the same texts must give the same
probabilities over both protocols."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest
from grpc_harness import GrpcInProcessServer, core, grpc_base, grpc_server, serving, stubs  # noqa: F401 (fixtures)

from bertserve.serving.app import AppOptions
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.grpc import tensors

TEXTS = ["这家酒店很好", "太差了,再也不来"]


@pytest.fixture(scope="module")
def api(grpc_server):
    channel, prediction, model = stubs(grpc_server.grpc_target)
    yield grpc_server, prediction, model
    channel.close()


def predict_request(model="tiny", **inputs) -> object:
    request = serving.PredictRequest()
    request.model_spec.name = model
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    return request


def rest_probabilities(server, texts) -> np.ndarray:
    body = httpx.post(f"{server.url}/v1/models/tiny:predict", json={"instances": texts}, timeout=30).json()
    return np.asarray(body["predictions"], dtype=np.float32)


def as_array(proto) -> np.ndarray:
    shape = [dim.size for dim in proto.tensor_shape.dim]
    return np.asarray(proto.float_val, dtype=np.float32).reshape(shape)


def status_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value.code(), raised.value.details()


def test_predict_texts_matches_rest(api):
    server, prediction, _ = api
    response = prediction.Predict(predict_request(text=tensors.string_tensor(TEXTS)), timeout=30)
    output = response.outputs["probabilities"]
    assert output.dtype == core.DT_FLOAT
    assert [dim.size for dim in output.tensor_shape.dim] == [2, 2]
    np.testing.assert_allclose(as_array(output), rest_probabilities(server, TEXTS), atol=1e-6)
    assert (response.model_spec.name, response.model_spec.version.value) == ("tiny", 1)
    assert response.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize("dtype", ["DT_INT32", "DT_INT64"])
@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "typed_values"])
def test_predict_demo_input_ids_padded_to_128(api, chinese_tokenizer, dtype, content):
    """The 2019 demo's request: input_ids [batch, 128], zero-padded, no mask (mask = ids != 0)."""
    server, prediction, _ = api
    ids = server.manager.servable("tiny").model.tokenizer.encode(TEXTS, pad_to=128).input_ids
    proto = core.TensorProto(dtype=getattr(core, dtype))
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=128)
    if content:
        proto.tensor_content = np.asarray(ids, dtype="<i4" if dtype == "DT_INT32" else "<i8").tobytes()
    else:
        getattr(proto, "int_val" if dtype == "DT_INT32" else "int64_val").extend(np.ravel(ids).tolist())
    response = prediction.Predict(predict_request(input_ids=proto), timeout=30)
    np.testing.assert_allclose(as_array(response.outputs["probabilities"]), rest_probabilities(server, TEXTS), atol=1e-5)


def test_version_and_label_selection(api):
    server, prediction, _ = api
    request = predict_request(text=tensors.string_tensor(TEXTS[:1]))
    request.model_spec.version.value = 1
    assert prediction.Predict(request, timeout=30).model_spec.version.value == 1
    request.model_spec.version_label = "stable"
    assert prediction.Predict(request, timeout=30).model_spec.version.value == 1
    request.model_spec.version.value = 7
    assert status_of(prediction.Predict, request) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(tiny, 7)")
    request.model_spec.version_label = "canary"
    assert status_of(prediction.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary")
    assert status_of(prediction.Predict, predict_request("nope", text=tensors.string_tensor(TEXTS))) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")


def test_output_filter(api):
    _, prediction, _ = api
    request = predict_request(text=tensors.string_tensor(TEXTS))
    request.output_filter.append("probabilities")
    assert list(prediction.Predict(request, timeout=30).outputs) == ["probabilities"]
    request.output_filter.append("logits")
    assert status_of(prediction.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: logits Outputs expected to be in the set {probabilities}.")


def test_classify_returns_every_label_with_the_predict_probabilities(api):
    server, prediction, _ = api
    request = serving.ClassificationRequest()
    request.model_spec.name = "tiny"
    for text in TEXTS:
        example = request.input.example_list.examples.add()
        example.features.feature["text"].bytes_list.value.append(text.encode())
    response = prediction.Classify(request, timeout=30)
    labels = list(server.manager.servable("tiny").model.labels)
    rows = [[(c.label, c.score) for c in result.classes] for result in response.result.classifications]
    assert [[label for label, _ in row] for row in rows] == [labels, labels]
    np.testing.assert_allclose([[score for _, score in row] for row in rows], rest_probabilities(server, TEXTS), atol=1e-6)
    assert response.model_spec.version.value == 1


def test_classify_reads_the_text_from_the_context(api):
    _, prediction, _ = api
    request = serving.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.input.example_list_with_context.examples.add()
    request.input.example_list_with_context.context.features.feature["text"].bytes_list.value.append("很好".encode())
    assert len(prediction.Classify(request, timeout=30).result.classifications) == 1


def test_classify_errors(api):
    _, prediction, _ = api
    request = serving.ClassificationRequest()
    request.model_spec.name = "tiny"
    assert status_of(prediction.Classify, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: send tf.Examples in input.example_list")
    example = request.input.example_list.examples.add()
    example.features.feature["review"].bytes_list.value.append(b"x")
    code, details = status_of(prediction.Classify, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Example 0 has no 'text' feature" in details
    example.features.feature["text"].int64_list.value.append(3)
    code, details = status_of(prediction.Classify, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "must be a bytes_list holding exactly one text" in details


def test_regress_says_the_model_is_a_classifier(api):
    _, prediction, _ = api
    request = serving.RegressionRequest()
    request.model_spec.name = "tiny"
    request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(b"ok")
    code, details = status_of(prediction.Regress, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("Expected regression signature method_name to be tensorflow/serving/regress.")


def multi_inference_request(*tasks: tuple[str, str, str], texts=TEXTS) -> object:
    """(model, signature_name, method_name) per task, on tf.Examples of `texts`."""
    request = serving.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = model
        task.model_spec.signature_name = signature
    for text in texts:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())
    return request


CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


def test_multi_inference_answers_each_classify_task_as_classify_does(api):
    server, prediction, _ = api
    request = multi_inference_request(("tiny", "", CLASSIFY), ("tiny", "ids", CLASSIFY))
    request.tasks[0].model_spec.version_label = "stable"  # the first task chooses the version
    response = prediction.MultiInference(request, timeout=30)
    classify = serving.ClassificationRequest(input=request.input)
    classify.model_spec.name = "tiny"
    expected = prediction.Classify(classify, timeout=30).result
    assert [(r.model_spec.name, r.model_spec.version.value, r.model_spec.signature_name, r.WhichOneof("result"))
            for r in response.results] == [("tiny", 1, "serving_default", "classification_result"),
                                           ("tiny", 1, "ids", "classification_result")]
    assert [r.classification_result for r in response.results] == [expected, expected]
    labels = list(server.manager.servable("tiny").model.labels)
    scores = [[c.score for c in row.classes] for row in response.results[0].classification_result.classifications]
    assert [[c.label for c in row.classes] for row in response.results[0].classification_result.classifications] == [labels] * 2
    np.testing.assert_allclose(scores, rest_probabilities(server, TEXTS), atol=1e-6)
    assert 'bertserve_requests_total{code="OK",model="tiny",protocol="grpc",route="MultiInference"}' in (
        server.metrics.render()[0].decode())


@pytest.mark.parametrize("tasks, texts, expected", [
    ((), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT, "MultiInferenceRequest has no tasks: add one InferenceTask with "
                                                   "method_name tensorflow/serving/classify and the model's name")),
    ((("tiny", "", REGRESS),), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT,
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/predict "
        "(this model is a classifier: use :classify or :predict)")),
    ((("tiny", "", CLASSIFY), ("other", "ids", CLASSIFY)), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.")),
    ((("tiny", "", CLASSIFY), ("tiny", "serving_default", CLASSIFY)), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: serving_default")),
    ((("tiny", "", CLASSIFY), ("tiny", "ids", REGRESS)), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT,
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/predict "
        "(this model is a classifier: use :classify or :predict)")),
    ((("", "", CLASSIFY),), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT, "Found ModelSpec with an empty model name.")),
    ((("tiny", "logits", CLASSIFY),), TEXTS, (grpc.StatusCode.INVALID_ARGUMENT,
                                              'Serving signature name: "logits" not found in signature def')),
    ((("tiny", "", "tensorflow/serving/predict"),), TEXTS, (grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict (this model answers tensorflow/serving/classify tasks)")),
    ((("nope", "", CLASSIFY),), TEXTS, (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")),
    ((("tiny", "", CLASSIFY),), [], (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: send tf.Examples in input.example_list")),
], ids=["no-tasks", "regress", "two-models", "duplicate", "classify-and-regress", "no-name", "unknown-signature",
        "predict-method", "unknown-model", "no-examples"])
def test_multi_inference_errors_are_tf_servings(api, tasks, texts, expected):
    _, prediction, _ = api
    assert status_of(prediction.MultiInference, multi_inference_request(*tasks, texts=texts)) == expected


def test_get_model_metadata(api):
    server, prediction, _ = api
    request = serving.GetModelMetadataRequest()
    request.model_spec.name = "tiny"
    request.metadata_field.extend(["signature_def", "labels"])
    response = prediction.GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("tiny", 1)
    signatures = serving.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert (default.inputs["text"].name, default.inputs["text"].dtype) == ("text:0", core.DT_STRING)
    output = default.outputs["probabilities"]
    assert (output.dtype, [dim.size for dim in output.tensor_shape.dim]) == (core.DT_FLOAT, [-1, 2])
    assert sorted(signatures.signature_def["ids"].inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    labels = core.TensorProto()
    assert response.metadata["labels"].Unpack(labels)
    assert [label.decode() for label in labels.string_val] == list(server.manager.servable("tiny").model.labels)
    del request.metadata_field[:]
    code, details = status_of(prediction.GetModelMetadata, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at least one metadata_field" in details
    request.metadata_field.append("assets")
    assert status_of(prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field assets is not supported (supported: signature_def, labels)")


def test_get_model_status_and_reload_config(api):
    _, _, model = api
    request = serving.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    [status] = model.GetModelStatus(request, timeout=30).model_version_status
    assert (status.version, status.state, status.status.error_code, status.status.error_message) == (
        1, serving.ModelVersionStatus.AVAILABLE, 0, "")
    request.model_spec.version.value = 3
    assert status_of(model.GetModelStatus, request) == (grpc.StatusCode.NOT_FOUND, "Could not find version 3 of model tiny")
    code, details = status_of(model.HandleReloadConfigRequest, serving.ReloadConfigRequest())
    assert code == grpc.StatusCode.UNIMPLEMENTED and "loaded by polling" in details


def test_requests_are_counted_with_the_grpc_protocol_label(api):
    server, prediction, _ = api
    prediction.Predict(predict_request(text=tensors.string_tensor(TEXTS)), timeout=30)
    status_of(prediction.Predict, predict_request("nope", text=tensors.string_tensor(TEXTS)))
    text = server.metrics.render()[0].decode()
    assert 'bertserve_requests_total{code="OK",model="tiny",protocol="grpc",route="Predict"}' in text
    assert 'bertserve_requests_total{code="NOT_FOUND",model="nope",protocol="grpc",route="Predict"}' in text


def test_health_and_reflection(api):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server, _, _ = api
    with grpc.insecure_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = list(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30))
        names = {service.name for service in answer.list_services_response.service}
        assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService", "grpc.health.v1.Health"} <= names


def test_full_queue_is_unavailable_and_a_passed_deadline_is_deadline_exceeded(grpc_base):
    # 4 rows fit in the queue; a lone row waits up to 2 s for company, past the 0.2 s deadline.
    batching = BatchingOptions(max_batch_size=4, max_enqueued_batches=1, batch_timeout_micros=2_000_000)
    with GrpcInProcessServer(grpc_base, "tiny", batching=batching,
                             app_options=AppOptions(request_timeout_seconds=0.2)) as server:
        channel, prediction, _ = stubs(server.grpc_target)
        with channel:
            code, details = status_of(prediction.Predict, predict_request(text=tensors.string_tensor(["好"] * 5)))
            assert code == grpc.StatusCode.UNAVAILABLE and "queue" in details.lower()
            code, details = status_of(prediction.Predict, predict_request(text=tensors.string_tensor(["好"])))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "tiny" in details
