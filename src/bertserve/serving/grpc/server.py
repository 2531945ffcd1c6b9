"""The gRPC server: every service module in SERVICE_MODULES, plus health checking and reflection.

    grpc_server = await GrpcServer.start(context, host="127.0.0.1", port=8500, ready=lambda: True)
    ...
    grpc_server.begin_stop(grace_seconds=10)   # new calls refused at once, in-flight ones finish
    grpc_server.stop_now()                     # (a second signal) cancel the calls still in flight
    await grpc_server.stopped()

It runs on the event loop of the REST server (`serving/server.py` starts and stops it), so both
protocols share one model manager, one batcher per version and one metrics registry.

Adding a service: write a module with `add_to_server(server, context) -> list[str]` (it adds its
handlers, e.g. with `rpc.unary_service`, and returns the full names of the services it added) and
list it in SERVICE_MODULES below. Its services then appear in reflection and in health checking.

Health (grpc.health.v1.Health): the overall service "" and every listed service report SERVING
while `ready()` is true (every model has an AVAILABLE version and no shutdown has begun), else
NOT_SERVING; once stopping begins they stay NOT_SERVING. The receive limit is the REST body limit
(--max_body_bytes): a larger message gets RESOURCE_EXHAUSTED from grpc itself.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bertserve.errors import ConfigError
from bertserve.serving.grpc.rpc import GrpcContext

logger = logging.getLogger(__name__)

# Each module's add_to_server(server, context) adds its services; one line per module.
SERVICE_MODULES = [
    "bertserve.serving.grpc.tfserving_service",
    "bertserve.serving.grpc.v2_service",  # the Open Inference Protocol (KServe V2)
]
READY_POLL_SECONDS = 0.25  # how soon health follows readiness (a model becoming AVAILABLE)


class GrpcServer:
    def __init__(self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer,
                 service_names: list[str], port: int, ready: Callable[[], bool]):
        self.server = server
        self.health = health_servicer
        self.service_names = service_names
        self.port = port
        self._ready = ready
        self._watcher: asyncio.Task | None = None
        self._stopping: asyncio.Task | None = None
        self._stopping_now: asyncio.Task | None = None

    @classmethod
    async def start(cls, context: GrpcContext, host: str, port: int, ready: Callable[[], bool]) -> "GrpcServer":
        """Bind `host:port` and start serving; a port in use is a one-line ConfigError."""
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", int(context.options.max_body_bytes)),
            # grpc binds with SO_REUSEPORT by default, so a second server on the same port would
            # silently share it; without it a port in use is an error, as for REST.
            ("grpc.so_reuseport", 0),
        ])
        names: list[str] = []
        for module_name in SERVICE_MODULES:
            names.extend(importlib.import_module(module_name).add_to_server(server, context))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise ConfigError(f"cannot listen for gRPC on {address}; choose another --port (0 turns gRPC off) or stop the other server")
        await server.start()
        grpc_server = cls(server, health_servicer, names, bound, ready)
        await grpc_server._update_health()
        grpc_server._watcher = asyncio.create_task(grpc_server._watch_readiness())
        return grpc_server

    async def _update_health(self) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if self._ready() else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(READY_POLL_SECONDS)
            await self._update_health()

    def begin_stop(self, grace_seconds: float) -> None:
        """Health NOT_SERVING, new calls refused; calls in flight get `grace_seconds` to finish."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(grace_seconds))

    def stop_now(self) -> None:
        """Cut the grace short: calls still in flight are cancelled at once (grace 0). Also while
        a graceful stop runs: grpc.aio's Server.stop keeps the most restrictive grace of its calls."""
        self.begin_stop(0.0)
        if self._stopping_now is None:
            self._stopping_now = asyncio.create_task(self.server.stop(0))

    async def _stop(self, grace_seconds: float) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)
        logger.info("gRPC server stopped")

    async def stopped(self, grace_seconds: float = 0.0) -> None:
        """Wait until stopped (beginning the stop first, with `grace_seconds`, if nobody has)."""
        self.begin_stop(grace_seconds)
        await self._stopping
