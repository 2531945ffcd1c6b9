"""Dynamic batching: many small requests in, few padded batches through the engine.

One `Batcher` serves one loaded model version. Requests are split into rows (one row = one
sequence of token ids); rows wait in length buckets; the batching loop takes the bucket whose
oldest row has waited longest, sends it as soon as it holds `max_batch_size` rows or its oldest row
has waited `batch_timeout_micros` (then it tops the batch up with the rows of the nearest lengths),
pads the batch to its own longest row and runs the engine in a worker thread (onnxruntime releases
the GIL, so the event loop keeps accepting requests meanwhile). Results are scattered back to the
requests they came from.

Two options change that policy:
- `max_batch_tokens` (like Hugging Face TEI's): a batch also stops growing when its padded size
  (rows x longest row) would pass this many tokens, so a batch of long texts holds fewer rows than
  one of short texts. 0 (default) = rows only.
- `inline_when_idle`: when a request arrives at an idle server (no other request in flight, nothing
  queued or running), its batch runs right on the event loop: no task, no thread hand-off there
  and back, which is most of the server's own cost at one client. Under load requests queue and
  take the worker-thread path as before, so batching is unchanged. "Idle" needs both counts at
  most 1: `in_flight_requests` (the HTTP layer counts requests as they arrive, before their
  bodies are read, so the others that have not reached the batcher yet count too) and the
  owner's own (`callers`: the Servable's requests in flight, whatever their protocol; a protocol
  front-end that can count its requests earlier should add them to `in_flight_requests`). Only
  with `batch_timeout_micros` 0: a batching window asked for means "wait for company", and a lone
  request then waits in the queue as TF Serving's would.

The knobs keep TF Serving's names (`--max_batch_size`, `--batch_timeout_micros`,
`--max_enqueued_batches`, `--num_batch_threads`). The queue is bounded: a request that does not fit
is refused at once with `RequestError(503)` instead of letting latency grow without limit, and a
request whose deadline passes gets `RequestError(504)`.

Deadlines are absolute `time.monotonic()` values (the clock asyncio's loop uses).

    batcher = Batcher("m", engine=model.predict_encoded, pad_id=0, options=BatchingOptions())
    await batcher.start()
    probabilities = await batcher.submit([[101, 2523, 102]], deadline=time.monotonic() + 30)
    await batcher.close()
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from bertserve.errors import ConfigError, EngineError, RequestError
from bertserve.tokenizer import Encoded

logger = logging.getLogger(__name__)

# Rows whose lengths fall in the same 16-token bucket are batched together first, so a batch of
# short sentences is not padded to the length of one long one.
LENGTH_BUCKET = 16


@dataclass(frozen=True)
class BatchingOptions:
    # Rows per engine call. 8, measured (docs/benchmarks.md): on 2 cores without AMX, m3e-small int8
    # served 149 texts/s at 32 clients with batches of 8 and 78 with batches of 32 (padding and
    # cache misses grow faster than the per-call savings).
    max_batch_size: int = 8
    # How long a row may wait for others to fill its batch. 0: never wait; rows that queue while the
    # engine is busy are still batched. Measured (docs/benchmarks.md): waiting 1 ms cost 2.4 ms of
    # p50 at one client (9.10 vs 6.67 ms) and bought nothing under load.
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 256  # queue bound = max_enqueued_batches * max_batch_size rows (2,048)
    num_batch_threads: int = 1  # engine calls in parallel; onnxruntime already uses all cores per call
    # Padded tokens (rows x longest row) per engine call; 0: no token budget, rows only. Which is
    # faster on real length mixes is measured by benchmarks/issue10.sh (docs/benchmarks.md).
    max_batch_tokens: int = 0
    # Run a lone request's batch on the event loop (see the module docstring). Off here so that an
    # embedding program keeps its loop free; `bertserve serve` turns it on (--inline_engine_calls).
    inline_when_idle: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ConfigError(f"--batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        if self.max_batch_tokens < 0:
            raise ConfigError(f"--max_batch_tokens must be >= 0 (0: off), got {self.max_batch_tokens}")

    @property
    def max_queued_rows(self) -> int:
        return self.max_enqueued_batches * self.max_batch_size


@dataclass
class _Request:
    """One caller's rows; the future resolves when every row has a result."""

    future: asyncio.Future
    deadline: float | None
    results: list[np.ndarray | None]
    remaining: int

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


@dataclass
class _Row:
    request: _Request
    index: int  # position of this row in its request
    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    enqueued_at: float = field(default_factory=time.monotonic)


class _InFlight:
    """Requests inside the server right now, counted by the HTTP layer from the moment a request's
    handler starts (before its body is read or tokenized). One count per process: every batcher
    of the process shares the cores, so "idle" means idle for all of them."""

    def __init__(self) -> None:
        self.count = 0


in_flight_requests = _InFlight()


def deadline_error(model_name: str) -> RequestError:
    return RequestError(
        f"Deadline exceeded: model {model_name} did not answer in time; "
        "retry, send fewer instances, or raise --rest_api_timeout_in_ms",
        504,
    )


class Batcher:
    """The dynamic batcher of one model version (see the module docstring)."""

    def __init__(
        self,
        model_name: str,
        engine: Callable[[Encoded], np.ndarray],
        pad_id: int,
        options: BatchingOptions,
        on_batch: Callable[[int], None] | None = None,
        callers: Callable[[], int] | None = None,
    ):
        self.model_name = model_name
        self.options = options
        self._engine = engine
        self._pad_id = pad_id
        self._on_batch = on_batch  # metrics hook: called with each batch's size
        # Requests the owner (a Servable) is working on, every protocol counted: with the HTTP
        # layer's count, what tells an idle server from a busy one.
        self._callers = callers or (lambda: 0)
        self._buckets: dict[int, collections.deque[_Row]] = {}
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(options.num_batch_threads)
        self._executor: ThreadPoolExecutor | None = None
        self._loop_task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Rows waiting for a batch (not counting the ones being computed)."""
        return self._queued_rows

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.options.num_batch_threads, thread_name_prefix=f"batch-{self.model_name}")
        self._loop_task = asyncio.create_task(self._batching_loop(), name=f"batcher-{self.model_name}")

    async def close(self) -> None:
        """Refuse new rows, finish the queued and running ones, then stop the worker threads."""
        self._closed = True
        self._wakeup.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # ---- the caller's side -------------------------------------------------------------------

    async def submit(
        self,
        input_ids: Sequence[Sequence[int] | np.ndarray],
        deadline: float | None = None,
        token_type_ids: Sequence[Sequence[int] | np.ndarray] | None = None,
        attention_mask: Sequence[Sequence[int] | np.ndarray] | None = None,
    ) -> np.ndarray:
        """Queue unpadded rows of ids and wait for their (rows, classes) probabilities.

        `token_type_ids` and `attention_mask` default to zeros and ones of each row's length."""
        if self._closed:
            raise RequestError(f"Model {self.model_name} is shutting down; retry on another replica", 503)
        count = len(input_ids)
        if count == 0:
            raise RequestError("No instances to predict", 400)
        self.check_room(count)
        if self._idle_for_inline(count):
            return self._run_inline(input_ids, token_type_ids, attention_mask, deadline)
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future(), deadline, [None] * count, count)
        for index, ids in enumerate(input_ids):
            ids_array = np.asarray(ids, dtype=np.int64)
            types = np.zeros_like(ids_array) if token_type_ids is None else np.asarray(token_type_ids[index], dtype=np.int64)
            mask = np.ones_like(ids_array) if attention_mask is None else np.asarray(attention_mask[index], dtype=np.int64)
            row = _Row(request, index, ids_array, types, mask)
            self._buckets.setdefault(len(ids_array) // LENGTH_BUCKET, collections.deque()).append(row)
        self._queued_rows += count
        self._wakeup.set()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            # shield: a timed-out caller must not cancel the shared future the batch loop resolves.
            return await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except asyncio.TimeoutError:
            raise deadline_error(self.model_name) from None
        finally:
            if not request.future.done():
                # The caller gave up (deadline or disconnect): its queued rows are skipped.
                request.future.cancel()

    def check_room(self, count: int) -> None:
        """503 at once when `count` more rows would overflow the queue. `submit` checks this too;
        callers check it first so that a request about to be shed costs no tokenization."""
        if self._queued_rows + count > self.options.max_queued_rows:
            raise RequestError(
                f"The batch queue of model {self.model_name} is full ({self._queued_rows} rows waiting, "
                f"limit {self.options.max_queued_rows}); retry later or raise --max_enqueued_batches",
                503,
            )

    # ---- the inline path (an idle server) ----------------------------------------------------

    def _idle_for_inline(self, count: int) -> bool:
        return (
            self.options.inline_when_idle
            and self.options.batch_timeout_micros == 0
            and count <= self.options.max_batch_size
            and self._queued_rows == 0
            and not self._running
            and in_flight_requests.count <= 1
            and self._callers() <= 1
        )

    def _run_inline(self, input_ids, token_type_ids, attention_mask, deadline: float | None) -> np.ndarray:
        """The batch of one lone request, computed here on the loop; same results and errors as
        the queued path."""
        if deadline is not None and time.monotonic() >= deadline:
            raise deadline_error(self.model_name)
        rows = []
        for index, ids in enumerate(input_ids):
            ids_array = np.asarray(ids, dtype=np.int64)
            types = np.zeros_like(ids_array) if token_type_ids is None else np.asarray(token_type_ids[index], dtype=np.int64)
            mask = np.ones_like(ids_array) if attention_mask is None else np.asarray(attention_mask[index], dtype=np.int64)
            rows.append(_Row(None, index, ids_array, types, mask))  # type: ignore[arg-type]
        encoded = self._pad(rows)
        if self._on_batch is not None:
            self._on_batch(len(rows))
        try:
            return np.asarray(self._engine(encoded))
        except RequestError:
            raise
        except Exception as error:
            logger.exception("model %s: batch of %d rows failed", self.model_name, len(rows))
            raise EngineError(f"Model {self.model_name} failed to run a batch: {error}") from None

    # ---- the batching loop -------------------------------------------------------------------

    async def _batching_loop(self) -> None:
        timeout = self.options.batch_timeout_micros / 1e6
        while True:
            # Take an engine slot first: while every worker is busy, rows keep piling up, so the
            # next batch is bigger exactly when the server is loaded.
            await self._slots.acquire()
            batch: list[_Row] = []
            while not batch:
                self._drop_abandoned()
                if self._queued_rows == 0:
                    if self._closed:
                        self._slots.release()
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                key, oldest = self._oldest_bucket()
                bucket = self._buckets[key]
                waited = time.monotonic() - oldest.enqueued_at
                if not self._bucket_full(bucket) and waited < timeout and not self._closed:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout - waited)
                    except asyncio.TimeoutError:
                        pass
                    continue
                batch = self._take(key)
            task = asyncio.create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _bucket_full(self, bucket: collections.deque[_Row]) -> bool:
        """Enough rows (or, with a token budget, enough padded tokens) to send without waiting."""
        if len(bucket) >= self.options.max_batch_size:
            return True
        budget = self.options.max_batch_tokens
        return bool(budget) and len(bucket) * max(len(row.input_ids) for row in bucket) >= budget

    def _oldest_bucket(self) -> tuple[int, _Row]:
        key = min((bucket[0].enqueued_at, key) for key, bucket in self._buckets.items() if bucket)[1]
        return key, self._buckets[key][0]

    def _take(self, key: int) -> list[_Row]:
        """Up to max_batch_size rows (and max_batch_tokens padded tokens) from bucket `key`,
        topped up from the nearest-length buckets. The first row always goes, however long."""
        batch: list[_Row] = []
        longest, full = 0, False
        budget = self.options.max_batch_tokens
        for other in sorted(self._buckets, key=lambda candidate: (abs(candidate - key), candidate)):
            bucket = self._buckets[other]
            while bucket and len(batch) < self.options.max_batch_size:
                length = max(longest, len(bucket[0].input_ids))
                if budget and batch and (len(batch) + 1) * length > budget:
                    full = True
                    break
                longest = length
                batch.append(bucket.popleft())
            if not bucket:
                del self._buckets[other]
            if full or len(batch) == self.options.max_batch_size:
                break
        self._queued_rows -= len(batch)
        return batch

    def _drop_abandoned(self) -> None:
        """Remove rows whose caller gave up or whose deadline passed (those callers get 504)."""
        now = time.monotonic()
        for key in list(self._buckets):
            bucket = self._buckets[key]
            kept = collections.deque(row for row in bucket if self._alive(row.request, now))
            self._queued_rows -= len(bucket) - len(kept)
            if kept:
                self._buckets[key] = kept
            else:
                del self._buckets[key]

    def _alive(self, request: _Request, now: float) -> bool:
        if request.future.done():
            return False
        if request.expired(now):
            request.future.set_exception(deadline_error(self.model_name))
            return False
        return True

    async def _run_batch(self, batch: list[_Row]) -> None:
        try:
            now = time.monotonic()
            batch = [row for row in batch if self._alive(row.request, now)]
            if not batch:
                return
            encoded = self._pad(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch))
            logger.debug("model %s: batch of %d rows padded to %d tokens (%d rows queued)",
                         self.model_name, len(batch), encoded.input_ids.shape[1], self._queued_rows)
            loop = asyncio.get_running_loop()
            try:
                probabilities = await loop.run_in_executor(self._executor, self._engine, encoded)
            except Exception as error:  # an engine failure fails this batch's requests, not the server
                if isinstance(error, RequestError):
                    failure = error
                else:
                    logger.exception("model %s: batch of %d rows failed", self.model_name, len(batch))
                    failure = EngineError(f"Model {self.model_name} failed to run a batch: {error}")
                for row in batch:
                    if not row.request.future.done():
                        row.request.future.set_exception(failure)
                return
            for row, result in zip(batch, probabilities):
                request = row.request
                if request.future.done():
                    continue
                request.results[row.index] = result
                request.remaining -= 1
                if request.remaining == 0:
                    request.future.set_result(np.stack(request.results))
        finally:
            self._slots.release()

    def _pad(self, batch: list[_Row]) -> Encoded:
        length = max(len(row.input_ids) for row in batch)
        input_ids = np.full((len(batch), length), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), length), dtype=np.int64)
        token_type_ids = np.zeros((len(batch), length), dtype=np.int64)
        for position, row in enumerate(batch):
            size = len(row.input_ids)
            input_ids[position, :size] = row.input_ids
            attention_mask[position, :size] = row.attention_mask
            token_type_ids[position, :size] = row.token_type_ids
        return Encoded(input_ids, attention_mask, token_type_ids)
