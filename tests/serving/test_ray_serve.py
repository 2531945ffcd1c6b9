"""Ray Serve: the `serve` app as 2 replicas behind Ray's HTTP proxy on a local cluster on 127.0.0.1.

Every request succeeds, both replicas answer, and the TF Serving REST contract (exact JSON, error
bodies, case-insensitive paths) is the same as `bertserve serve`'s. Skipped without Ray
(`pip install 'bertserve[ray]'`). One cluster for the module: starting Ray costs ~10-20 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter

import httpx
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'bertserve[ray]'")
serve = pytest.importorskip("ray.serve")

from bertserve.errors import ConfigError  # noqa: E402
from bertserve.serving.app import AppOptions  # noqa: E402
from bertserve.serving.batching import BatchingOptions  # noqa: E402
from bertserve.serving.model_config import ModelConfig  # noqa: E402
from bertserve.serving.ray_serve import RayOptions, application  # noqa: E402


GCS_PORT_WAIT = "RAY_gcs_server_port_wait_time_s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_url(tiny_export):
    port = free_port()
    # Ray gives its GCS server 30 s to bind a port; on 2 busy cores (a training run beside the suite)
    # that start took longer once and failed every test here. Allow 120 s (Ray's own RocksDB default).
    previous = os.environ.get(GCS_PORT_WAIT)
    os.environ[GCS_PORT_WAIT] = previous or "120"  # read once, while ray.init starts the GCS
    try:
        ray.init(address="local", include_dashboard=False, num_cpus=2, logging_level="WARNING", log_to_driver=False)
    finally:
        if previous is None:
            del os.environ[GCS_PORT_WAIT]
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        configs = [ModelConfig("tiny", tiny_export.parent)]
        serve.run(
            application(configs, RayOptions(replicas=2), BatchingOptions(max_batch_size=8), AppOptions()),
            name="bertserve", route_prefix="/",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def test_every_request_succeeds_and_both_replicas_serve(ray_url):
    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.post(f"{ray_url}/v1/models/tiny:predict", json={"instances": [f"第{i}句很好", "太差了"]})
                for i in range(60)
            ))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 60
    assert all(len(r.json()["predictions"]) == 2 for r in responses)
    replicas = Counter(r.headers["x-bertserve-replica"] for r in responses)
    assert len(replicas) == 2, replicas


def test_rest_contract_is_tf_servings_through_the_proxy(ray_url):
    status = httpx.get(f"{ray_url}/v1/models/tiny", timeout=10)
    assert status.status_code == 200
    assert status.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]}
    assert httpx.get(f"{ray_url}/v1/models", timeout=10).json() == {"models": ["tiny"]}

    predict = httpx.post(f"{ray_url}/V1/Models/tiny:predict", json={"instances": ["很好"]}, timeout=10)
    assert predict.status_code == 200
    [[negative, positive]] = predict.json()["predictions"]
    assert abs(negative + positive - 1) < 1e-5

    classify = httpx.post(f"{ray_url}/v1/models/tiny:classify", json={"examples": [{"text": "很好"}]}, timeout=10)
    [[[label0, _], [label1, _]]] = classify.json()["results"]
    assert (label0, label1) == ("negative", "positive")


@pytest.mark.parametrize(
    "method, path, body, status, error",
    [
        ("POST", "/v1/models/tiny:predict", b'{"instances": [', 400, "JSON Parse error"),
        ("POST", "/v1/models/tiny:predict", b"{}", 400, "Missing 'inputs' or 'instances' key"),
        ("POST", "/v1/models/absent:predict", b'{"instances": ["x"]}', 404, "Servable not found for request: Latest(absent)"),
        ("GET", "/v1/models/tiny/versions/7", None, 404, "Could not find version 7 of model tiny"),
        ("DELETE", "/v1/models/tiny", None, 400, "Malformed request: DELETE /v1/models/tiny"),
    ],
)
def test_errors_are_the_same_json_through_the_proxy(ray_url, method, path, body, status, error):
    response = httpx.request(method, f"{ray_url}{path}", content=body, timeout=10)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert error in response.json()["error"]


def test_health_and_readiness_routes_are_served(ray_url):
    assert httpx.get(f"{ray_url}/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{ray_url}/readyz", timeout=10).json() == {"status": "ready"}
    assert "bertserve" in httpx.get(f"{ray_url}/metrics", timeout=10).text


def test_autoscaling_options_become_ray_serves_config():
    options = RayOptions(min_replicas=1, max_replicas=4, target_ongoing_requests=4, num_cpus_per_replica=0.5)
    deployment = options.deployment_options()
    assert deployment["autoscaling_config"] == {
        "min_replicas": 1, "initial_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 4,
    }
    assert "num_replicas" not in deployment and deployment["ray_actor_options"] == {"num_cpus": 0.5}
    assert options.threads == 1
    assert RayOptions(replicas=3).deployment_options()["num_replicas"] == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"replicas": 0}, "--replicas must be at least 1"),
        ({"min_replicas": 3, "max_replicas": 2}, "--min_replicas <= --max_replicas"),
        ({"min_replicas": 2}, "only together with --max_replicas"),
        ({"num_cpus_per_replica": 0}, "--num_cpus_per_replica must be positive"),
    ],
)
def test_bad_ray_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        RayOptions(**kwargs)
