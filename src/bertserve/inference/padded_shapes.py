"""Padded shapes: pad a batch to one of a few fixed sequence lengths before the engine runs it.

(Not to be confused with the batcher's length *buckets*, which group queued requests by length.)

OpenVINO compiles kernels per input shape and loses time whenever the shape changes between
calls; with dynamic padding every request has its own length. Rounding the length up to a
fixed length (16, 32, 48, ... 128, 160, ...) keeps the set of shapes small, at the cost of computing a few
padded positions. Padding is masked out (attention_mask 0), so probabilities do not change
(up to float rounding, tested in tests/inference/test_padded_shapes.py). Whether it pays is measured in
benchmarks/engines.py: with OpenVINO 2026.4 on our CPU it did not (BERT-base int8, 60 dev texts
one by one: 85 ms/text with padded shapes vs 56 without, interleaved under load; docs/benchmarks.md,
"Engines"), so `ExportedModel` leaves it off unless asked (`padded_lengths=DEFAULT_PADDED_LENGTHS`).

    from bertserve.inference.padded_shapes import DEFAULT_PADDED_LENGTHS, pad_to_fixed_length
    encoded = pad_to_fixed_length(tokenizer.encode(texts), DEFAULT_PADDED_LENGTHS, max_length=128, pad_id=0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bertserve.errors import ExportError
from bertserve.tokenizer import Encoded

# Steps of 16 up to 128 (most reviews are shorter: ChnSentiCorp's median is ~75 tokens), so at
# most 15 padded positions; coarser above, where a step is a small part of the sequence's cost.
# 16 shapes in all: few enough that OpenVINO keeps each one's compiled kernels warm.
DEFAULT_PADDED_LENGTHS: tuple[int, ...] = (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)


def check_padded_lengths(lengths: Sequence[int]) -> tuple[int, ...]:
    """Buckets as a sorted tuple of distinct positive lengths; raise ExportError otherwise."""
    if any(not isinstance(length, int) or isinstance(length, bool) or length < 1 for length in lengths):
        raise ExportError(f"padded lengths must be positive integers, got {list(lengths)}")
    return tuple(sorted(set(lengths)))


def padded_length(length: int, lengths: Sequence[int], max_length: int) -> int:
    """The smallest fixed length >= `length`, never above `max_length` (the model's limit); a length
    past every fixed length stays as it is."""
    for fixed in lengths:
        if fixed >= length:
            return max(length, min(fixed, max_length))
    return length


def pad_to_fixed_length(encoded: Encoded, lengths: Sequence[int], max_length: int, pad_id: int) -> Encoded:
    """`encoded` padded on the right to its fixed length: pad ids, mask 0, segment 0."""
    batch, length = encoded.input_ids.shape
    target = padded_length(length, lengths, max_length)
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
