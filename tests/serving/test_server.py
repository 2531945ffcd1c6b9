"""server.py in-process: /healthz, /readyz (503 -> 200 -> 503 while draining), metrics routes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bertserve.serving.app import AppOptions, create_app
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager
from bertserve.serving.prometheus import ServingMetrics
from bertserve.serving.server import ServerState, add_operational_routes

from lifecycle_fakes import fake_loader, make_versions


def test_health_readiness_and_metrics(tmp_path: Path):
    async def scenario():
        metrics = ServingMetrics()
        manager = ModelManager(
            [ModelConfig("m", tmp_path)], BatchingOptions(batch_timeout_micros=0), loader=fake_loader,
            on_batch=metrics.observe_batch,
        )
        metrics.watch(manager)
        app = create_app(manager, AppOptions(metrics=metrics))
        state = ServerState(manager)
        add_operational_routes(app, state, metrics)
        seen = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            seen.append(await client.get("/healthz"))
            seen.append(await client.get("/readyz"))
            make_versions(tmp_path, 1)
            await manager.poll_once()
            seen.append(await client.get("/readyz"))
            seen.append(await client.post("/v1/models/m:predict", json={"instances": ["很好", "差"]}))
            seen.append(await client.get("/monitoring/prometheus/metrics"))
            seen.append(await client.get("/metrics"))
            state.draining = True
            seen.append(await client.get("/readyz"))
        await manager.stop()
        return seen

    health, not_ready, ready, predicted, prometheus, metrics_alias, draining = asyncio.run(scenario())
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert not_ready.status_code == 503
    assert not_ready.json() == {
        "error": "Not ready: no AVAILABLE version yet for model(s) m; see GET /v1/models/<name>"
    }
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert (predicted.status_code, predicted.json()) == (200, {"predictions": [[1.0, 0.0], [1.0, 0.0]]})
    text = prometheus.text
    assert prometheus.status_code == 200 and prometheus.headers["content-type"].startswith("text/plain")
    assert 'bertserve_requests_total{code="200",model="m",protocol="rest",route="predict"} 1.0' in text
    assert 'bertserve_batch_size_count{model="m"} 1.0' in text
    assert 'bertserve_loaded_versions{model="m"} 1.0' in text
    assert 'bertserve_batch_queue_depth{model="m",version="1"} 0.0' in text
    assert metrics_alias.text.count("bertserve_loaded_versions{") == 1
    assert (draining.status_code, draining.json()) == (
        503, {"error": "Server is shutting down; send requests to another replica"}
    )
