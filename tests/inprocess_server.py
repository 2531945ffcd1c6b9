"""A real uvicorn server on 127.0.0.1:<free port>, run in a background thread of the test process.

Cheaper than a subprocess (no second import of onnxruntime), yet every request crosses a real
socket and uvicorn's real HTTP parser, with the same connection guards as `bertserve serve`:

    with InProcessServer(base_path, "tiny") as server:     # AVAILABLE when the block starts
        httpx.get(f"{server.url}/v1/models/tiny")
        server.manager, server.metrics                       # to inspect or poll from the test

Used by the reliability tests (fuzzing, slow clients, overload).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertserve.serving.app import AppOptions
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig
from bertserve.serving.server import ServerOptions, bind, build
from bertserve.serving.timeouts import guarded_protocol


@dataclass
class InProcessServer:
    base_path: Path
    model: str = "tiny"
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    app_options: AppOptions = field(default_factory=AppOptions)
    server_options: ServerOptions = field(default_factory=lambda: ServerOptions(port=0, poll_seconds=0.2))
    version_labels: dict[str, int] = field(default_factory=dict)

    def __enter__(self) -> "InProcessServer":
        import uvicorn

        configs = [ModelConfig(self.model, Path(self.base_path), version_labels=self.version_labels)]
        self.manager, self.metrics, self.state, app = build(configs, self.server_options, self.batching, self.app_options)
        self.listener = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            http=guarded_protocol(self.server_options.head_timeout_seconds),
            timeout_keep_alive=self.server_options.keep_alive_seconds,
        )
        self.server = uvicorn.Server(config)
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="inprocess-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not (self.server.started and self.manager.ready()):
            if self._error is not None or not self.thread.is_alive():
                raise RuntimeError(f"in-process server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("in-process server not ready within 60 s")
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        async def main() -> None:
            await self.manager.start()
            try:
                await self.server.serve(sockets=[self.listener])
            finally:
                await self.manager.stop()

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by __enter__ / __exit__
            self._error = error

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the server's event loop (e.g. `manager.poll_once()`)."""
        loop = self.server.servers[0].get_loop() if self.server.servers else None
        assert loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def __exit__(self, *exc_info: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.listener.close()
        if self._error is not None and exc_info[0] is None:
            raise RuntimeError(f"in-process server crashed: {self._error!r}")
