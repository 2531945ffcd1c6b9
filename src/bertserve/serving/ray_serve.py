"""The serving app as N Ray Serve replicas behind Ray's HTTP proxy (`bertserve ray`).

    bertserve ray --model_name chnsenticorp --model_base_path models/chnsenticorp --replicas 2

or, from Python (a local Ray cluster on 127.0.0.1, as the tests do):

    ray.init(address="local", include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8501})
    serve.run(application(configs, RayOptions(replicas=2), BatchingOptions(), AppOptions()), route_prefix="/")

Each replica is one `ReplicaServer`: its own `ModelManager` (version polling, hot reload,
dynamic batcher with TF Serving's knobs) and the very same FastAPI app `bertserve serve` runs
(`server.build`'s routes: `/v1/...`, `/healthz`, `/readyz`, metrics), mounted with
`@serve.ingress`, so the REST contract is identical. Ray's proxy spreads requests over the
replicas and only routes to a replica once its constructor has finished, so a replica builds its
app only after every model is AVAILABLE (Ray's readiness). Every response carries the header
`X-Bertserve-Replica: <replica id>` so a client (and the tests) can see which replica answered.

This module imports Ray at the top: import it only where Ray is installed (`pip install
'bertserve[ray]'`); `bertserve.commands.ray` does so inside `run`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from ray import serve

from bertserve.errors import ConfigError
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.model_config import ModelConfig

logger = logging.getLogger(__name__)

REPLICA_HEADER = b"x-bertserve-replica"


@dataclass(frozen=True)
class RayOptions:
    replicas: int = 1  # fixed replica count; ignored when autoscaling (max_replicas set)
    min_replicas: int | None = None  # autoscaling lower bound (default: 1)
    max_replicas: int | None = None  # setting this turns Ray Serve autoscaling on
    target_ongoing_requests: float = 8.0  # autoscaling target per replica: enough to fill batches
    max_ongoing_requests: int = 64  # per replica; above it Ray queues (or rejects) at the proxy
    num_cpus_per_replica: float = 1.0  # Ray's CPU reservation; also ONNX Runtime's thread count
    startup_timeout_seconds: float = 300.0  # a replica whose models never become AVAILABLE fails
    graceful_shutdown_seconds: float = 10.0  # like --drain_seconds: in-flight requests finish
    poll_seconds: float = 1.0  # TF Serving's --file_system_poll_wait_seconds

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be at least 1, got {self.replicas}")
        if self.max_replicas is not None:
            low = 1 if self.min_replicas is None else self.min_replicas
            if low < 0 or self.max_replicas < max(1, low):
                raise ConfigError(
                    f"autoscaling needs 0 <= --min_replicas <= --max_replicas and --max_replicas >= 1, "
                    f"got {low} and {self.max_replicas}"
                )
        elif self.min_replicas is not None:
            raise ConfigError("--min_replicas turns on autoscaling only together with --max_replicas")
        if self.num_cpus_per_replica <= 0:
            raise ConfigError(f"--num_cpus_per_replica must be positive, got {self.num_cpus_per_replica}")
        if self.max_ongoing_requests < 1 or self.target_ongoing_requests <= 0:
            raise ConfigError("--max_ongoing_requests and --target_ongoing_requests must be positive")

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None

    @property
    def threads(self) -> int:
        """ONNX Runtime intra-op threads per replica: its CPU share, so replicas don't oversubscribe."""
        return max(1, int(self.num_cpus_per_replica))

    def deployment_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.num_cpus_per_replica},
            "graceful_shutdown_timeout_s": self.graceful_shutdown_seconds,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": 1 if self.min_replicas is None else self.min_replicas,
                "initial_replicas": max(1, 1 if self.min_replicas is None else self.min_replicas),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


class _ReplicaHeader:
    """ASGI middleware: add `X-Bertserve-Replica` to every HTTP response."""

    def __init__(self, app: Any, replica: str):
        self.app = app
        self.replica = replica.encode("latin-1", "replace")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_replica(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REPLICA_HEADER, self.replica)]
            await send(message)

        await self.app(scope, receive, send_with_replica)


@serve.ingress()  # late-bound: the app is built on the replica by __serve_build_asgi_app__
class ReplicaServer:
    """One Ray Serve replica: a model manager and the `bertserve serve` app around it."""

    def __init__(self, configs: list[ModelConfig], options: RayOptions, batching: BatchingOptions, app_options: Any):
        self.configs = configs
        self.options = options
        self.batching = batching
        self.app_options = app_options
        self.manager: Any = None

    async def __serve_build_asgi_app__(self) -> Any:
        from bertserve.inference.model import ExportedModel
        from bertserve.serving.app import AppOptions, create_app
        from bertserve.serving.manager import ModelManager
        from bertserve.serving.prometheus import ServingMetrics
        from bertserve.serving.server import ServerState, add_operational_routes

        # server.build() without a loader argument: here each replica gets only its CPU share of
        # ONNX Runtime threads, else N replicas on N cores would each spawn N threads.
        metrics = ServingMetrics()
        loader = functools.partial(ExportedModel.load, threads=self.options.threads)
        self.manager = ModelManager(
            self.configs, self.batching, poll_seconds=self.options.poll_seconds, loader=loader,
            on_batch=metrics.observe_batch,
        )
        metrics.watch(self.manager)
        app_options = self.app_options if self.app_options is not None else AppOptions()
        if getattr(app_options, "metrics", None) is None:
            app_options = dataclasses.replace(app_options, metrics=metrics)
        app = create_app(self.manager, app_options)
        add_operational_routes(app, ServerState(self.manager), metrics)
        await self.manager.start()
        await self._wait_until_ready()
        replica = serve.get_replica_context().replica_id.unique_id
        logger.info("replica %s ready: %s", replica, ", ".join(self.manager.model_names()))
        return _ReplicaHeader(app, replica)

    async def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_seconds
        while not self.manager.ready():
            if time.monotonic() > deadline:
                problems = []
                for name in self.manager.model_names():
                    states = "; ".join(
                        f"{status.version} {status.state.value} {status.error_message}".strip()
                        for status in self._statuses(name)
                    )
                    problems.append(f"{name}: {states or 'no version folders found'}")
                raise ConfigError(
                    f"models not AVAILABLE within {self.options.startup_timeout_seconds:g} s ({'; '.join(problems)}); "
                    "check --model_base_path on every Ray node"
                )
            await asyncio.sleep(0.05)

    def _statuses(self, name: str) -> list:
        try:
            return self.manager.statuses(name)
        except Exception:  # no versions seen yet
            return []


def application(
    configs: list[ModelConfig], options: RayOptions, batching: BatchingOptions, app_options: Any = None
) -> Any:
    """The bound Ray Serve application: pass it to `serve.run(..., route_prefix="/")`."""
    deployment = serve.deployment(ReplicaServer, name="bertserve").options(**options.deployment_options())
    return deployment.bind(configs, options, batching, app_options)
