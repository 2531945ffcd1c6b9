"""The Open Inference Protocol (KServe V2) over REST, on the same port as TF Serving's `/v1/...`.

    GET  /v2                                    {"name": "bertserve", "version", "extensions": [...]}
    GET  /v2/health/live                        {"live": true}
    GET  /v2/health/ready                       {"ready": true}; 503 {"ready": false, "error"} when not
    GET  /v2/models/{name}[/versions/{v}]       model metadata (model_io.model_metadata)
    GET  /v2/models/{name}[/versions/{v}]/ready {"name", "ready": true}; 503 when no version is AVAILABLE
    POST /v2/models/{name}[/versions/{v}]/infer inference, JSON or binary tensor data (binary.py)

`create_app` registers them with `add_routes(app, read_body)`. Errors are `{"error": ...}` with
400 (bad input), 404 (unknown model or version), 413 (body too large), 503 (queue full, not
ready), 504 (deadline). Inference goes through the servable's batcher like every other route.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bertserve.errors import RequestError
from bertserve.serving import openapi
from bertserve.serving.v2 import binary, model_io
from bertserve.serving.v2.tensors import Tensor, check_header, check_text, list_of, raw_of, tensor_from_list, tensor_from_raw

ReadBody = Callable[[Request, int, float], Awaitable[bytes]]
# What the FastAPI routes `/v2/models/{model_name}[/versions/{version}]/infer` match (`[^/]+` each):
# app.py sends these POSTs down its fast path straight to `infer` (see `is_infer_path`).
INFER_PATH = re.compile(r"/v2/models/(?P<model_name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")


@dataclass
class InferRequest:
    """A parsed infer body: inputs decoded, outputs requested (name -> answer binary?)."""

    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False


def add_routes(app: FastAPI, read_body: ReadBody) -> None:
    """Register the V2 routes on `app` (documented at /docs from `openapi.V2_ROUTES`)."""
    app.state.v2_read_body = read_body
    endpoints = {
        "server_metadata": server_metadata, "live": live, "ready": ready,
        "model_metadata": model_metadata, "model_ready": model_ready, "infer": infer,
    }
    for route in openapi.V2_ROUTES:
        app.add_api_route(
            route.path, endpoints[route.name], methods=[route.method], summary=route.summary,
            responses={200: {"content": {"application/json": {"schema": route.response}}}, **openapi.V2_ERROR_RESPONSES},
            openapi_extra=openapi.openapi_extra(route), response_class=JSONResponse,
        )


def is_infer_path(path: str) -> bool:
    return path[:4] == "/v2/" and INFER_PATH.fullmatch(path) is not None


async def fast_infer(request: Request) -> Response:
    """`infer` without FastAPI's routing: the path parameters taken from INFER_PATH."""
    match = INFER_PATH.fullmatch(request.scope["path"])
    request.scope["path_params"] = {key: value for key, value in match.groupdict().items() if value is not None}
    return await infer(request)


def _mark(request: Request, route: str, model: str = "") -> None:
    """What the access log and the Prometheus hook report for this request."""
    request.state.protocol = "v2"
    request.state.route = route
    request.state.model = model


async def server_metadata(request: Request) -> Response:
    from bertserve import __version__

    _mark(request, "server_metadata")
    return JSONResponse(model_io.server_metadata(__version__))


async def live(request: Request) -> Response:
    _mark(request, "live")
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    _mark(request, "ready")
    problem = ready_problem(request.app)
    if problem is not None:
        return JSONResponse({"ready": False, "error": problem}, status_code=503)
    return JSONResponse({"ready": True})


def ready_problem(app: Any) -> str | None:
    """Why the server is not ready (server.py sets `app.state.ready_problem`, which knows about draining)."""
    check = getattr(app.state, "ready_problem", None)
    if check is not None:
        return check()
    return None if app.state.manager.ready() else "Not ready: a model has no AVAILABLE version yet"


async def model_metadata(request: Request) -> Response:
    name, version = _model_spec(request, "model_metadata")
    manager = request.app.state.manager
    servable = manager.servable(name, version)
    request.state.version = servable.version
    versions = [status.version for status in manager.statuses(name) if status.state == "AVAILABLE"]
    return JSONResponse(model_io.model_metadata(name, sorted(versions) if version is None else [version], servable.model))


async def model_ready(request: Request) -> Response:
    name, version = _model_spec(request, "model_ready")
    manager = request.app.state.manager
    if name not in manager.model_names() or version is not None:
        manager.statuses(name, version)  # 404 for an unknown model or version; a configured model still loading is 503
    try:
        manager.servable(name, version)
    except RequestError as error:
        return JSONResponse({"name": name, "ready": False, "error": str(error)}, status_code=503)
    return JSONResponse({"name": name, "ready": True})


async def infer(request: Request) -> Response:
    name, version = _model_spec(request, "infer")
    options = request.app.state.options
    body = await request.app.state.v2_read_body(request, options.max_body_bytes, options.request_timeout_seconds)
    document, payload = binary.split_body(body, request.headers.get(binary.HEADER))
    parsed = parse_infer(document, payload, max_elements=options.max_body_bytes)
    requested = model_io.check_requested(list(parsed.outputs))
    servable = request.app.state.manager.servable(name, version)
    request.state.version = servable.version
    inputs = model_io.model_inputs(
        parsed.inputs, servable.model.tokenizer.pad_id, options.max_instances, options.max_text_chars
    )
    request.state.instances = inputs.rows
    deadline = time.monotonic() + options.request_timeout_seconds
    try:  # the servable enforces the deadline in its queue; this is the backstop
        probabilities = await asyncio.wait_for(model_io.run(servable, inputs, deadline), options.request_timeout_seconds + 1)
    except asyncio.TimeoutError:
        raise RequestError(
            f"Deadline exceeded: model {name} did not answer within {options.request_timeout_seconds:g} s", 504
        ) from None
    outputs = model_io.model_outputs(probabilities, list(servable.model.labels), requested)
    answer = {"model_name": name, "model_version": str(servable.version)}
    if parsed.id is not None:
        answer["id"] = parsed.id
    wants_binary = {  # an output's own binary_data wins over the request's binary_data_output
        o.name: parsed.binary_default if parsed.outputs.get(o.name) is None else parsed.outputs[o.name] for o in outputs
    }
    return encode_answer(answer, outputs, wants_binary)


def _model_spec(request: Request, route: str) -> tuple[str, int | None]:
    name = request.path_params["model_name"]
    _mark(request, route, name)
    text = request.path_params.get("version")
    if text is None or text == "":
        return name, None
    if not text.isdigit() or len(text) > 18:
        raise RequestError(f"model version must be a non-negative integer, got {text[:40]!r}")
    return name, int(text)


def parse_infer(document: bytes, payload: bytes, max_elements: int) -> InferRequest:
    """An infer request's JSON document (and binary payload) -> decoded inputs and requested outputs."""
    body = _json_object(document)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("\"id\" must be a string")
    if request_id is not None:
        check_text(request_id, "\"id\"")
    parameters = _parameters(body, "the request")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise RequestError("parameter binary_data_output must be true or false")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("\"inputs\" must be a non-empty list of tensors, e.g. "
                           '[{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["很好"]}]')
    headers, sizes = [], []
    for item in inputs:
        if not isinstance(item, dict):
            raise RequestError(f"every input must be an object, got {json.dumps(item)[:40]}")
        header = check_header(item.get("name"), item.get("datatype"), item.get("shape"), max_elements)
        size = binary.binary_size(header[0], _parameters(item, f"input {header[0]}"))
        if size is not None:
            if "data" in item:
                raise RequestError(f"input {header[0]}: give \"data\" or binary_data_size, not both")
            sizes.append((header[0], size))
        elif "data" not in item:
            raise RequestError(f"input {header[0]}: no \"data\" and no binary_data_size")
        headers.append((header, size, item.get("data")))
    raw_parts = iter(binary.take_binary(payload, sizes))
    tensors = [
        tensor_from_list(*header, data) if size is None else tensor_from_raw(*header, next(raw_parts))
        for header, size, data in headers
    ]
    return InferRequest(request_id, tensors, _requested_outputs(body), binary_default)


def _requested_outputs(body: dict) -> dict[str, bool | None]:
    outputs = body.get("outputs", [])
    if not isinstance(outputs, list):
        raise RequestError("\"outputs\" must be a list of {\"name\": ...} objects")
    requested: dict[str, Any] = {}
    for item in outputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError("every requested output needs a \"name\" (a string)")
        check_text(item["name"], "an output name")
        if item["name"] in requested:
            raise RequestError(f"output {item['name']} is requested twice")
        wants_binary = _parameters(item, f"output {item['name']}").get("binary_data")
        if wants_binary is not None and not isinstance(wants_binary, bool):
            raise RequestError(f"output {item['name']}: binary_data must be true or false")
        requested[item["name"]] = wants_binary
    return requested


def encode_answer(answer: dict, outputs: list[Tensor], wants_binary: dict[str, bool | None]) -> Response:
    """JSON, or JSON + raw bytes (with Inference-Header-Content-Length) when an output is asked binary."""
    parts, described = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if wants_binary.get(tensor.name):
            raw = raw_of(tensor)
            entry["parameters"] = {binary.SIZE: len(raw)}
            parts.append(raw)
        else:
            entry["data"] = list_of(tensor)
        described.append(entry)
    document = json.dumps({**answer, "outputs": described}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if not parts:
        return Response(document, media_type="application/json")
    body, header_length = binary.join_body(document, parts)
    headers = {"Inference-Header-Content-Length": str(header_length)}
    return Response(body, media_type="application/octet-stream", headers=headers)


def _json_object(document: bytes) -> dict:
    if not document.strip():
        raise RequestError("the request body is empty; send a JSON object with \"inputs\"")
    try:
        body = json.loads(document)
    except UnicodeDecodeError:
        raise RequestError("the JSON part of the body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise RequestError(f"malformed JSON: {error.msg} at offset {error.pos}") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with \"inputs\"")
    return body


def _parameters(owner: dict, where: str) -> dict:
    parameters = owner.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(f"\"parameters\" of {where} must be an object")
    return parameters
