"""Padded shapes: the lengths chosen, the padding added, and unchanged probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from bertserve.inference.padded_shapes import DEFAULT_PADDED_LENGTHS, padded_length, check_padded_lengths, pad_to_fixed_length
from bertserve.errors import ExportError
from bertserve.inference.model import ExportedModel


@pytest.mark.parametrize(
    ("length", "expected"), [(1, 16), (16, 16), (17, 32), (33, 48), (65, 80), (97, 112), (128, 128), (129, 150)]
)
def test_padded_length_rounds_up_and_stops_at_the_model_limit(length, expected):
    assert padded_length(length, DEFAULT_PADDED_LENGTHS, max_length=150) == expected


def test_length_past_every_fixed_length_is_kept():
    assert padded_length(600, (16, 32), max_length=1024) == 600


def test_pad_to_fixed_length_adds_masked_padding(chinese_tokenizer):
    encoded = chinese_tokenizer.encode(["很好", "太差了"])  # length 5
    padded = pad_to_fixed_length(encoded, (8, 16), max_length=128, pad_id=chinese_tokenizer.pad_id)
    assert padded.input_ids.shape == padded.attention_mask.shape == padded.token_type_ids.shape == (2, 8)
    assert padded.input_ids.dtype == np.int64
    np.testing.assert_array_equal(padded.input_ids[:, :5], encoded.input_ids)
    assert (padded.input_ids[:, 5:] == chinese_tokenizer.pad_id).all()
    assert (padded.attention_mask[:, 5:] == 0).all() and (padded.token_type_ids[:, 5:] == 0).all()
    assert pad_to_fixed_length(padded, (8, 16), 128, 0) is padded  # already a fixed length: untouched


def test_bad_padded_lengths_are_refused():
    assert check_padded_lengths([64, 16, 16]) == (16, 64)
    with pytest.raises(ExportError, match="padded lengths must be positive integers"):
        check_padded_lengths([16, 0])


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_padding_to_fixed_lengths_gives_the_same_probabilities(tiny_export, engine):
    texts = ["很好", "太差了，不推荐", "房间干净，服务热情，下次还来！", "一般" * 30]
    plain = ExportedModel.load(tiny_export, threads=1, engine=engine, padded_lengths=())
    padded = ExportedModel.load(tiny_export, threads=1, engine=engine, padded_lengths=(16, 64, 128))
    assert padded.padded_lengths == (16, 64, 128) and plain.padded_lengths == ()
    for text in texts:
        np.testing.assert_allclose(padded.predict_texts([text]), plain.predict_texts([text]), atol=1e-6)
    np.testing.assert_allclose(padded.predict_texts(texts), plain.predict_texts(texts), atol=1e-6)


def test_padded_shapes_are_off_unless_asked(tiny_export):
    assert ExportedModel.load(tiny_export, threads=1).padded_lengths == ()
    assert ExportedModel.load(tiny_export, threads=1, engine="openvino").padded_lengths == ()
    assert ExportedModel.load(tiny_export, threads=1, padded_lengths=DEFAULT_PADDED_LENGTHS).padded_lengths == DEFAULT_PADDED_LENGTHS
