"""What a bertserve model takes and gives over the Open Inference Protocol, for REST and gRPC alike.

Inputs (one request uses either `text` or `input_ids`):
    text            BYTES  [-1]       UTF-8 texts; the server tokenizes ([-1, 1] is accepted too)
    input_ids       INT64  [-1, -1]   token ids (INT32 accepted); rows may be padded with [PAD]
    attention_mask  INT64  [-1, -1]   optional; default ids != [PAD]
    token_type_ids  INT64  [-1, -1]   optional; default 0
Outputs (all unless the request names some):
    probabilities   FP32   [-1, C]    class probabilities, C = number of labels
    label           BYTES  [-1]       the most probable label's name

    inputs = model_inputs(tensors, servable.model, limits)     # texts or an Encoded batch
    probabilities = await run(servable, inputs, deadline)      # through the servable's one batcher
    outputs = model_outputs(probabilities, labels, ["label"])  # the requested output tensors
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bertserve.errors import RequestError
from bertserve.tokenizer import Encoded
from bertserve.serving.v2.tensors import BYTES, Tensor

TEXT = "text"
INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS = "input_ids", "attention_mask", "token_type_ids"
ID_INPUTS = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)
PROBABILITIES, LABEL = "probabilities", "label"
OUTPUTS = (PROBABILITIES, LABEL)
ID_DATATYPES = ("INT64", "INT32")
EXTENSIONS = ["binary_tensor_data"]  # Triton's binary tensor data extension (REST); gRPC raw contents


@dataclass(frozen=True)
class ModelInputs:
    """A checked request: texts, or a token-id batch (checked again against the vocabulary by the servable)."""

    texts: list[str] | None = None
    encoded: Encoded | None = None

    @property
    def rows(self) -> int:
        return len(self.texts) if self.texts is not None else int(self.encoded.input_ids.shape[0])


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "bertserve", "version": version, "extensions": list(EXTENSIONS)}


def platform_of(model: Any) -> str:
    """Triton's platform names for the engine that runs the version ("onnxruntime_onnx", "openvino")."""
    kind = getattr(getattr(model, "engine", None), "kind", "")
    return "onnxruntime_onnx" if kind == "onnxruntime" else (kind or "bertserve")


def model_metadata(name: str, versions: Sequence[int], model: Any) -> dict[str, Any]:
    """The metadata a client builds its requests from; `parameters` adds the label names."""
    return {
        "name": name,
        "versions": [str(version) for version in versions],
        "platform": platform_of(model),
        "inputs": [
            {"name": TEXT, "datatype": BYTES, "shape": [-1]},
            *({"name": input_name, "datatype": "INT64", "shape": [-1, -1]} for input_name in ID_INPUTS),
        ],
        "outputs": [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(model.labels)]},
            {"name": LABEL, "datatype": BYTES, "shape": [-1]},
        ],
        "parameters": {"labels": list(model.labels), "max_seq_length": int(model.max_seq_length)},
    }


def model_inputs(tensors: Sequence[Tensor], pad_id: int, max_instances: int, max_text_chars: int) -> ModelInputs:
    """The texts or token ids of a request, with a 400 for every way the inputs can be wrong."""
    by_name: dict[str, Tensor] = {}
    for tensor in tensors:
        if tensor.name in by_name:
            raise RequestError(f"input {tensor.name} is given twice")
        if tensor.name not in (TEXT, *ID_INPUTS):
            raise RequestError(
                f"unknown input {tensor.name}; this model takes {TEXT} (BYTES) or {', '.join(ID_INPUTS)} (INT64)"
            )
        by_name[tensor.name] = tensor
    if TEXT in by_name and INPUT_IDS in by_name:
        raise RequestError(f"give either {TEXT} or {INPUT_IDS}, not both")
    if TEXT in by_name:
        if set(by_name) != {TEXT}:
            raise RequestError(f"{ATTENTION_MASK} and {TOKEN_TYPE_IDS} go with {INPUT_IDS}, not with {TEXT}")
        return ModelInputs(texts=_texts(by_name[TEXT], max_instances, max_text_chars))
    if INPUT_IDS not in by_name:
        raise RequestError(f"no input: send {TEXT} (BYTES texts) or {INPUT_IDS} (INT64 token ids)")
    return ModelInputs(encoded=_encoded(by_name, pad_id, max_instances))


def _texts(tensor: Tensor, max_instances: int, max_text_chars: int) -> list[str]:
    if tensor.datatype != BYTES:
        raise RequestError(f"input {TEXT} must be BYTES, got {tensor.datatype}")
    if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
        raise RequestError(f"input {TEXT} must have shape [batch] or [batch, 1], got {list(tensor.shape)}")
    _check_rows(tensor, max_instances)
    texts = []
    for index, item in enumerate(tensor.data.reshape(-1)):
        try:
            text = bytes(item).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"input {TEXT}: element {index} is not valid UTF-8") from None
        if len(text) > max_text_chars:
            raise RequestError(
                f"input {TEXT}: element {index} has {len(text)} characters, more than the limit of {max_text_chars}"
            )
        texts.append(text)
    return texts


def _encoded(by_name: dict[str, Tensor], pad_id: int, max_instances: int) -> Encoded:
    ids = by_name[INPUT_IDS]
    for tensor in by_name.values():
        if tensor.datatype not in ID_DATATYPES:
            raise RequestError(f"input {tensor.name} must be INT64 or INT32, got {tensor.datatype}")
        if len(tensor.shape) != 2:
            raise RequestError(f"input {tensor.name} must have shape [batch, sequence], got {list(tensor.shape)}")
        if tensor.shape != ids.shape:
            raise RequestError(
                f"input {tensor.name} has shape {list(tensor.shape)}, expected {list(ids.shape)} like {INPUT_IDS}"
            )
    _check_rows(ids, max_instances)
    input_ids = ids.data.astype(np.int64)
    if ATTENTION_MASK in by_name:
        mask = by_name[ATTENTION_MASK].data.astype(np.int64)
    else:
        mask = (input_ids != pad_id).astype(np.int64)
    types = by_name[TOKEN_TYPE_IDS].data.astype(np.int64) if TOKEN_TYPE_IDS in by_name else np.zeros_like(input_ids)
    return Encoded(input_ids=input_ids, attention_mask=mask, token_type_ids=types)


def _check_rows(tensor: Tensor, max_instances: int) -> None:
    rows = tensor.shape[0]
    if rows == 0:
        raise RequestError(f"input {tensor.name} has no rows; send at least one")
    if rows > max_instances:
        raise RequestError(f"input {tensor.name} has {rows} rows, more than the limit of {max_instances} per request")


async def run(servable: Any, inputs: ModelInputs, deadline: float | None) -> np.ndarray:
    """Probabilities through the servable's batcher (the one inference path of the server)."""
    if inputs.texts is not None:
        return await servable.predict_texts(inputs.texts, deadline)
    return await servable.predict_encoded(inputs.encoded, deadline)


def check_requested(names: Sequence[str]) -> list[str]:
    """The requested output names (all when none), each known, in the order asked."""
    for name in names:
        if name not in OUTPUTS:
            raise RequestError(f"unknown output {name}; this model gives {', '.join(OUTPUTS)}")
    if len(set(names)) != len(names):
        raise RequestError("an output is requested twice")
    return list(names) if names else list(OUTPUTS)


def model_outputs(probabilities: np.ndarray, labels: Sequence[str], requested: Sequence[str]) -> list[Tensor]:
    probabilities = np.asarray(probabilities, dtype=np.float32)
    outputs = []
    for name in requested:
        if name == PROBABILITIES:
            outputs.append(Tensor(PROBABILITIES, "FP32", tuple(probabilities.shape), probabilities))
        else:
            names = np.empty(probabilities.shape[0], dtype=object)
            names[:] = [labels[int(index)].encode("utf-8") for index in probabilities.argmax(axis=1)]
            outputs.append(Tensor(LABEL, BYTES, (probabilities.shape[0],), names))
    return outputs
