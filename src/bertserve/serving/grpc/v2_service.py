"""The Open Inference Protocol (KServe V2) over gRPC: `inference.GRPCInferenceService` on --port.

    ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer
    (the other methods of Triton's larger service answer UNIMPLEMENTED)

Same model, same inputs and outputs as V2 over REST (`serving/v2/model_io.py`), through the same
servable batcher. Inputs come typed (`contents`) or raw (`raw_input_contents`, what
`tritonclient.grpc` sends); outputs always go back in `raw_output_contents`, which is where
`tritonclient.grpc` reads them. Errors are gRPC status codes from `ServingError.code`
(INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED), as for TF Serving's gRPC API.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from bertserve.errors import RequestError
from bertserve.serving.grpc.protos import load
from bertserve.serving.grpc.rpc import GrpcContext, deadline_of, unary_service
from bertserve.serving.v2 import model_io
from bertserve.serving.v2.tensors import Tensor, check_header, check_text, raw_of, tensor_from_list, tensor_from_raw

v2, _ = load("grpc_predict_v2")
PROTOCOL = "v2-grpc"
# The typed field of InferTensorContents that holds each datatype (FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def add_to_server(server: grpc.aio.Server, context: GrpcContext) -> list[str]:
    service = V2Service(context)
    descriptor = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    server.add_generic_rpc_handlers((
        unary_service(descriptor, {
            "ServerLive": service.server_live, "ServerReady": service.server_ready, "ModelReady": service.model_ready,
            "ServerMetadata": service.server_metadata, "ModelMetadata": service.model_metadata,
            "ModelInfer": service.model_infer,
        }, context.metrics, PROTOCOL),
    ))
    return [descriptor.full_name]


def _version(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise RequestError(f"model version must be a non-negative integer, got {text[:40]!r}")
    return int(text)


class V2Service:
    def __init__(self, context: GrpcContext):
        self.manager = context.manager
        self.options = context.options

    async def server_live(self, request: Any, context: Any) -> Any:
        return v2.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        return v2.ServerReadyResponse(ready=bool(self.manager.ready()))

    async def model_ready(self, request: Any, context: Any) -> Any:
        version = _version(request.version)
        if request.name not in self.manager.model_names() or version is not None:
            self.manager.statuses(request.name, version)  # NOT_FOUND for an unknown model or version
        try:
            self.manager.servable(request.name, version)
        except RequestError:
            return v2.ModelReadyResponse(ready=False)
        return v2.ModelReadyResponse(ready=True)

    async def server_metadata(self, request: Any, context: Any) -> Any:
        from bertserve import __version__

        return v2.ServerMetadataResponse(**model_io.server_metadata(__version__))

    async def model_metadata(self, request: Any, context: Any) -> Any:
        version = _version(request.version)
        servable = self.manager.servable(request.name, version)
        versions = [status.version for status in self.manager.statuses(request.name) if status.state == "AVAILABLE"]
        metadata = model_io.model_metadata(request.name, sorted(versions) if version is None else [version], servable.model)
        metadata.pop("parameters")  # REST-only: the gRPC message has no field for the label names
        return v2.ModelMetadataResponse(**metadata)

    async def model_infer(self, request: Any, context: Any) -> Any:
        check_text(request.id, "\"id\"")
        tensors = decode_inputs(request, max_elements=int(self.options.max_body_bytes))
        requested = model_io.check_requested([output.name for output in request.outputs])
        servable = self.manager.servable(request.model_name, _version(request.model_version))
        inputs = model_io.model_inputs(
            tensors, servable.model.tokenizer.pad_id, self.options.max_instances, self.options.max_text_chars
        )
        deadline = deadline_of(context, self.options.request_timeout_seconds)
        try:  # the servable enforces the deadline in its queue; this is the backstop
            probabilities = await asyncio.wait_for(
                model_io.run(servable, inputs, deadline), max(0.0, deadline - time.monotonic()) + 1.0
            )
        except asyncio.TimeoutError:
            raise RequestError(f"Deadline exceeded: model {request.model_name} did not answer in time", 504) from None
        outputs = model_io.model_outputs(probabilities, list(servable.model.labels), requested)
        return encode_outputs(request, str(servable.version), outputs)


def decode_inputs(request: Any, max_elements: int) -> list[Tensor]:
    """The request's input tensors, from raw_input_contents (one per input) or typed contents."""
    if not request.inputs:
        raise RequestError("no inputs: send text (BYTES) or input_ids (INT64)")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; give one per input")
    tensors = []
    for index, item in enumerate(request.inputs):
        header = check_header(item.name, item.datatype, list(item.shape), max_elements)
        if raw:
            if item.HasField("contents"):
                raise RequestError(f"input {item.name}: contents and raw_input_contents cannot be used together")
            tensors.append(tensor_from_raw(*header, raw[index]))
        elif item.datatype not in CONTENTS_FIELD:
            raise RequestError(f"input {item.name}: {item.datatype} data must be sent in raw_input_contents")
        else:
            tensors.append(tensor_from_list(*header, list(getattr(item.contents, CONTENTS_FIELD[item.datatype]))))
    return tensors


def encode_outputs(request: Any, version: str, outputs: list[Tensor]) -> Any:
    response = v2.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
    for tensor in outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape))
        response.raw_output_contents.append(raw_of(tensor))
    return response
