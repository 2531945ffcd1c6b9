"""Helpers of the gRPC tests: the REST server and the gRPC server in one background event loop.

    with GrpcInProcessServer(tiny_export_base, "tiny") as server:
        server.url, server.grpc_target, server.metrics, server.manager

The fixtures `grpc_base` (the tiny model, tests/conftest.py's `tiny_export`, as version 1) and
`grpc_server` (a module's server, label "stable" -> 1) are imported by each test module:
`from grpc_harness import grpc_base, grpc_server  # noqa: F401 (fixtures)`. This is not a
conftest.py on purpose: without __init__.py files every conftest.py is imported as the module
`conftest`, and a second one would shadow tests/conftest.py for `from conftest import ...`.
`stubs(target)` gives TF Serving's PredictionService and ModelService stubs built from our own
generated modules.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import pytest

from inprocess_server import InProcessServer

from bertserve.serving.grpc.protos import load
from bertserve.serving.grpc.rpc import GrpcContext
from bertserve.serving.grpc.server import GrpcServer

serving, serving_grpc = load("tensorflow_serving")
core, _ = load("tensorflow_core")


class GrpcInProcessServer(InProcessServer):
    """InProcessServer (uvicorn in a background thread) plus the gRPC server on the same loop."""

    grpc_server: GrpcServer | None = None
    grpc_target: str = ""

    def _run(self) -> None:
        async def main() -> None:
            # Started before the manager, as `serve()` does; port 0: any free port.
            context = GrpcContext(self.manager, self.server.config.app.state.options, self.metrics)
            self.grpc_server = await GrpcServer.start(context, "127.0.0.1", 0, lambda: self.state.ready_problem() is None)
            self.grpc_target = f"127.0.0.1:{self.grpc_server.port}"
            await self.manager.start()
            try:
                await self.server.serve(sockets=[self.listener])
            finally:
                await self.grpc_server.stopped(0)
                await self.manager.stop()

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by __enter__ / __exit__
            self._error = error


def stubs(target: str) -> tuple[grpc.Channel, object, object]:
    channel = grpc.insecure_channel(target)
    return channel, serving_grpc.PredictionServiceStub(channel), serving_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="session")
def grpc_base(tiny_export, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("grpc-models") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    return base


@pytest.fixture(scope="module")
def grpc_server(grpc_base):
    with GrpcInProcessServer(grpc_base, "tiny", version_labels={"stable": 1}) as server:
        yield server
