"""Overload: more load than the server takes -> fast 503s, bounded latency for the admitted ones,
a bounded queue, and full service again once the load drops (TF Serving's choice: a full batch
queue answers 503 at once instead of letting latency grow).

The longer, measured version is `scripts/reliability/soak.py --phase overload` (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time

import httpx
import pytest

from bertserve.serving.batching import BatchingOptions
from inprocess_server import InProcessServer

PREDICT = "/v1/models/tiny:predict"
TEXTS = ["这家酒店的房间很干净，服务也很好，下次还会再来。"] * 8
BATCHING = BatchingOptions(max_batch_size=8, max_enqueued_batches=2, batch_timeout_micros=2000)


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    base = tmp_path_factory.mktemp("overload") / "tiny"
    shutil.copytree(tiny_export, base / "1")
    with InProcessServer(base, batching=BATCHING) as running:
        yield running


async def flood(url: str, concurrency: int, requests_each: int, keep_alive_seconds: float) -> list[tuple[int, float, dict]]:
    """`concurrency` clients, each sending `requests_each` back-to-back requests of 8 texts.

    The client stops reusing an idle connection well before the server's keep-alive timeout
    (`keep_alive_seconds`) closes it, as a client must: httpx's default (5 s) equals the server's,
    and its idle clock starts when it has read a response, up to 0.85 s after the server's
    (measured here under load), so it kept sending requests on connections the server was
    closing at that moment; a request crossing the server's FIN gets no answer (RFC 9112 9.5),
    and this test would measure that race instead of the overload."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                          keepalive_expiry=keep_alive_seconds / 5)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one_client() -> list[tuple[int, float, dict]]:
            answers = []
            for _ in range(requests_each):
                started = time.perf_counter()
                response = await client.post(PREDICT, json={"instances": TEXTS})
                answers.append((response.status_code, time.perf_counter() - started, response.json()))
            return answers

        results = await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return [answer for answers in results for answer in answers]


def test_overload_sheds_with_fast_503s_and_recovers(server):
    queue_depths: list[int] = []
    servable = server.manager.servable("tiny")

    async def watch_queue(stop: asyncio.Event) -> None:
        while not stop.is_set():
            queue_depths.append(servable.batcher.queue_depth)
            await asyncio.sleep(0.002)

    async def run() -> list[tuple[int, float, dict]]:
        stop = asyncio.Event()
        watcher = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(watch_queue(stop), server.server.servers[0].get_loop()))
        try:
            return await flood(server.url, concurrency=64, requests_each=6,
                               keep_alive_seconds=server.server_options.keep_alive_seconds)
        finally:
            server.server.servers[0].get_loop().call_soon_threadsafe(stop.set)
            await watcher

    answers = asyncio.run(run())
    codes = [code for code, _, _ in answers]
    assert set(codes) <= {200, 503}, sorted(set(codes))  # shed, never fail
    shed = [(seconds, body) for code, seconds, body in answers if code == 503]
    admitted = [seconds for code, seconds, _ in answers if code == 200]
    assert shed and admitted, f"{len(shed)} shed, {len(admitted)} admitted: the flood did not overload the queue"
    assert shed[0][1]["error"].startswith("The batch queue of model tiny/1 is full (")
    print(f"\noverload: {len(admitted)} admitted (median {statistics.median(admitted) * 1000:.0f} ms, max {max(admitted) * 1000:.0f} ms), "
          f"{len(shed)} shed (median {statistics.median(s for s, _ in shed) * 1000:.0f} ms), max queue {max(queue_depths)} rows")
    # Bounded: the queue never holds more than its limit, so no admitted request waits behind
    # more than 2 batches. Latencies are printed, not asserted: on 2 cores shared with the client
    # (and other jobs) they measure the machine; scripts/reliability/soak.py measures them alone.
    assert max(queue_depths) <= BATCHING.max_queued_rows
    assert max(admitted) < 30.0  # the request deadline: nothing admitted waits for ever
    # Recovery: with the load gone, every request is served.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert [client.post(PREDICT, json={"instances": TEXTS}).status_code for _ in range(10)] == [200] * 10
    assert servable.batcher.queue_depth == 0
