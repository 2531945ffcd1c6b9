"""The serving process: model manager + REST app + health, readiness, metrics, graceful shutdown.

    bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp

or, from Python, `asyncio.run(serve(configs, ServerOptions(...), BatchingOptions(), AppOptions()))`.

Routes added beside the REST app's (`app.py`):
    GET /healthz                          200 {"status": "ok"} while the process runs
    GET /readyz                           200 {"status": "ready"} once every model has an AVAILABLE
                                          version; 503 {"error": ...} before that and while draining
    GET /monitoring/prometheus/metrics    Prometheus text (TF Serving's path); also GET /metrics

With `grpc_port`, TF Serving's gRPC API is served beside REST on the same event loop, manager and
batchers (`serving/grpc/`); its health service follows /readyz.

SIGTERM (or Ctrl-C): /readyz answers 503 at once (gRPC health: NOT_SERVING); after
`shutdown_delay_seconds` (time for a load balancer to notice) the listeners close, so new
connections and new gRPC calls are refused; requests and calls in flight finish (up to
`drain_seconds`, then they are cancelled); models are unloaded; the process exits 0.
A second signal cuts the grace short: REST connections are dropped and gRPC calls cancelled at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bertserve.errors import ConfigError
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.coalesced_writes import coalesced_writes
from bertserve.serving.manager import ModelConfig, ModelManager, VersionState
from bertserve.serving.prometheus import ServingMetrics
from bertserve.serving.timeouts import guarded_protocol

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"  # loopback by default: exposing a model server is a deliberate choice
    port: int = 8501  # TF Serving's REST port
    poll_seconds: float = 1.0  # TF Serving's --file_system_poll_wait_seconds
    drain_seconds: float = 10.0  # grace for in-flight requests after SIGTERM
    shutdown_delay_seconds: float = 0.0  # keep serving with /readyz 503 this long before closing
    uvicorn_access_log: bool = False  # uvicorn's own text access log (the app may log JSON itself)
    head_timeout_seconds: float = 10.0  # a connection must send its request headers this fast (slowloris)
    keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
    device: str = "cpu"  # "cuda": ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu)
    intra_op_threads: int | None = None  # engine threads per model call; None: all cores
    # inference.tuning.TuningOptions: choose engine settings by measuring at load (the CLI's
    # default); None: take the export's settings as they are (tests, embedding programs).
    tuning: Any = None
    grpc_port: int = 0  # TF Serving's gRPC API (serving/grpc/) on this port; 0: off (the CLI's --port defaults to 8500)


class ServerState:
    """What /readyz reports: ready when every model is AVAILABLE and no shutdown has begun."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.draining = False

    def ready_problem(self) -> str | None:
        if self.draining:
            return "Server is shutting down; send requests to another replica"
        if not self.manager.ready():
            waiting = [
                name for name in self.manager.model_names()
                if not any(s.state == VersionState.AVAILABLE for s in self._statuses(name))
            ]
            return f"Not ready: no AVAILABLE version yet for model(s) {', '.join(waiting)}; see GET /v1/models/<name>"
        return None

    def _statuses(self, name: str) -> list:
        try:
            return self.manager.statuses(name)
        except Exception:  # no versions seen yet
            return []


def add_operational_routes(app: "Starlette", state: ServerState, metrics: ServingMetrics) -> None:
    """/healthz, /readyz and the metrics routes, placed before the app's own routes so that no
    catch-all route of the REST layer can shadow them."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = state.ready_problem()
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def prometheus(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/monitoring/prometheus/metrics", prometheus, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    app.router.routes[0:0] = routes


def bind(host: str, port: int) -> socket.socket:
    """Bind the REST port ourselves, so a port in use is a one-line ConfigError, not a log dump."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this. Without it Nagle holds the response body until the client's
    # delayed ACK (40 ms) on every keep-alive request after the first (measured: 48 ms -> ~7 ms).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --rest_api_port or stop the other server"
        ) from error
    listener.listen(2048)
    listener.setblocking(False)
    return listener


def build(configs: list[ModelConfig], options: ServerOptions, batching: BatchingOptions, app_options: Any = None):
    """The manager, metrics, state and ASGI app of one server (not started)."""
    from bertserve.serving.app import AppOptions, create_app

    metrics = ServingMetrics()
    loader = None  # the manager's default: ExportedModel.load on the CPU with all cores
    if options.device != "cpu" or options.intra_op_threads is not None or options.tuning is not None:
        import functools

        from bertserve.inference.model import ExportedModel

        loader = functools.partial(ExportedModel.load, device=options.device, threads=options.intra_op_threads,
                                   tuning=options.tuning)
    manager = ModelManager(configs, batching, poll_seconds=options.poll_seconds, loader=loader,
                           on_batch=metrics.observe_batch)
    metrics.watch(manager)
    app_options = AppOptions() if app_options is None else app_options
    if getattr(app_options, "metrics", None) is None:
        # The REST layer reports each request through this hook.
        import dataclasses

        app_options = dataclasses.replace(app_options, metrics=metrics)
    app = create_app(manager, app_options)
    state = ServerState(manager)
    app.state.ready_problem = state.ready_problem  # /v2/health/ready answers 503 while draining too
    add_operational_routes(app, state, metrics)
    return manager, metrics, state, app


async def serve(
    configs: list[ModelConfig], options: ServerOptions, batching: BatchingOptions, app_options: Any = None
) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit code (0 after a graceful drain)."""
    import uvicorn

    manager, metrics, state, app = build(configs, options, batching, app_options)
    grpc_server = None
    loop = asyncio.get_running_loop()

    class DrainingServer(uvicorn.Server):
        # uvicorn installs handle_exit as the SIGTERM/SIGINT handler. We flip readiness first and
        # close the listener only after the shutdown delay; a second signal forces the exit.
        drain_started: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.drain_started is not None:
                logger.info("received %s again: cancelling requests and calls still in flight", signal.Signals(sig).name)
                self.force_exit = True
                self.should_exit = True
                if grpc_server is not None:  # a signal handler: hand the call to the event loop
                    loop.call_soon_threadsafe(grpc_server.stop_now)
                return
            logger.info("received %s: draining (readyz -> 503, grace %.1f s)", signal.Signals(sig).name, options.drain_seconds)
            state.draining = True
            self.drain_started = time.monotonic()
            if options.shutdown_delay_seconds <= 0:
                self.should_exit = True

        async def on_tick(self, counter: int) -> bool:
            if self.drain_started is not None and time.monotonic() - self.drain_started >= options.shutdown_delay_seconds:
                self.should_exit = True
            if self.should_exit and grpc_server is not None:
                grpc_server.begin_stop(options.drain_seconds)  # drains beside uvicorn's own drain
            return await super().on_tick(counter)

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,  # keep the CLI's logging configuration
        access_log=options.uvicorn_access_log,
        timeout_graceful_shutdown=max(0.1, options.drain_seconds),
        lifespan="on",
        # Slow or half-open clients cannot hold connections: see timeouts.py.
        # One send per response (head + body together): see coalesced_writes.py.
        http=coalesced_writes(guarded_protocol(options.head_timeout_seconds)),
        timeout_keep_alive=options.keep_alive_seconds,
    )
    server = DrainingServer(config)
    listener = bind(options.host, options.port)
    if options.grpc_port:
        try:
            grpc_server = await _start_grpc(manager, metrics, state, app, options)
        except BaseException:
            listener.close()
            raise
    await manager.start()
    logger.info("serving REST on http://%s:%d%s", options.host, listener.getsockname()[1],
                f" and gRPC on {options.host}:{grpc_server.port}" if grpc_server else " (gRPC off)")
    # uvicorn installs handle_exit only while its own serve() runs, then puts back what it found:
    # with handle_exit there too, a signal during the gRPC drain below still cuts it short.
    previous = ({sig: signal.signal(sig, server.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread() else {})  # as uvicorn: main thread only
    try:
        await server.serve(sockets=[listener])
    finally:
        if server.force_exit and getattr(server, "lifespan", None) is not None:
            # uvicorn skips the app's shutdown on a forced exit; its lifespan task would then be
            # cancelled mid-wait at exit, a traceback in the log.
            await server.lifespan.shutdown()
        if grpc_server is not None:
            await grpc_server.stopped(options.drain_seconds)
        # In-flight requests are done (or cancelled at the grace limit): unload every version.
        try:
            await asyncio.wait_for(manager.stop(), max(1.0, options.drain_seconds))
        except asyncio.TimeoutError:
            logger.warning("models did not unload within %.1f s; exiting anyway", options.drain_seconds)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("shut down cleanly")
    return 0


async def _start_grpc(manager: ModelManager, metrics: ServingMetrics, state: ServerState, app: Any, options: ServerOptions):
    """TF Serving's gRPC API (and any other service in serving/grpc/server.py's SERVICE_MODULES)."""
    try:
        from bertserve.serving.grpc.rpc import GrpcContext
        from bertserve.serving.grpc.server import GrpcServer
    except ImportError as error:
        raise ConfigError(f"gRPC needs grpcio, grpcio-tools, grpcio-health-checking and grpcio-reflection ({error}); "
                          "reinstall bertserve, or pass --port 0 to serve REST only") from None
    context = GrpcContext(manager=manager, options=app.state.options, metrics=metrics)
    return await GrpcServer.start(context, options.host, options.grpc_port, lambda: state.ready_problem() is None)
