"""One place where a gRPC call becomes a coroutine call: parse, run, map errors, count.

    handler = unary_service(descriptor.services_by_name["PredictionService"],
                            {"Predict": predict, "Classify": classify}, metrics, protocol="grpc")
    server.add_generic_rpc_handlers((handler,))

A method implementation is `async def predict(request, context) -> response` and raises
`ServingError` (or a subclass) for anything the client should hear about: its `.code` (the
canonical status name: INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED, ...) becomes
the gRPC status and its message the details. Requests arrive as bytes and are parsed here, so a
malformed message is INVALID_ARGUMENT (grpc's own deserializer would answer INTERNAL). Methods of
the service without an implementation answer UNIMPLEMENTED (grpc does that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from bertserve.errors import RequestError, ServingError
from bertserve.serving.batching import in_flight_requests

logger = logging.getLogger(__name__)

Method = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]


def unary_service(service: Any, methods: dict[str, Method], metrics: Any, protocol: str) -> grpc.GenericRpcHandler:
    """Handlers for the unary `methods` of `service` (a protobuf ServiceDescriptor)."""
    unknown = set(methods) - {method.name for method in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no method(s) {sorted(unknown)}")
    handlers = {}
    for method in service.methods:
        if method.name in methods:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, GetMessageClass(method.input_type), methods[method.name], metrics, protocol),
                request_deserializer=None,  # bytes: parsed in _unary, so bad bytes are INVALID_ARGUMENT
                response_serializer=_serialize,
            )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def model_name_of(request: Message) -> str:
    """The model a request names: TF Serving's `model_spec.name` (MultiInference: its first task's)
    or the V2 protocol's `model_name`."""
    spec = getattr(request, "model_spec", None)
    if spec is not None:
        return spec.name
    tasks = getattr(request, "tasks", None)
    if tasks:
        return tasks[0].model_spec.name
    return getattr(request, "model_name", "") or ""


def parse(message_class: type[Message], data: bytes) -> Message:
    request = message_class()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as error:
        raise RequestError(
            f"Request is not a valid {message_class.DESCRIPTOR.full_name} message ({error}); "
            "build it with the service's .proto stubs", 400
        ) from None
    return request


def _unary(name: str, message_class: type[Message], method: Method, metrics: Any, protocol: str):
    async def handle(data: bytes, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        model, code, failure = "", "OK", None
        in_flight_requests.count += 1  # as the REST layer does: the batcher runs a lone request inline only when idle
        try:
            request = parse(message_class, data)
            model = model_name_of(request)
            return await method(request, context)
        except ServingError as error:
            code, failure = error.code, str(error)
        except asyncio.CancelledError:  # the client went away or its deadline passed
            code = "CANCELLED"
            raise
        except Exception as error:  # a bug, not the client's fault: say so without a traceback to the client
            logger.exception("unexpected error in gRPC %s", name)
            code, failure = "INTERNAL", f"Internal error: {type(error).__name__}; see the server log"
        finally:
            in_flight_requests.count -= 1
            if metrics is not None:
                metrics.observe_request(model, name, code, time.perf_counter() - started, protocol=protocol)
        await context.abort(grpc.StatusCode[code], failure)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    return handle


@dataclass(frozen=True)
class GrpcContext:
    """What every service module's `add_to_server(server, context)` gets."""

    manager: Any  # serving.manager.ModelManager: servable(), statuses(), model_names()
    options: Any  # serving.app.AppOptions: limits, request_timeout_seconds, max_body_bytes
    metrics: Any = None  # serving.prometheus.ServingMetrics (observe_request(..., protocol=...))


def deadline_of(context: grpc.aio.ServicerContext, timeout_seconds: float) -> float:
    """The request's deadline on time.monotonic(): the server's timeout, or the client's own
    deadline when that comes first."""
    now = time.monotonic()
    deadline = now + timeout_seconds
    remaining = context.time_remaining()
    if remaining is not None:
        deadline = min(deadline, now + max(0.0, remaining))
    return deadline
