"""Calls a server with TF Serving's official Python stubs (`tensorflow-serving-api`) and
`tf.make_tensor_proto`, exactly as a TF Serving user would; prints the answers as one JSON object.

Run with .venv-tf's interpreter (scripts/setup_tf_client.sh), never imported by the tests:

    .venv-tf/bin/python tests/serving/grpc/official_client.py 127.0.0.1:8500 MODEL < request.json

stdin: {"texts": [...], "input_ids": [[...128 ids...], ...]}.
"""

import json
import sys

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def main() -> None:
    target, model = sys.argv[1], sys.argv[2]
    request_data = json.load(sys.stdin)
    texts, input_ids = request_data["texts"], request_data["input_ids"]
    channel = grpc.insecure_channel(target)
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    answers = {}

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
    response = prediction.Predict(request, timeout=30)
    answers["texts"] = tf.make_ndarray(response.outputs["probabilities"]).tolist()
    answers["version"] = response.model_spec.version.value

    # The 2019 demo's request: int32 ids [batch, 128], zero-padded, in tensor_content.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(input_ids, dtype=tf.int32))
    response = prediction.Predict(request, timeout=30)
    answers["input_ids"] = tf.make_ndarray(response.outputs["probabilities"]).tolist()

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    for text in texts:
        example = request.input.example_list.examples.add()
        example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
    response = prediction.Classify(request, timeout=30)
    answers["classify"] = [[[c.label, c.score] for c in result.classes] for result in response.result.classifications]

    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add(method_name="tensorflow/serving/classify").model_spec.name = model
    for text in texts:
        example = request.input.example_list.examples.add()
        example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
    response = prediction.MultiInference(request, timeout=30)
    answers["multi_inference"] = [
        [result.model_spec.name, result.model_spec.signature_name,
         [[[c.label, c.score] for c in row.classes] for row in result.classification_result.classifications]]
        for result in response.results]
    request.tasks.add(method_name="tensorflow/serving/regress").model_spec.name = model
    request.tasks[1].model_spec.signature_name = "ids"
    try:
        prediction.MultiInference(request, timeout=30)
        answers["multi_inference_regress"] = "OK"
    except grpc.RpcError as error:
        answers["multi_inference_regress"] = error.code().name

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    output = signatures.signature_def["serving_default"].outputs["probabilities"]
    answers["metadata"] = {
        "signatures": sorted(signatures.signature_def),
        "output_dtype": tf.dtypes.as_dtype(output.dtype).name,
        "output_shape": [dim.size for dim in output.tensor_shape.dim],
    }

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    answers["status"] = [[s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state)]
                         for s in response.model_version_status]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "no-such-model"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
    try:
        prediction.Predict(request, timeout=30)
        answers["unknown_model"] = "OK"
    except grpc.RpcError as error:
        answers["unknown_model"] = error.code().name
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
