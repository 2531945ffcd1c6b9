"""Golden tests of the protocol-neutral V2 tensor codec (serving/v2/tensors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bertserve.errors import RequestError
from bertserve.serving.v2.tensors import (
    Tensor, check_header, join_bytes, list_of, raw_of, split_bytes, tensor_from_list, tensor_from_raw,
)


def test_bytes_elements_are_length_prefixed_little_endian():
    raw = join_bytes(["很好".encode(), b"", b"ok"])
    assert raw == b"\x06\x00\x00\x00\xe5\xbe\x88\xe5\xa5\xbd" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00ok"
    assert split_bytes(raw, 3, "text") == ["很好".encode(), b"", b"ok"]


def test_numbers_raw_and_typed_give_the_same_tensor():
    raw = b"\x65\x00\x00\x00\x00\x00\x00\x00" + b"\x66\x00\x00\x00\x00\x00\x00\x00"  # 101, 102 as INT64 LE
    from_raw = tensor_from_raw("input_ids", "INT64", (1, 2), raw)
    from_list = tensor_from_list("input_ids", "INT64", (1, 2), [[101, 102]])
    assert from_raw.data.tolist() == from_list.data.tolist() == [[101, 102]]
    assert raw_of(from_list) == raw


def test_outputs_encode_to_json_lists_and_raw():
    probabilities = Tensor("probabilities", "FP32", (1, 2), np.array([[0.25, 0.75]], dtype=np.float32))
    assert list_of(probabilities) == [0.25, 0.75]
    assert raw_of(probabilities) == np.array([0.25, 0.75], dtype="<f4").tobytes()
    labels = Tensor("label", "BYTES", (2,), np.array(["好".encode(), b"bad"], dtype=object))
    assert list_of(labels) == ["好", "bad"]
    assert raw_of(labels) == join_bytes(["好".encode(), b"bad"])


@pytest.mark.parametrize("shape, count", [((0,), 0), ((2, 3), 6), ((), 1)])
def test_shapes(shape, count):
    assert check_header("x", "INT32", list(shape), 10)[2] == shape
    assert tensor_from_list("x", "INT32", shape, [7] * count).data.size == count


def test_int32_range_and_shape_limits():
    with pytest.raises(RequestError, match="outside the range of INT32"):
        tensor_from_list("x", "INT32", (1,), [2**31])
    with pytest.raises(RequestError, match="more than the limit of 10"):
        check_header("x", "INT32", [11], 10)
