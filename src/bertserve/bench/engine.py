"""The engine's own limit: the texts a level sends, in batches, through `ExportedModel` in this
process (tokenize + pad + ONNX Runtime + softmax), with no HTTP, JSON or batcher in between.

    model = ExportedModel.load("models/chnsenticorp/1", verify=False)
    result = engine_level(model, texts, concurrency=32, max_batch_size=32, duration=10.0)

At concurrency c the batch size is min(c, max_batch_size): the biggest batch a server with that
many clients could form. The batches are consecutive texts of the stream, as they come (the
server's length buckets may pad less, which favours the server slightly). The result is a
`LevelResult` like a server's: its latency is the time of one batch, its throughput texts/s.
Run it while the server is idle: both share the same cores.
"""

from __future__ import annotations

import time
from typing import Any

from bertserve.bench.loadgen import LevelResult
from bertserve.errors import ConfigError


def engine_level(
    model: Any,
    texts: list[str],
    concurrency: int,
    max_batch_size: int = 32,
    duration: float | None = 10.0,
    max_requests: int | None = None,
    warmup_seconds: float = 1.0,
    text_mode: str = "all",
) -> LevelResult:
    if duration is None and max_requests is None:
        raise ConfigError("give a --duration or a --requests bound")
    batch_size = max(1, min(concurrency, max_batch_size))
    result = LevelResult("engine (in-process)", concurrency, text_mode)
    position = 0

    def next_batch() -> list[str]:
        nonlocal position
        batch = [texts[(position + offset) % len(texts)] for offset in range(batch_size)]
        position += batch_size
        return batch

    warmup_until = time.perf_counter() + warmup_seconds
    while time.perf_counter() < warmup_until:
        model.predict_texts(next_batch())
    cpu_started = time.process_time()
    started = time.perf_counter()
    stop_at = started + (duration if duration is not None else 24 * 3600)
    while time.perf_counter() < stop_at and (max_requests is None or result.requests < max_requests):
        batch = next_batch()
        batch_started = time.perf_counter()
        model.predict_texts(batch)
        result.latencies_ms.append((time.perf_counter() - batch_started) * 1000)
        result.requests += len(batch)
    result.seconds = time.perf_counter() - started
    # Here the "client" is the engine itself: CPU time per text, all threads of this process.
    result.client_cpu_ms = (time.process_time() - cpu_started) * 1000 / max(1, result.requests)
    result.summarise()
    return result
