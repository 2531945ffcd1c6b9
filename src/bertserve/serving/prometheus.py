"""Prometheus metrics of a running server, served at `/monitoring/prometheus/metrics` and `/metrics`.

    metrics = ServingMetrics()
    manager = ModelManager(configs, options, on_batch=metrics.observe_batch)
    metrics.watch(manager)
    metrics.observe_request("chnsenticorp", "predict", 200, 0.012)               # REST (TF Serving V1)
    metrics.observe_request("chnsenticorp", "Predict", 0, 0.004, protocol="grpc") # a protocol's own code
    body, content_type = metrics.render()

Series (each server has its own registry, so tests can build many servers in one process):

    bertserve_requests_total{protocol,model,route,code}      requests answered, by status code
    bertserve_request_latency_seconds{protocol,model,route}  request latency histogram

`protocol` names the wire protocol: "rest" (TF Serving's REST API), "grpc" (TF Serving's gRPC),
"v2" / "v2-grpc" (the Open Inference Protocol); `code` is the HTTP status or the gRPC status name.
    bertserve_batch_size{model}                        rows per engine call (how well batching works)
    bertserve_batch_queue_depth{model,version}         rows waiting for a batch, read at scrape time
    bertserve_loaded_versions{model}                   AVAILABLE versions, read at scrape time
    bertserve_engine_config{model,version,engine,model_file,precision,hint,threads,streams,source}
                                                       = 1: the engine settings in use and whether they
                                                       were tuned, cached or pinned (inference/tuning.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bertserve.serving.manager import ModelManager

# Latency buckets from 1 ms to 30 s (the default request deadline).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _ManagerCollector(Collector):
    """Gauges read from the manager when scraped, so they can never drift from the truth."""

    def __init__(self, manager: "ModelManager"):
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("bertserve_batch_queue_depth", "Rows waiting for a batch.", labels=["model", "version"])
        loaded = GaugeMetricFamily("bertserve_loaded_versions", "AVAILABLE versions per model.", labels=["model"])
        engines = GaugeMetricFamily("bertserve_engine_config", "Engine settings in use (value 1).", labels=[
            "model", "version", "engine", "model_file", "precision", "hint", "threads", "streams", "source"])
        counts = {name: 0 for name in self.manager.model_names()}
        for servable in self.manager.loaded():
            depth.add_metric([servable.model_name, str(servable.version)], servable.batcher.queue_depth)
            engine = getattr(servable, "engine_config", None)
            if engine:
                # model_file: "main", or the precision variant run instead (variants/fp32).
                engines.add_metric([servable.model_name, str(servable.version), str(engine.get("engine", "")),
                                    str(engine.get("model", "main")), *(str(engine.get(name, "")) for name in (
                                        "precision", "hint", "threads", "streams")),
                                    str(engine.get("tuning", {}).get("source", ""))], 1)
            counts[servable.model_name] = counts.get(servable.model_name, 0) + 1
        for name, count in counts.items():
            loaded.add_metric([name], count)
        yield depth
        yield loaded
        yield engines


class ServingMetrics:
    """The server's metrics; `observe_request` is the hook `AppOptions.metrics` expects."""

    def __init__(self, manager: "ModelManager | None" = None):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bertserve_requests", "Requests answered.", ["protocol", "model", "route", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "bertserve_request_latency_seconds", "Request latency.", ["protocol", "model", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "bertserve_batch_size", "Rows per engine call.", ["model"], buckets=BATCH_SIZE_BUCKETS, registry=self.registry
        )
        if manager is not None:
            self.watch(manager)

    def watch(self, manager: "ModelManager") -> None:
        """Export the manager's queue depths and loaded versions (call once)."""
        self.registry.register(_ManagerCollector(manager))

    def observe_request(self, model: str, route: str, status: int | str, seconds: float, protocol: str = "rest") -> None:
        self.requests.labels(protocol, model or "", route, str(status)).inc()
        self.latency.labels(protocol, model or "", route).observe(seconds)

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_size.labels(model).observe(size)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
