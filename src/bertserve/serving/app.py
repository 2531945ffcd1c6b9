"""The REST application: TF Serving's `/v1/...` API over a `ModelManager`, plus `/` and `/docs`.

    app = create_app(manager, AppOptions(cors_origins=("http://localhost:3000",)))
    uvicorn.run(app, host="127.0.0.1", port=8501)     # `bertserve serve` does this (server.py)

Every `/v1/...` request goes through one dispatcher that matches the raw path with TF Serving's
own regexes (case-insensitive, so `/V1/Models/m:predict` works as in TF Serving); the FastAPI
routes registered from `openapi.ROUTES` exist to document the API at `/docs`. Anything under `/v1/`
that does not match answers 400 `Malformed request: <METHOD> <path>`. Every error is
`{"error": ...}` with `Content-Type: application/json`; bad input is never a 500.

Limits (all on by default, each with a clear 4xx): body size (413; checked against
Content-Length first, then counted while streaming, so a huge body is never held whole; a gzip
body is bounded after decompression too), instances per request, characters per text, and a
deadline per request (504). CORS is off unless origins are given. server.py adds `/healthz`,
`/readyz` and the metrics routes to the returned app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bertserve.errors import RequestError, ServingError
from bertserve.serving import openapi, tfserving
from bertserve.serving.batching import in_flight_requests
from bertserve.serving.v2 import rest as v2_rest
from bertserve.serving.json_tensor import Limits, parse_classify, parse_predict
from bertserve.tokenizer import Encoded

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("bertserve.access")

INDEX_HTML = Path(__file__).resolve().parent.parent / "static" / "index.html"
PLACEHOLDER_HTML = (
    "<!doctype html><title>bertserve</title><h1>bertserve</h1>"
    '<p>The demo page is not installed. The API is documented at <a href="docs">/docs</a>.</p>'
)


class MetricsHook(Protocol):
    def observe_request(self, model: str, route: str, status: int | str, seconds: float, protocol: str = "rest") -> None: ...


@dataclass(frozen=True)
class AppOptions:
    max_body_bytes: int = 10 * 1024 * 1024  # 10 MiB: ~20k short texts, far above one sane request
    max_instances: int = 256  # 8 full batches of 32: one request cannot monopolise the batcher
    max_text_chars: int = 10_000  # longer texts are truncated to 128 tokens anyway; refuse abuse
    request_timeout_seconds: float = 30.0  # TF Serving's default deadline (--rest_api_timeout_in_ms)
    cors_origins: tuple[str, ...] = ()  # CORS off unless origins are given ("*" allows any)
    access_log_json: bool = False  # one JSON line per request on the "bertserve.access" logger
    metrics: MetricsHook | None = None  # e.g. prometheus.ServingMetrics

    @property
    def limits(self) -> Limits:
        return Limits(max_instances=self.max_instances, max_text_chars=self.max_text_chars)


def error_response(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(manager: Any, options: AppOptions | None = None) -> FastAPI:
    """The ASGI app for `manager` (a `serving.manager.ModelManager` or anything with its methods)."""
    options = options or AppOptions()
    app = _FastPathApp(
        title="bertserve",
        summary="TensorFlow-Serving-compatible REST API for BERT text classifiers, with text in.",
        version=_package_version(),
    )
    app.state.manager = manager
    app.state.options = options

    for route in openapi.ROUTES:
        app.add_api_route(
            route.path,
            _dispatch,
            methods=[route.method],
            summary=route.summary,
            responses={200: {"content": {"application/json": {"schema": route.response}}}, **openapi.ERROR_RESPONSES},
            openapi_extra=openapi.openapi_extra(route),
            response_class=JSONResponse,
        )
    v2_rest.add_routes(app, read_body)  # the Open Inference Protocol (KServe V2) under /v2

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        # KServe's V1 client checks liveness with GET / -> {"status": "alive"}; browsers get the demo page.
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"status": "alive"})
        if INDEX_HTML.is_file():
            return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"))
        return HTMLResponse(PLACEHOLDER_HTML)

    @app.exception_handler(ServingError)
    async def request_error(request: Request, error: ServingError) -> JSONResponse:
        return error_response(str(error), error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # No documented route matched (other case, other method, malformed path): TF Serving's
        # dispatcher owns everything under /v1/, case-insensitively.
        if error.status_code in (404, 405) and _raw_path(request).lower().startswith("/v1/"):
            try:
                return await _dispatch(request)
            except ServingError as serving_error:
                return error_response(str(serving_error), serving_error.status)
        if error.status_code == 404:
            return error_response(f"Not found: {request.method} {_raw_path(request)}; the API is under /v1/ (see /docs)", 404)
        return error_response(str(error.detail), error.status_code)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error serving %s %s", request.method, request.url.path)
        return error_response(f"Internal error: {type(error).__name__}; see the server log", 500)

    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_middleware(AccessLogMiddleware, options=options)
    # The hot path skips CORS handling, so only take it when CORS is off.
    app.fast_path = None if options.cors_origins else AccessLogMiddleware(_fast_dispatch, options)
    return app


class _FastPathApp(FastAPI):
    """FastAPI with a shortcut for `POST /v1/...` (predict, classify) and V2's `POST .../infer`:
    those requests go straight to `_dispatch` / `v2_rest.fast_infer` (wrapped in the same access
    log and metrics), past the ~10 layers of FastAPI and
    Starlette middleware and routing that every request otherwise crosses. Measured with
    `bertserve bench` on 2 cores (docs/benchmarks.md): that stack cost more CPU per request than
    the dispatcher itself. Every other route, and every error, answers exactly as before."""

    fast_path: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            self.fast_path is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and (scope["path"][:4].lower() == "/v1/" or v2_rest.is_infer_path(scope["path"]))
        ):
            scope["app"] = self
            await self.fast_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _fast_dispatch(scope: dict, receive: Any, send: Any) -> None:
    """`_dispatch` as a bare ASGI app, with the error handling `create_app` registers."""
    request = Request(scope, receive)
    try:
        response = await (v2_rest.fast_infer(request) if scope["path"][:4] == "/v2/" else _dispatch(request))
    except ServingError as error:
        response = error_response(str(error), error.status)
    except Exception as error:
        logger.exception("unexpected error serving %s %s", request.method, request.url.path)
        response = error_response(f"Internal error: {type(error).__name__}; see the server log", 500)
    await response(scope, receive, send)


def _package_version() -> str:
    from bertserve import __version__

    return __version__


def _raw_path(request: Request) -> str:
    """The path as the client sent it (undecoded), without the query: what TF Serving matches."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    return raw.split(b"?", 1)[0].decode("latin-1")


# ---- the dispatcher ------------------------------------------------------------------------------


async def _dispatch(request: Request) -> Response:
    route = tfserving.parse_route(request.method, _raw_path(request))
    request.state.route = route.action
    request.state.model = route.model
    manager = request.app.state.manager
    options: AppOptions = request.app.state.options
    if route.action == "list":
        return JSONResponse({"models": manager.model_names()})
    if route.action == "status":
        return JSONResponse(tfserving.format_status(manager.statuses(route.model, route.version, route.label)))
    if route.action == "metadata":
        servable = manager.servable(route.model, route.version, route.label)
        request.state.version = servable.version
        model = servable.model
        metadata = tfserving.format_metadata(
            route.model, servable.version, list(model.labels), int(model.max_seq_length), int(model.tokenizer.vocab_size),
        )
        engine = getattr(servable, "engine_config", None)
        if engine:  # the engine settings this server chose (inference/tuning.py), in our own section
            metadata["bertserve"]["engine"] = engine
        return JSONResponse(metadata)
    document = tfserving.parse_json(await read_body(request, options.max_body_bytes, options.request_timeout_seconds))
    deadline = time.monotonic() + options.request_timeout_seconds
    if route.action in ("classify", "regress"):
        texts = parse_classify(document, options.limits, route.action)
        servable = manager.servable(route.model, route.version, route.label)
        request.state.version = servable.version
        if route.action == "regress":
            raise tfserving.regress_error()
        request.state.instances = len(texts)
        probabilities = await _with_deadline(servable.predict_texts(texts, deadline), route.model, options)
        return JSONResponse(tfserving.format_classify(probabilities, list(servable.model.labels)))
    tfserving.signature_name(document)  # TF Serving checks the signature's type before the model
    servable = manager.servable(route.model, route.version, route.label)
    request.state.version = servable.version
    parsed = parse_predict(document, options.limits)
    request.state.instances = parsed.instances
    if parsed.texts is not None:
        work = servable.predict_texts(parsed.texts, deadline)
    else:
        work = servable.predict_encoded(Encoded(**parsed.encoded_ids(servable.model.tokenizer.pad_id)), deadline)
    probabilities = await _with_deadline(work, route.model, options)
    return JSONResponse(tfserving.format_predict(probabilities, parsed.row_format))


async def _with_deadline(work: Any, model: str, options: AppOptions) -> Any:
    """The servable enforces the deadline in its queue; this is the backstop for everything else."""
    try:
        return await asyncio.wait_for(work, options.request_timeout_seconds + 1.0)
    except asyncio.TimeoutError:
        raise RequestError(
            f"Deadline exceeded: model {model} did not answer within {options.request_timeout_seconds:g} s; "
            "retry, send fewer instances, or raise --rest_api_timeout_in_ms",
            504,
        ) from None


async def read_body(request: Request, max_bytes: int, timeout_seconds: float | None = None) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `max_bytes` (gzip: decompressed),
    and with 408 when it has not fully arrived within `timeout_seconds` (a slow client must not
    hold a connection and its buffers for ever)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _read_body(request, max_bytes)
    except TimeoutError:
        raise RequestError(
            f"Request body not received within {timeout_seconds:g} s; send the whole body at once", 408
        ) from None


async def _read_body(request: Request, max_bytes: int) -> bytes:
    too_large = RequestError(
        f"Request body is larger than the limit of {max_bytes} bytes; send fewer instances per request "
        "or raise --max_body_bytes",
        413,
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise RequestError(f"Unsupported Content-Encoding: {encoding}; send the body plain or gzip-compressed", 415)
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            if decompressor is not None:
                chunk = decompressor.decompress(chunk, max_bytes + 1 - size)
                if decompressor.unconsumed_tail:
                    raise too_large
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        if decompressor is not None and not decompressor.eof:
            raise RequestError("Content-Encoding: gzip body is truncated; send the complete gzip stream", 400)
    except zlib.error as error:
        raise RequestError(f"Content-Encoding: gzip body is not valid gzip ({error})", 400) from None
    return b"".join(chunks)


# ---- access log and request metrics --------------------------------------------------------------


class AccessLogMiddleware:
    """Times every HTTP request, gives it a request id (X-Request-ID, echoed), feeds the metrics
    hook and, with `access_log_json`, logs one JSON line: id, model, version, status, latency."""

    def __init__(self, app: Any, options: AppOptions):
        self.app = app
        self.options = options

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        status = 500

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        in_flight_requests.count += 1  # lets the batcher tell an idle server from a busy one
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight_requests.count -= 1
            seconds = time.perf_counter() - started
            model, route = state.get("model", ""), state.get("route", "other")
            if self.options.metrics is not None:
                self.options.metrics.observe_request(model, route, status, seconds, protocol=state.get("protocol", "rest"))
            if self.options.access_log_json:
                access_logger.info(json.dumps({
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "model": model or None, "version": state.get("version"), "route": route,
                    "status": status, "latency_ms": round(seconds * 1000, 3), "instances": state.get("instances"),
                }, ensure_ascii=False))


def _request_id(scope: dict) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.isprintable():
                return text
    return uuid.uuid4().hex[:16]
