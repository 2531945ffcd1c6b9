"""The REST app over a real manager, called in-process: an httpx client over ASGITransport, driven
from a background event loop that also runs the manager (tests/serving/test_app.py, tests/serving/v2)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from bertserve.serving.app import AppOptions, create_app
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager


class AppClient:
    """Serves every version folder of `base` as model "tiny" (all versions; `versions_expected` of
    them must load), with `options` for AppOptions."""

    def __init__(self, base: Path, version_labels: dict | None = None, versions_expected: int = 2, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = ModelConfig("tiny", base, version_policy="all", version_labels=version_labels or {})
        self.manager = ModelManager([config], BatchingOptions(), poll_seconds=60)
        self.call(self._start(versions_expected))
        self.app = create_app(self.manager, AppOptions(**options))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self, versions_expected: int):
        await self.manager.start()
        for _ in range(600):
            if len(self.manager.loaded()) == versions_expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("tiny versions did not load")

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.call(self.client.request(method, path, **kwargs))

    def close(self):
        self.call(self.client.aclose())
        self.call(self.manager.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
