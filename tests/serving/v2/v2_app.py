"""The V2 tests' app: the REST app over a real manager holding the tiny model as versions 1 and 2.

Imported by the test modules (`from v2_app import v2, v2_base`): a conftest.py here would shadow
the `conftest` module that tests/serving/grpc imports by name."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from bertserve.serving.app import AppOptions, create_app
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager


class AppClient:
    """An httpx client over ASGITransport, driven from a background event loop that also runs the manager."""

    def __init__(self, base: Path, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.manager = ModelManager([ModelConfig("tiny", base, version_policy="all")], BatchingOptions(), poll_seconds=60)
        self.call(self._start())
        self.app = create_app(self.manager, AppOptions(**options))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self):
        await self.manager.start()
        for _ in range(600):
            if len(self.manager.loaded()) == 2:
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


@pytest.fixture(scope="module")
def v2_base(tiny_export, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("v2") / "tiny"
    for version in (1, 2):
        shutil.copytree(tiny_export, folder / str(version))
    return folder


@pytest.fixture(scope="module")
def v2(v2_base):
    from bertserve.serving.prometheus import ServingMetrics

    metrics = ServingMetrics()
    client = AppClient(v2_base, max_instances=4, max_text_chars=50, max_body_bytes=64 * 1024, metrics=metrics)
    client.metrics = metrics
    yield client
    client.close()
