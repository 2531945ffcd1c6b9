"""The dynamic batcher with a fake engine: batching, result routing, queue bound, deadlines, lengths."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from bertserve.errors import ConfigError, EngineError, RequestError
from bertserve.serving.batching import Batcher, BatchingOptions
from bertserve.tokenizer import Encoded


class FakeEngine:
    """Answers [first real token, row length] per row, records every batch, can be held."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, encoded: Encoded) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(5), "test never released the engine"
        self.batches.append(encoded.input_ids.copy())
        lengths = encoded.attention_mask.sum(axis=1)
        return np.stack([encoded.input_ids[:, 1], lengths], axis=1).astype(np.float32)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def row(token: int, length: int = 3) -> list[int]:
    return [101, token] + [7] * (length - 3) + [102]


async def started(engine: FakeEngine, **options) -> Batcher:
    batcher = Batcher("m", engine, pad_id=0, options=BatchingOptions(**options))
    await batcher.start()
    return batcher


def test_concurrent_requests_share_one_batch_and_get_their_own_results():
    engine = FakeEngine()

    async def scenario():
        batcher = await started(engine, max_batch_size=8, batch_timeout_micros=200_000)
        results = await asyncio.gather(*(batcher.submit([row(1000 + i, 3 + i % 2)]) for i in range(8)))
        await batcher.close()
        return results

    results = run(scenario())
    assert [len(batch) for batch in engine.batches] == [8]
    for i, result in enumerate(results):
        assert result.tolist() == [[1000 + i, 3 + i % 2]]


def test_a_request_larger_than_a_batch_is_split_and_reassembled_in_order():
    engine = FakeEngine()

    async def scenario():
        batcher = await started(engine, max_batch_size=4, batch_timeout_micros=0)
        result = await batcher.submit([row(2000 + i) for i in range(10)])
        await batcher.close()
        return result

    result = run(scenario())
    assert sorted(len(batch) for batch in engine.batches) == [2, 4, 4]
    assert result[:, 0].tolist() == [2000 + i for i in range(10)]


def test_full_queue_is_refused_at_once_with_503():
    engine = FakeEngine()
    engine.gate.clear()

    async def scenario():
        batcher = await started(engine, max_batch_size=2, max_enqueued_batches=1, batch_timeout_micros=0)
        busy = asyncio.create_task(batcher.submit([row(1)]))  # taken by the (held) engine
        await asyncio.to_thread(engine.entered.wait, 5)
        queued = asyncio.create_task(batcher.submit([row(2), row(3)]))  # fills the 2-row queue
        await asyncio.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(RequestError) as refused:
            await batcher.submit([row(4)])
        elapsed = time.monotonic() - start
        engine.gate.set()
        results = await asyncio.gather(busy, queued)
        await batcher.close()
        return refused.value, elapsed, results

    error, elapsed, results = run(scenario())
    assert error.status == 503 and "queue" in str(error) and "is full" in str(error)
    assert elapsed < 0.05
    assert results[1][:, 0].tolist() == [2, 3]


def test_deadline_gives_504_and_the_abandoned_row_is_never_computed():
    engine = FakeEngine()
    engine.gate.clear()

    async def scenario():
        batcher = await started(engine, max_batch_size=1, batch_timeout_micros=0)
        busy = asyncio.create_task(batcher.submit([row(1)]))
        await asyncio.to_thread(engine.entered.wait, 5)
        start = time.monotonic()
        with pytest.raises(RequestError) as late:
            await batcher.submit([row(2)], deadline=time.monotonic() + 0.05)
        elapsed = time.monotonic() - start
        engine.gate.set()
        await busy
        await batcher.close()
        return late.value, elapsed

    error, elapsed = run(scenario())
    assert error.status == 504 and "Deadline exceeded" in str(error)
    assert 0.04 < elapsed < 1.0
    assert [batch[:, 1].tolist() for batch in engine.batches] == [[1]]


def test_rows_are_grouped_by_length_to_keep_padding_small():
    engine = FakeEngine()
    engine.gate.clear()

    async def scenario():
        batcher = await started(engine, max_batch_size=2, batch_timeout_micros=0)
        busy = asyncio.create_task(batcher.submit([row(1)]))
        await asyncio.to_thread(engine.entered.wait, 5)
        # Arrive interleaved: short, long, short, long.
        waiting = [asyncio.create_task(batcher.submit([row(10 + i, length)])) for i, length in enumerate((3, 40, 4, 41))]
        await asyncio.sleep(0.01)
        engine.gate.set()
        await asyncio.gather(busy, *waiting)
        await batcher.close()

    run(scenario())
    widths = [batch.shape[1] for batch in engine.batches[1:]]
    firsts = [sorted(batch[:, 1].tolist()) for batch in engine.batches[1:]]
    assert widths == [4, 41]
    assert firsts == [[10, 12], [11, 13]]


def test_engine_failure_fails_only_that_batch_and_bad_options_are_config_errors():
    def broken(encoded: Encoded) -> np.ndarray:
        raise RuntimeError("onnxruntime exploded")

    async def scenario():
        batcher = Batcher("m", broken, pad_id=0, options=BatchingOptions(batch_timeout_micros=0))
        await batcher.start()
        with pytest.raises(EngineError) as failed:
            await batcher.submit([row(1)])
        await batcher.close()
        return failed.value

    failure = run(scenario())
    assert failure.status == 500 and failure.code == "INTERNAL" and "onnxruntime exploded" in str(failure)
    with pytest.raises(ConfigError, match="max_batch_size"):
        BatchingOptions(max_batch_size=0)


def test_close_finishes_queued_requests_then_refuses_new_ones():
    engine = FakeEngine()

    async def scenario():
        batcher = await started(engine, max_batch_size=4, batch_timeout_micros=100_000)
        pending = asyncio.create_task(batcher.submit([row(5)]))
        await asyncio.sleep(0)
        await batcher.close()
        with pytest.raises(RequestError) as refused:
            await batcher.submit([row(6)])
        return await pending, refused.value

    result, error = run(scenario())
    assert result.tolist() == [[5, 3]]
    assert error.status == 503


def test_a_token_budget_caps_batches_of_long_rows_but_not_of_short_ones():
    engine = FakeEngine()
    engine.gate.clear()

    async def scenario():
        batcher = await started(engine, max_batch_size=8, max_batch_tokens=40, batch_timeout_micros=0)
        busy = asyncio.create_task(batcher.submit([row(1)]))
        await asyncio.to_thread(engine.entered.wait, 5)
        # Four rows of 4 tokens (16 padded tokens together), then three of 18 (54 > 40 together).
        short = [asyncio.create_task(batcher.submit([row(10 + i, 4)])) for i in range(4)]
        await asyncio.sleep(0.01)
        long = [asyncio.create_task(batcher.submit([row(20 + i, 18)])) for i in range(3)]
        await asyncio.sleep(0.01)
        engine.gate.set()
        await asyncio.gather(busy, *short, *long)
        await batcher.close()

    run(scenario())
    shapes = [batch.shape for batch in engine.batches[1:]]
    assert shapes == [(4, 4), (2, 18), (1, 18)]


def test_a_row_longer_than_the_token_budget_still_runs_alone():
    engine = FakeEngine()

    async def scenario():
        batcher = await started(engine, max_batch_size=8, max_batch_tokens=5, batch_timeout_micros=0)
        result = await batcher.submit([row(3, 12)])
        await batcher.close()
        return result

    assert run(scenario()).tolist() == [[3, 12]]
    assert [batch.shape for batch in engine.batches] == [(1, 12)]
    with pytest.raises(ConfigError, match="--max_batch_tokens must be >= 0"):
        BatchingOptions(max_batch_tokens=-1)


def test_an_idle_server_runs_a_lone_request_on_the_loop_and_a_busy_one_in_the_worker():
    from bertserve.serving import batching

    threads = []

    def engine(encoded: Encoded) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return np.stack([encoded.input_ids[:, 1], encoded.attention_mask.sum(axis=1)], axis=1).astype(np.float32)

    async def scenario():
        batcher = Batcher("m", engine, pad_id=0, options=BatchingOptions(inline_when_idle=True))
        await batcher.start()
        batching.in_flight_requests.count = 1  # this request alone, as the HTTP layer counts it
        alone = await batcher.submit([row(1), row(2, 5)])
        batching.in_flight_requests.count = 2  # another request has arrived: the queue path
        crowded = await batcher.submit([row(3)])
        batching.in_flight_requests.count = 0
        off = Batcher("n", engine, pad_id=0, options=BatchingOptions())
        await off.start()
        default = await off.submit([row(4)])
        await asyncio.gather(batcher.close(), off.close())
        return alone, crowded, default

    alone, crowded, default = run(scenario())
    assert alone.tolist() == [[1, 3], [2, 5]] and crowded.tolist() == [[3, 3]] and default.tolist() == [[4, 3]]
    assert threads[0] == "MainThread"
    assert threads[1].startswith("batch-m") and threads[2].startswith("batch-n")


def test_an_inline_engine_failure_is_an_engine_error_for_that_request_only():
    from bertserve.serving import batching

    def broken(encoded: Encoded) -> np.ndarray:
        raise RuntimeError("openvino exploded")

    async def scenario():
        batcher = Batcher("m", broken, pad_id=0, options=BatchingOptions(inline_when_idle=True))
        await batcher.start()
        with pytest.raises(EngineError) as failed:
            await batcher.submit([row(1)])
        with pytest.raises(RequestError) as late:
            await batcher.submit([row(1)], deadline=time.monotonic() - 1)
        await batcher.close()
        return failed.value, late.value

    assert batching.in_flight_requests.count == 0
    failure, late = run(scenario())
    assert failure.status == 500 and "openvino exploded" in str(failure)
    assert late.status == 504


def test_a_bucket_that_fills_the_token_budget_goes_without_waiting_for_the_timeout():
    engine = FakeEngine()

    async def scenario():
        # A 10 s batch timeout: only a full token budget can send these rows before the test's 10 s limit.
        batcher = await started(engine, max_batch_size=8, max_batch_tokens=20, batch_timeout_micros=10_000_000)
        results = await asyncio.gather(*(batcher.submit([row(30 + i, 10)]) for i in range(2)))
        await batcher.close()
        return results

    results = run(scenario())
    assert [result.tolist() for result in results] == [[[30, 10]], [[31, 10]]]
    assert [batch.shape for batch in engine.batches] == [(2, 10)]


def test_the_owners_own_count_of_callers_also_keeps_a_busy_server_off_the_inline_path():
    threads = []
    callers = {"count": 2}  # e.g. two gRPC calls inside the servable, which HTTP did not count

    def engine(encoded: Encoded) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return np.zeros((len(encoded.input_ids), 2), dtype=np.float32)

    async def scenario():
        batcher = Batcher("m", engine, pad_id=0, options=BatchingOptions(inline_when_idle=True),
                          callers=lambda: callers["count"])
        await batcher.start()
        await batcher.submit([row(1)])
        callers["count"] = 1
        await batcher.submit([row(2)])
        await batcher.close()

    run(scenario())
    assert threads[0].startswith("batch-m") and threads[1] == "MainThread"
