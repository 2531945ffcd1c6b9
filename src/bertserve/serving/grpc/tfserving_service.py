"""TensorFlow Serving's gRPC API: `tensorflow.serving.PredictionService` and `ModelService`.

Same semantics as the REST API (`serving/app.py`), through the same manager and servable calls and
the same request parsing (`json_tensor.parse_named_inputs`, `text_batch`):

    Predict           inputs {"text": DT_STRING [batch]} or {"input_ids": DT_INT32/DT_INT64 [batch, len]
                      (+ optional attention_mask, token_type_ids; a missing mask is ids != [PAD])}
                      -> outputs {"probabilities": DT_FLOAT [batch, labels]}; output_filter honoured
    Classify          tf.Examples whose bytes feature "text" holds one text (or the context's)
                      -> one Classifications per example: (label, score) for every label
    Regress           INVALID_ARGUMENT: the model is a classifier (REST's :regress answer)
    MultiInference    tasks on one Input, all naming the same model, one per signature: a classify
                      task answers what Classify does; a regress task INVALID_ARGUMENT as Regress
    GetModelMetadata  metadata_field "signature_def" (TF Serving's SignatureDefMap, packed in Any)
                      and "labels" (ours: a DT_STRING TensorProto of the label names)
    GetModelStatus    every version's state and status, as REST's GET /v1/models/NAME
    HandleReloadConfigRequest   UNIMPLEMENTED (versions are picked up by polling the base path)

ModelSpec chooses the model (`name`), a version (`version`) or a label (`version_label`); errors
carry `ServingError.code`: NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad
tensor, UNAVAILABLE when the batch queue is full, DEADLINE_EXCEEDED past the deadline (the
server's --rest_api_timeout_in_ms or the client's own deadline, whichever comes first).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from google.protobuf import json_format

from bertserve.errors import RequestError
from bertserve.serving import tfserving
from bertserve.serving.grpc import tensors
from bertserve.serving.grpc.protos import load
from bertserve.serving.grpc.rpc import GrpcContext, deadline_of, unary_service
from bertserve.serving.json_tensor import check_signature, parse_named_inputs, text_batch
from bertserve.tokenizer import Encoded

serving, _ = load("tensorflow_serving")
error_codes, _ = load("tensorflow_error")

PROTOCOL = "grpc"  # the `protocol` label of this API's Prometheus series
# Most values one input tensor may hold per allowed instance (16 x the usual 128 ids): bounds the
# memory a small message can claim through a large tensor_shape; the instance and text limits
# (--max_instances, --max_text_chars) then apply as over REST.
MAX_VALUES_PER_INSTANCE = 2048
METADATA_FIELDS = ("signature_def", "labels")


def add_to_server(server: grpc.aio.Server, context: GrpcContext) -> list[str]:
    """Add both services to `server`; returns their full names (for health and reflection)."""
    service = TFServingService(context)
    prediction = serving.DESCRIPTOR.services_by_name["PredictionService"]
    model = serving.DESCRIPTOR.services_by_name["ModelService"]
    server.add_generic_rpc_handlers((
        unary_service(prediction, {
            "Predict": service.predict, "Classify": service.classify, "Regress": service.regress,
            "MultiInference": service.multi_inference, "GetModelMetadata": service.get_model_metadata,
        }, context.metrics, PROTOCOL),
        unary_service(model, {
            "GetModelStatus": service.get_model_status,
            "HandleReloadConfigRequest": service.handle_reload_config_request,
        }, context.metrics, PROTOCOL),
    ))
    return [prediction.full_name, model.full_name]


def _version_choice(spec: Any) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return int(spec.version.value), None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _response_spec(target: Any, name: str, version: int, signature: str | None = None) -> None:
    target.name = name
    target.version.value = version
    if signature is not None:
        target.signature_name = signature


def _fill_classifications(result: Any, labels: list[str], probabilities: Any) -> None:
    """A ClassificationResult: for each example, every label with its probability."""
    for row in probabilities.tolist():
        classes = result.classifications.add().classes
        for label, score in zip(labels, row):
            classes.add(label=label, score=score)


class TFServingService:
    def __init__(self, context: GrpcContext):
        self.manager = context.manager
        self.options = context.options
        self.limits = context.options.limits

    def _servable(self, spec: Any) -> Any:
        version, label = _version_choice(spec)
        return self.manager.servable(spec.name, version, label)

    async def _run(self, work: Any, model: str, deadline: float) -> Any:
        """The servable enforces the deadline in its queue; this is the backstop for the rest."""
        try:
            return await asyncio.wait_for(work, max(0.0, deadline - time.monotonic()) + 1.0)
        except asyncio.TimeoutError:
            raise RequestError(f"Deadline exceeded: model {model} did not answer in time; retry or send fewer instances", 504) from None

    # ---- PredictionService --------------------------------------------------------------------

    async def predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        spec = request.model_spec
        servable = self._servable(spec)
        signature = spec.signature_name
        check_signature(signature)
        allowed = (tfserving.ID_INPUTS if signature == tfserving.IDS_SIGNATURE
                   else (tfserving.TEXT_INPUT, *tfserving.ID_INPUTS))
        for name in request.inputs:
            if name not in allowed:
                raise RequestError(
                    f"input tensor alias not found in signature: {name}. Inputs expected to be in the set "
                    f"{{{','.join(allowed)}}}.", 400
                )
        for name in request.output_filter:
            if name != tfserving.OUTPUT_NAME:
                raise RequestError(
                    f"output tensor alias not found in signature: {name} Outputs expected to be in the set "
                    f"{{{tfserving.OUTPUT_NAME}}}.", 400
                )
        named = {name: (name, tensor) for name, tensor in request.inputs.items()}
        parsed = parse_named_inputs(named, signature, self.limits, self._decode)
        deadline = deadline_of(context, self.options.request_timeout_seconds)
        if parsed.texts is not None:
            work = servable.predict_texts(parsed.texts, deadline)
        else:
            work = servable.predict_encoded(Encoded(**parsed.encoded_ids(servable.model.tokenizer.pad_id)), deadline)
        probabilities = await self._run(work, spec.name, deadline)
        response = serving.PredictResponse()
        _response_spec(response.model_spec, spec.name, servable.version, signature or tfserving.DEFAULT_SIGNATURE)
        response.outputs[tfserving.OUTPUT_NAME].CopyFrom(tensors.float_tensor(probabilities))
        return response

    def _decode(self, item: tuple[str, Any], kind: str) -> tuple[list[int], list[Any]]:
        name, tensor = item
        return tensors.decode(tensor, kind, self.limits.max_instances * MAX_VALUES_PER_INSTANCE, name)

    async def classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        servable, probabilities = await self._classify_examples(request.model_spec, request.input, context)
        response = serving.ClassificationResponse()
        _response_spec(response.model_spec, request.model_spec.name, servable.version, tfserving.DEFAULT_SIGNATURE)
        _fill_classifications(response.result, list(servable.model.labels), probabilities)
        return response

    async def _classify_examples(self, spec: Any, request_input: Any, context: grpc.aio.ServicerContext) -> tuple[Any, Any]:
        """(servable, probabilities [examples, labels]) for the texts of `request_input`'s tf.Examples."""
        texts = self._example_texts(request_input)
        servable = self._servable(spec)
        deadline = deadline_of(context, self.options.request_timeout_seconds)
        return servable, await self._run(servable.predict_texts(texts, deadline), spec.name, deadline)

    async def multi_inference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """TF Serving's checks (multi_inference.cc) and messages, then one Classify for every task."""
        tasks = list(request.tasks)
        if not tasks:
            raise RequestError(f"MultiInferenceRequest has no tasks: add one InferenceTask with method_name "
                               f"{tfserving.CLASSIFY_METHOD} and the model's name", 400)
        name, signatures = tasks[0].model_spec.name, []
        for task in tasks:
            if not task.model_spec.name:
                raise RequestError("Found ModelSpec with an empty model name.", 400)
            if task.model_spec.name != name:
                raise RequestError("All ModelSpecs in a MultiInferenceRequest must access the same model name.", 400)
            signature = task.model_spec.signature_name or tfserving.DEFAULT_SIGNATURE
            if signature in signatures:
                raise RequestError(f"Duplicate evaluation of signature: {signature}", 400)
            signatures.append(signature)
            check_signature(signature)
            if task.method_name == tfserving.REGRESS_METHOD:
                raise tfserving.regress_error()
            if task.method_name != tfserving.CLASSIFY_METHOD:
                raise RequestError(f"Unsupported signature method_name: {task.method_name} "
                                   f"(this model answers {tfserving.CLASSIFY_METHOD} tasks)", 501)
        servable, probabilities = await self._classify_examples(tasks[0].model_spec, request.input, context)
        response = serving.MultiInferenceResponse()
        labels = list(servable.model.labels)
        for signature in signatures:
            result = response.results.add()
            _response_spec(result.model_spec, name, servable.version, signature)
            _fill_classifications(result.classification_result, labels, probabilities)
        return response

    async def regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._example_texts(request.input)  # a bad request is refused as such first, as REST does
        self._servable(request.model_spec)
        raise tfserving.regress_error()

    def _example_texts(self, request_input: Any) -> list[str]:
        """One text per tf.Example: its bytes feature "text" (or the context's), one value."""
        kind = request_input.WhichOneof("kind")
        if kind is None:
            raise RequestError("Input is empty: send tf.Examples in input.example_list", 400)
        examples = getattr(request_input, kind).examples
        context = request_input.example_list_with_context.context if kind == "example_list_with_context" else None
        if not examples:
            raise RequestError("Input is empty: input.example_list has no examples", 400)
        if len(examples) > self.limits.max_instances:
            text_batch([""] * len(examples), self.limits)  # the limit's own message
        texts = []
        for index, example in enumerate(examples):
            features = example.features.feature
            if tfserving.TEXT_INPUT in features:
                feature = features[tfserving.TEXT_INPUT]
            elif context is not None and tfserving.TEXT_INPUT in context.features.feature:
                feature = context.features.feature[tfserving.TEXT_INPUT]
            else:
                raise RequestError(
                    f"Example {index} has no '{tfserving.TEXT_INPUT}' feature; send a bytes_list feature "
                    f"'{tfserving.TEXT_INPUT}' holding the text", 400
                )
            if feature.WhichOneof("kind") != "bytes_list" or len(feature.bytes_list.value) != 1:
                raise RequestError(
                    f"Feature '{tfserving.TEXT_INPUT}' of example {index} must be a bytes_list holding exactly one text", 400
                )
            try:
                texts.append(feature.bytes_list.value[0].decode("utf-8"))
            except UnicodeDecodeError:
                raise RequestError(f"Feature '{tfserving.TEXT_INPUT}' of example {index} is not valid UTF-8", 400) from None
        return text_batch(texts, self.limits)

    async def get_model_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        fields = list(request.metadata_field)
        if not fields:
            raise RequestError(
                f"GetModelMetadataRequest must specify at least one metadata_field ({', '.join(METADATA_FIELDS)})", 400
            )
        for field in fields:
            if field not in METADATA_FIELDS:
                raise RequestError(f"Metadata field {field} is not supported (supported: {', '.join(METADATA_FIELDS)})", 400)
        servable = self._servable(request.model_spec)
        model = servable.model
        labels = list(model.labels)
        response = serving.GetModelMetadataResponse()
        _response_spec(response.model_spec, request.model_spec.name, servable.version)
        if "signature_def" in fields:
            document = tfserving.format_metadata(
                request.model_spec.name, servable.version, labels, int(model.max_seq_length), int(model.tokenizer.vocab_size)
            )
            signatures = json_format.ParseDict(document["metadata"]["signature_def"], serving.SignatureDefMap())
            response.metadata["signature_def"].Pack(signatures)
        if "labels" in fields:
            response.metadata["labels"].Pack(tensors.string_tensor(labels))
        return response

    # ---- ModelService -------------------------------------------------------------------------

    async def get_model_status(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        version, label = _version_choice(request.model_spec)
        response = serving.GetModelStatusResponse()
        for status in self.manager.statuses(request.model_spec.name, version, label):
            entry = response.model_version_status.add(version=status.version)
            entry.state = serving.ModelVersionStatus.State.Value(getattr(status.state, "value", status.state))
            code = status.error_code if status.error_code in error_codes.Code.keys() else "UNKNOWN"
            entry.status.error_code = error_codes.Code.Value(code)
            entry.status.error_message = status.error_message
        return response

    async def handle_reload_config_request(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise RequestError(
            "HandleReloadConfigRequest is not supported: new versions under a model's base path are loaded by "
            "polling; to change the model list, restart with another --model_config_file", 501
        )
