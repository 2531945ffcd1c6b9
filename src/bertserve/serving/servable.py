"""A `Servable`: one loaded model version, ready to answer requests through its own batcher.

The manager (`manager.py`) creates one per loaded version and hands it to the REST layer:

    servable = manager.servable("chnsenticorp")                  # latest AVAILABLE version
    probabilities = await servable.predict_texts(["很好"], deadline=time.monotonic() + 30)

Short requests are tokenized on the event loop, long ones in a worker thread so a long text never
blocks the event loop; the rows then go through the dynamic batcher. The servable counts requests
in flight so the manager can unload it only after they finish (`drain`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import numpy as np

from bertserve.errors import RequestError
from bertserve.serving.batching import Batcher, BatchingOptions, deadline_error
from bertserve.tokenizer import Encoded

# Requests with at most this many characters in all are tokenized on the event loop (256
# characters take ~0.4 ms on an idle core, a 75-character review ~0.13 ms); longer ones go to a
# worker thread so they never stall other requests. The thread hop costs about as much as
# tokenizing a short review, and it competes for the GIL with the loop (docs/benchmarks.md).
INLINE_TOKENIZE_CHARS = 256


class Servable:
    """One loaded version of one model (`model` is an `ExportedModel` or anything with its members)."""

    def __init__(
        self,
        model_name: str,
        model: Any,
        options: BatchingOptions,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.model_name = model_name
        self.model = model
        self.version: int = int(model.version)
        self.batcher = Batcher(
            f"{model_name}/{self.version}",
            engine=model.predict_encoded,
            pad_id=model.tokenizer.pad_id,
            options=options,
            on_batch=on_batch,
            callers=lambda: self._in_flight,
        )
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def engine_config(self) -> dict[str, Any]:
        """The engine settings in use and how they were chosen (`bertserve.inference.tuning`):
        {"engine", "precision", "hint", "threads", "streams", "tuning": {"source", "seconds", "trials"}};
        {} for a model whose engine does not say."""
        engine = getattr(self.model, "engine", None)
        settings = getattr(engine, "settings", None)
        if not isinstance(settings, dict):
            return {}
        tuning = getattr(engine, "tuning", None)
        return {**settings, **({"tuning": tuning} if isinstance(tuning, dict) else {})}

    async def start(self) -> None:
        await self.batcher.start()

    async def predict_texts(self, texts: list[str], deadline: float | None = None) -> np.ndarray:
        """Probabilities (len(texts), num_labels) for raw texts."""
        self._enter()
        try:
            if not texts:
                raise RequestError("No instances to predict", 400)
            self.batcher.check_room(len(texts))  # shed before tokenizing, not after
            if sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:
                # A few short texts tokenize in ~0.1 ms: cheaper on the loop than a thread hand-off.
                id_lists = self.model.tokenizer.token_ids(texts)
            else:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    id_lists = await asyncio.wait_for(asyncio.to_thread(self.model.tokenizer.token_ids, texts), timeout)
                except asyncio.TimeoutError:
                    raise deadline_error(self.model_name) from None
            return await self.batcher.submit(id_lists, deadline)
        finally:
            self._exit()

    async def predict_encoded(self, encoded: Encoded, deadline: float | None = None) -> np.ndarray:
        """Probabilities for already tokenized rows (the demo's `{"inputs": {"input_ids": ...}}`).

        Each row is cut after its last attended position, so rows padded to 128 by the client are
        batched and padded again with their neighbours like any other request."""
        self._enter()
        try:
            input_ids, attention_mask, token_type_ids = self._check(encoded)
            rows, masks, types = [], [], []
            for ids, mask, segment in zip(input_ids, attention_mask, token_type_ids):
                attended = np.flatnonzero(mask)
                length = int(attended[-1]) + 1 if attended.size else 1
                rows.append(ids[:length])
                masks.append(mask[:length])
                types.append(segment[:length])
            return await self.batcher.submit(rows, deadline, token_type_ids=types, attention_mask=masks)
        finally:
            self._exit()

    def _check(self, encoded: Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Refuse a bad request here, with a 400, so it cannot fail a whole batch of other requests."""
        input_ids = np.asarray(encoded.input_ids)
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise RequestError(f"input_ids must be a non-empty 2-D list (batch, sequence), got shape {list(input_ids.shape)}")
        if not np.issubdtype(input_ids.dtype, np.integer):
            raise RequestError("input_ids must be integers")
        arrays = []
        for name in ("attention_mask", "token_type_ids"):
            value = np.asarray(getattr(encoded, name))
            if value.shape != input_ids.shape:
                raise RequestError(f"{name} has shape {list(value.shape)}, expected {list(input_ids.shape)} like input_ids")
            arrays.append(value.astype(np.int64))
        max_length = int(self.model.max_seq_length)
        if input_ids.shape[1] > max_length:
            # Cutting trailing padding is fine; real tokens past the model's length are not.
            if np.any(arrays[0][:, max_length:]):
                raise RequestError(f"sequence length {input_ids.shape[1]} exceeds this model's max_seq_length {max_length}")
        vocab_size = int(self.model.tokenizer.vocab_size)
        if input_ids.min() < 0 or input_ids.max() >= vocab_size:
            raise RequestError(f"input_ids must lie in [0, {vocab_size}) for this model's vocabulary")
        return input_ids.astype(np.int64), arrays[0], arrays[1]

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _exit(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight; False if `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        await self.batcher.close()
