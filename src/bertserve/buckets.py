"""Length buckets: pad a batch to one of a few fixed sequence lengths before the engine runs it.

OpenVINO compiles kernels per input shape and loses time whenever the shape changes between
calls; with dynamic padding every request has its own length. Rounding the length up to a
bucket (16, 32, 48, ... 128, 160, ...) keeps the set of shapes small, at the cost of computing a few
padded positions. Padding is masked out (attention_mask 0), so probabilities do not change
(up to float rounding, tested in tests/test_buckets.py). Whether it pays is measured in
benchmarks/engines.py: with OpenVINO 2026.4 on our CPU it did not (BERT-base int8, 60 dev texts
one by one: 85 ms/text with buckets vs 56 without, interleaved under load; docs/benchmarks.md,
"Engines"), so `ExportedModel` leaves it off unless asked (`buckets=DEFAULT_BUCKETS`).

    from bertserve.buckets import DEFAULT_BUCKETS, pad_to_bucket
    encoded = pad_to_bucket(tokenizer.encode(texts), DEFAULT_BUCKETS, max_length=128, pad_id=0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bertserve.errors import ExportError
from bertserve.tokenizer import Encoded

# Steps of 16 up to 128 (most reviews are shorter: ChnSentiCorp's median is ~75 tokens), so at
# most 15 padded positions; coarser above, where a step is a small part of the sequence's cost.
# 16 shapes in all: few enough that OpenVINO keeps each one's compiled kernels warm.
DEFAULT_BUCKETS: tuple[int, ...] = (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """Buckets as a sorted tuple of distinct positive lengths; raise ExportError otherwise."""
    if any(not isinstance(length, int) or isinstance(length, bool) or length < 1 for length in buckets):
        raise ExportError(f"bucket lengths must be positive integers, got {list(buckets)}")
    return tuple(sorted(set(buckets)))


def bucket_length(length: int, buckets: Sequence[int], max_length: int) -> int:
    """The smallest bucket >= `length`, never above `max_length` (the model's limit); a length
    past every bucket stays as it is."""
    for bucket in buckets:
        if bucket >= length:
            return max(length, min(bucket, max_length))
    return length


def pad_to_bucket(encoded: Encoded, buckets: Sequence[int], max_length: int, pad_id: int) -> Encoded:
    """`encoded` padded on the right to its bucket length: pad ids, mask 0, segment 0."""
    batch, length = encoded.input_ids.shape
    target = bucket_length(length, buckets, max_length)
    if target == length:
        return encoded
    extra = target - length

    def widen(values: np.ndarray, fill: int) -> np.ndarray:
        padding = np.full((batch, extra), fill, dtype=values.dtype)
        return np.concatenate([values, padding], axis=1)

    return Encoded(
        input_ids=widen(np.asarray(encoded.input_ids), pad_id),
        attention_mask=widen(np.asarray(encoded.attention_mask), 0),
        token_type_ids=widen(np.asarray(encoded.token_type_ids), 0),
    )
