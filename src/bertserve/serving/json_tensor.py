"""JSON request bodies -> text batches or token-id tensors, with TF Serving's `json_tensor.cc` rules.

Pure functions used by `serving/app.py`; golden tests in `tests/serving/test_tfserving.py`.

    request = parse_predict({"instances": ["很好", "太差了"]}, Limits())          # texts, row format
    request = parse_predict({"inputs": {"input_ids": [[101, 2523, 102, 0]]}}, Limits())  # ids, columnar
    request.encoded_ids(pad_id=0)     # {"input_ids", "attention_mask" (ids != 0), "token_type_ids" (0)}
    texts = parse_classify({"examples": [{"text": "很好"}]}, Limits())

A tensor is decoded the way TF Serving decodes one: its shape is read from the first element at
every level, then every value is checked against that shape and the input's dtype (`string`:
a JSON string or `{"b64": ...}`; `int64`: a JSON integer, so `1.0` is refused). Row format stacks
one tensor per instance and refuses ragged rows. Error texts are TF Serving's own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from bertserve.errors import RequestError
from bertserve.serving.tfserving import (
    DEFAULT_SIGNATURE,
    ID_INPUTS,
    IDS_SIGNATURE,
    MAX_TENSOR_RANK,
    TEXT_INPUT,
    format_error,
    json_type,
    json_value_to_string,
    signature_name,
)

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


@dataclass(frozen=True)
class Limits:
    """Per-request limits (defaults documented on `AppOptions`)."""

    max_instances: int = 256
    max_text_chars: int = 10_000


@dataclass(frozen=True)
class PredictRequest:
    """A parsed predict body: texts or ids (int64 (batch, length) arrays keyed by input name)."""

    row_format: bool
    signature_name: str = ""
    texts: list[str] | None = None
    ids: dict[str, np.ndarray] | None = None

    @property
    def instances(self) -> int:
        if self.texts is not None:
            return len(self.texts)
        return int(self.ids["input_ids"].shape[0]) if self.ids else 0

    def encoded_ids(self, pad_id: int) -> dict[str, np.ndarray]:
        """input_ids, attention_mask, token_type_ids; length and vocabulary are checked by the servable.

        The demo's exported graph derived the mask as `ids != [PAD]` and used one segment, so a
        missing mask or segment input is filled in the same way."""
        assert self.ids is not None
        input_ids = self.ids["input_ids"]
        mask = self.ids.get("attention_mask")
        if mask is None:
            mask = (input_ids != pad_id).astype(np.int64)
        segments = self.ids.get("token_type_ids")
        if segments is None:
            segments = np.zeros_like(input_ids)
        for name, value in (("attention_mask", mask), ("token_type_ids", segments)):
            if value.shape != input_ids.shape:
                raise RequestError(
                    f"{name} has shape {list(value.shape)} but input_ids has {list(input_ids.shape)}; "
                    "send them with the same shape",
                    400,
                )
        if not np.isin(mask, (0, 1)).all() or not np.isin(segments, (0, 1)).all():
            raise RequestError("attention_mask and token_type_ids may only hold 0 or 1", 400)
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": segments}


# ---- one tensor ----------------------------------------------------------------------------------


def _shape(value: Any) -> list[int]:
    """TF's GetDenseTensorShape: sizes of the first element at each level."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_TENSOR_RANK:
            raise RequestError(f"Tensor is nested more than {MAX_TENSOR_RANK} lists deep; this model takes rank <= 2", 400)
        if not value:
            break
        value = value[0]
    return shape


def _shape_string(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _type_error(value: Any, dtype: str) -> RequestError:
    return RequestError(
        f"JSON Value: {json_value_to_string(value)} Type: {json_type(value)} is not of expected type: {dtype}", 400
    )


def _scalar(value: Any, dtype: str) -> Any:
    if dtype == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return _decode_b64(value)
        raise _type_error(value, dtype)
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    raise _type_error(value, dtype)


def _decode_b64(value: dict[str, Any]) -> str:
    encoded = value.get("b64")
    if len(value) != 1 or not isinstance(encoded, str):
        raise RequestError(f"JSON Value: {json_value_to_string(value)} not formatted correctly for base64 data", 400)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("Unable to base64 decode", 400) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("b64 text is not valid UTF-8; encode the text as UTF-8 before base64", 400) from None


def _fill(value: Any, level: int, shape: list[int], dtype: str, out: list[Any]) -> None:
    """TF's FillTensorProto: check `value` against `shape` and append its leaves to `out`."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise RequestError(
                f"JSON Value: {json_value_to_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}",
                400,
            )
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise RequestError(f"Encountered list at unexpected level: {level} expected < {rank}", 400)
    if len(value) != shape[level]:
        raise RequestError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}", 400
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def decode_tensor(value: Any, dtype: str) -> tuple[list[int], list[Any]]:
    """A JSON value -> (shape, flat values) for `dtype` 'string' or 'int64'."""
    shape = _shape(value)
    values: list[Any] = []
    _fill(value, 0, shape, dtype, values)
    return shape, values


# ---- predict -------------------------------------------------------------------------------------


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _first_leaf(value: Any) -> Any:
    while isinstance(value, list) and value:
        value = value[0]
    return value


def _wants_ids(value: Any, signature: str) -> bool:
    """Does a bare value hold ids (numbers) rather than texts? The `ids` signature always does."""
    if signature == IDS_SIGNATURE:
        return True
    leaf = _first_leaf(value)
    return isinstance(leaf, (int, float)) and not isinstance(leaf, bool)


def _check_signature(name: str) -> None:
    if name not in ("", DEFAULT_SIGNATURE, IDS_SIGNATURE):
        raise RequestError(f'Serving signature name: "{name}" not found in signature def', 400)


def parse_predict(document: dict[str, Any], limits: Limits) -> PredictRequest:
    """A `:predict` body (row `instances` or columnar `inputs`) -> texts or ids."""
    signature = signature_name(document)
    _check_signature(signature)
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise format_error(document, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise format_error(document, "Excepting 'instances' to be an list/array")
        if not instances:
            raise format_error(document, "No values in 'instances' array")
        _check_count(len(instances), limits)
        return _parse_rows(instances, signature, limits)
    if has_inputs:
        return _parse_columns(document["inputs"], signature, limits)
    raise RequestError("Missing 'inputs' or 'instances' key", 400)


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_instances:
        raise RequestError(
            f"Request has {count} instances; the limit is {limits.max_instances} per request "
            "(split the request or raise --max_instances)",
            400,
        )


def _texts(shape: list[int], values: list[str], limits: Limits) -> list[str]:
    if len(shape) != 1:
        raise RequestError(
            f"Input '{TEXT_INPUT}' must have shape [-1] (a list of strings), got {_shape_string(shape)}", 400
        )
    if not values:
        raise RequestError(f"Input '{TEXT_INPUT}' is empty; send at least one text", 400)
    _check_count(len(values), limits)
    for index, text in enumerate(values):
        if len(text) > limits.max_text_chars:
            raise RequestError(
                f"Text {index} has {len(text)} characters; the limit is {limits.max_text_chars} "
                "(shorten it or raise --max_text_chars)",
                400,
            )
    return values


def _ids(name: str, shape: list[int], values: list[int]) -> np.ndarray:
    if len(shape) != 2:
        raise RequestError(
            f"Input '{name}' must have shape [-1, -1] (a list of id lists, one per sentence), got {_shape_string(shape)}",
            400,
        )
    if shape[0] == 0 or shape[1] == 0:
        raise RequestError(f"Input '{name}' is empty (shape {_shape_string(shape)}); send at least one id", 400)
    return np.asarray(values, dtype=np.int64).reshape(shape)


def _parse_columns(inputs: Any, signature: str, limits: Limits) -> PredictRequest:
    if not isinstance(inputs, dict) or _is_b64(inputs):
        # A bare value: the signature's single input (texts), or ids as our addition.
        if _wants_ids(inputs, signature):
            shape, values = decode_tensor(inputs, "int64")
            ids = _ids("input_ids", shape, values)
            _check_count(ids.shape[0], limits)
            return PredictRequest(False, signature, ids={"input_ids": ids})
        shape, values = decode_tensor(inputs, "string")
        return PredictRequest(False, signature, texts=_texts(shape, values, limits))
    return parse_named_inputs(inputs, signature, limits, decode_tensor)


def parse_named_inputs(
    inputs: Mapping[str, Any], signature: str, limits: Limits, decode: Callable[[Any, str], tuple[list[int], list[Any]]]
) -> PredictRequest:
    """Named input tensors -> texts (`text`) or ids (`input_ids`, ...), for REST's columnar `inputs`
    object and gRPC's `PredictRequest.inputs` alike; `decode(tensor, "string" | "int64")` gives
    (shape, flat values) in the protocol's own way and raises RequestError for a wrong type."""
    if TEXT_INPUT in inputs and signature != IDS_SIGNATURE:
        shape, values = decode(inputs[TEXT_INPUT], "string")
        return PredictRequest(False, signature, texts=_texts(shape, values, limits))
    if "input_ids" not in inputs:
        missing = "input_ids" if signature == IDS_SIGNATURE else TEXT_INPUT
        raise RequestError(f"Missing named input: {missing} in 'inputs' object.", 400)
    ids: dict[str, np.ndarray] = {}
    for name in ID_INPUTS:
        if name in inputs:
            shape, values = decode(inputs[name], "int64")
            ids[name] = _ids(name, shape, values)
    _check_count(ids["input_ids"].shape[0], limits)
    return PredictRequest(False, signature, ids=ids)


def text_batch(texts: list[str], limits: Limits) -> list[str]:
    """A list of texts checked against the limits (count, characters), e.g. one per tf.Example."""
    return _texts([len(texts)], texts, limits)


def check_signature(name: str) -> None:
    """Refuse a signature name the model does not have (TF Serving's message)."""
    _check_signature(name)


def _row_names(first: dict[str, Any], signature: str) -> tuple[str, ...]:
    """The input names row objects must use, read from the first row: text, or ids."""
    if "input_ids" in first or signature == IDS_SIGNATURE:
        return tuple(name for name in ID_INPUTS if name in first) or ("input_ids",)
    return (TEXT_INPUT,)


def _parse_rows(instances: list[Any], signature: str, limits: Limits) -> PredictRequest:
    first = instances[0]
    objects = isinstance(first, dict) and not _is_b64(first)
    if objects:
        names = _row_names(first, signature)
    else:
        names = ("input_ids",) if _wants_ids(first, signature) else (TEXT_INPUT,)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    shapes: dict[str, tuple[int, list[int]]] = {}
    for index, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not _is_b64(element)
        if objects and not element_is_object:
            raise RequestError(f"Expecting object but got list at item {index} of input list", 400)
        if not objects and element_is_object:
            raise RequestError(f"Expecting value/list but got object at item {index} of input list", 400)
        items = element.items() if objects else ((names[0], element),)
        for name, value in items:
            where = f"Failed to process element: {index} key: {name}" if objects else f"Failed to process element: {index}"
            if name not in columns:
                raise RequestError(f"{where} of 'instances' list. Error: INVALID_ARGUMENT: "
                                   f"JSON object: does not have named input: {name}", 400)
            try:
                shape, values = decode_tensor(value, "string" if name == TEXT_INPUT else "int64")
                _same_shape(shapes, name, shape, len(values))
            except RequestError as error:
                raise RequestError(f"{where} of 'instances' list. Error: INVALID_ARGUMENT: {error}", 400) from None
            columns[name].extend(values)
        if objects and set(element) != set(names):
            raise RequestError(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_value_to_string(element)} keys must be equal to: {','.join(sorted(names))}",
                400,
            )
    batch = len(instances)
    if names == (TEXT_INPUT,):
        return PredictRequest(True, signature, texts=_texts([batch, *shapes[TEXT_INPUT][1]], columns[TEXT_INPUT], limits))
    ids = {name: _ids(name, [batch, *shapes[name][1]], columns[name]) for name in names}
    return PredictRequest(True, signature, ids=ids)


def _same_shape(shapes: dict[str, tuple[int, list[int]]], name: str, shape: list[int], size: int) -> None:
    """TF's AddInstanceItem: every row of one input has the first row's size and shape."""
    if name not in shapes:
        shapes[name] = (size, shape)
        return
    expected_size, expected_shape = shapes[name]
    if size != expected_size:
        raise RequestError(f"Expecting tensor size: {expected_size} but got: {size}", 400)
    if shape != expected_shape:
        raise RequestError(
            f"Expecting shape {_shape_string(expected_shape)} but got: {_shape_string(shape)}", 400
        )


# ---- classify / regress ----------------------------------------------------------------------------


def parse_classify(document: dict[str, Any], limits: Limits, method: str = "classify") -> list[str]:
    """`{"examples": [{"text": "..."}], "context": {...}}` -> one text per example."""
    signature_name(document)
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise RequestError(f"Example must be JSON object but got JSON {json_type(context)}", 400)
    if "examples" not in document:
        raise format_error(document, f"When method is {method}, key 'examples' is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise format_error(document, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(document, "'examples' value is an empty array")
    _check_count(len(examples), limits)
    texts: list[str] = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise RequestError(f"Example must be JSON object but got JSON {json_type(example)}", 400)
        feature = example.get(TEXT_INPUT, context.get(TEXT_INPUT))
        if feature is None:
            raise RequestError(
                f"Example {index} has no '{TEXT_INPUT}' feature; send {{\"examples\": [{{\"text\": \"...\"}}]}}", 400
            )
        if isinstance(feature, list):
            if len(feature) != 1:
                raise RequestError(
                    f"Feature '{TEXT_INPUT}' of example {index} must hold exactly one string, got {len(feature)} values",
                    400,
                )
            feature = feature[0]
        if not isinstance(feature, str) and not _is_b64(feature):
            raise RequestError(
                f"Feature: {TEXT_INPUT} has element with unexpected JSON type: {json_type(feature)}; expecting a string",
                400,
            )
        texts.append(_scalar(feature, "string"))
    return _texts([len(texts)], texts, limits)
