"""TensorFlow Serving's REST wire format, as pure functions: paths, request bodies, responses.

Nothing here does I/O or touches a model, so every rule of the contract in
`shared/TFSERVING_REST.md` has a golden test in `tests/serving/test_tfserving.py`. Error texts are
TF Serving's own (`http_rest_api_util.cc`, `util/json_tensor.cc`), so existing clients and their
log greps keep working; where TF Serving has no message (our text-in additions), ours say how to
fix the request.

    route = parse_route("POST", "/v1/models/chnsenticorp:predict")   # Route("predict", "chnsenticorp")
    document = parse_json(body)                        # {"inputs": {"input_ids": [[101, ...]]}}
    # ... json_tensor.parse_predict(document, limits) turns it into texts or ids ...
    format_predict(probabilities, row_format=False)    # {"outputs": [[0.96, 0.04]]}

Signatures a model advertises in metadata (`format_metadata`):
- `serving_default`: input `text` (DT_STRING, [-1]) -> output `probabilities` (DT_FLOAT, [-1, C]).
  It also accepts token ids (`input_ids`, optional `attention_mask` and `token_type_ids`), which is
  what the original demo client sends: a missing mask is derived as `ids != [PAD]` and missing
  segment ids are zeros.
- `ids`: inputs `input_ids`, `attention_mask`, `token_type_ids` (DT_INT64, [-1, -1]), same output;
  only ids are accepted.
Label names are not part of a TF SignatureDef, so metadata carries them beside it, in a top-level
`"bertserve"` object that TF Serving clients ignore (`:classify` answers with label names too).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

import numpy as np

from bertserve.errors import RequestError

DEFAULT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "ids"
TEXT_INPUT = "text"
ID_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "probabilities"
PREDICT_METHOD = "tensorflow/serving/predict"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"

# TF Serving's path regexes (http_rest_api_util.cc), matched against the raw (undecoded) path.
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE
)
_INT64_MAX = 2**63 - 1
# Echoed request values are cut here: TF Serving echoes the whole document, which for a 10 MB body
# would be a 10 MB error message.
MAX_ECHO_CHARS = 2000
# Our tensors have rank <= 2; anything nested deeper than this is refused before recursing into it.
MAX_TENSOR_RANK = 8


@dataclass(frozen=True)
class Route:
    """What a `/v1/...` request asks for. `action`: list, status, metadata, predict, classify, regress."""

    action: str
    model: str = ""
    version: int | None = None
    label: str | None = None


# ---- paths -------------------------------------------------------------------------------------


def parse_route(method: str, raw_path: str) -> Route:
    """Match a `/v1/...` path as TF Serving does; anything else is `Malformed request`."""
    malformed = RequestError(f"Malformed request: {method} {raw_path}", 400)
    if method == "POST":
        match = _PREDICT_PATH.fullmatch(raw_path)
        if match is None:
            raise malformed
        name, version, label, action = match.groups()
        return Route(action.lower(), _decode(name, "model name"), _version(version), _label(label))
    if method == "GET":
        match = _STATUS_PATH.fullmatch(raw_path)
        if match is None:
            raise malformed
        name, version, label, metadata = match.groups()
        if not name:
            if version is None and label is None and metadata is None:
                return Route("list")  # KServe V1's model list; TF Serving answers 400 here
            raise RequestError("Missing model name in request.", 400)
        action = "metadata" if metadata else "status"
        return Route(action, _decode(name, "model name"), _version(version), _label(label))
    raise malformed


def _decode(value: str, what: str) -> str:
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise RequestError(f"Failed to decode {what}:{value}", 400) from None


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    version = int(text)
    if version > _INT64_MAX:
        raise RequestError(f"Failed to convert version: {text} to numeric.", 400)
    return version


def _label(text: str | None) -> str | None:
    return None if text is None else _decode(text, "model version label")


# ---- JSON documents ----------------------------------------------------------------------------


def parse_json(body: bytes) -> dict[str, Any]:
    """Parse a request body as TF Serving does: one JSON object, trailing bytes ignored."""
    if not body.strip():
        raise RequestError("JSON Parse error: The document is empty", 400)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}", 400) from None
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        document, _end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        message = _rapidjson_message(text, error)
        offset = len(text[: error.pos].encode("utf-8"))
        raise RequestError(f"JSON Parse error: {message} at offset: {offset}", 400) from None
    except RecursionError:
        raise RequestError("JSON Parse error: the document is nested too deeply", 400) from None
    except ValueError:
        # Python refuses integer literals over 4,300 digits (a guard against quadratic parsing);
        # rapidjson refuses them too, in these words.
        raise RequestError("JSON Parse error: Number too big to be stored in double.", 400) from None
    if _LONE_SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(document):
        # "\ud800" parses to a str that cannot be encoded as UTF-8: the tokenizer and the JSON
        # encoder of an error echo would both fail on it later. rapidjson refuses it here too.
        raise RequestError("JSON Parse error: The surrogate pair in string is invalid.", 400)
    if not isinstance(document, dict):
        raise RequestError(f"JSON Value: {json_value_to_string(document)} Is not object", 400)
    return document


_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(document: Any) -> bool:
    """True when a string or key in `document` holds a surrogate code point (unpaired)."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
    return False


def _rapidjson_message(text: str, error: json.JSONDecodeError) -> str:
    """Python's JSON error, in the words of rapidjson's `GetParseError_En` (what TF Serving prints)."""
    message = error.msg
    if message.startswith("Expecting property name"):
        return "Missing a name for object member."
    if message.startswith("Expecting ':'"):
        return "Missing a colon after a name of object member."
    if message.startswith("Expecting ','"):
        closer = "}" if _innermost_container(text[: error.pos]) == "{" else "]"
        return f"Missing a comma or '{closer}' after an {'object member' if closer == '}' else 'array element'}."
    if message.startswith("Unterminated string"):
        return "Missing a closing quotation mark in string."
    if message.startswith("Invalid \\uXXXX"):
        return "Incorrect hex digit after \\u escape in string."
    if message.startswith("Invalid \\escape"):
        return "Invalid escape character in string."
    if message.startswith("Invalid control character"):
        return "Invalid encoding in string."
    return "Invalid value."


def _innermost_container(prefix: str) -> str:
    """'{' or '[': the innermost bracket still open at the end of `prefix` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "["


def json_value_to_string(value: Any) -> str:
    """A JSON value as TF Serving echoes it in errors (rapidjson's 4-space pretty print), cut short."""
    try:
        text = json.dumps(value, indent=4, ensure_ascii=False)
    except (RecursionError, ValueError):
        text = "<value nested too deeply to show>"
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "...(truncated)"


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def format_error(document: Any, *parts: str) -> RequestError:
    return RequestError(f"JSON Value: {json_value_to_string(document)} " + "".join(parts), 400)


def signature_name(document: dict[str, Any]) -> str:
    """The optional `signature_name`; TF Serving's error when it is not a string."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise format_error(document, "not formatted correctly. 'signature_name' key must be a string value.")
    return name


# ---- responses -----------------------------------------------------------------------------------


def float32_list(values: np.ndarray) -> list[Any]:
    """float32 numbers as the shortest decimals that round-trip (0.96, not 0.9599999785423279),
    as TF Serving writes them; nested lists keep the array's shape."""
    array = np.asarray(values, dtype=np.float32)
    flat = [float(str(value)) for value in array.ravel()]
    return np.asarray(flat, dtype=object).reshape(array.shape).tolist()


def format_predict(probabilities: np.ndarray, row_format: bool) -> dict[str, Any]:
    """One output tensor (`probabilities`): bare rows under `predictions` or `outputs`."""
    return {"predictions" if row_format else "outputs": float32_list(probabilities)}


def format_classify(probabilities: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """`{"results": [[["negative", 0.96], ["positive", 0.04]], ...]}`: label order, one list per example."""
    rows = float32_list(probabilities)
    return {"results": [[[label, score] for label, score in zip(labels, row)] for row in rows]}


def format_status(statuses: Any) -> dict[str, Any]:
    """GetModelStatus as JSON: versions as strings, states as names."""
    return {
        "model_version_status": [
            {
                "version": str(status.version),
                "state": getattr(status.state, "value", status.state),
                "status": {"error_code": status.error_code, "error_message": status.error_message},
            }
            for status in statuses
        ]
    }


def _tensor_info(name: str, dtype: str, sizes: list[int]) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in sizes], "unknown_rank": False},
        "name": f"{name}:0",
    }


def format_metadata(
    model_name: str, version: int, labels: list[str], max_seq_length: int, vocab_size: int
) -> dict[str, Any]:
    """GetModelMetadata as JSON (note TF Serving's double `signature_def`), plus our label names."""
    output = {OUTPUT_NAME: _tensor_info(OUTPUT_NAME, "DT_FLOAT", [-1, len(labels)])}
    signatures = {
        DEFAULT_SIGNATURE: {
            "inputs": {TEXT_INPUT: _tensor_info(TEXT_INPUT, "DT_STRING", [-1])},
            "outputs": output,
            "method_name": PREDICT_METHOD,
        },
        IDS_SIGNATURE: {
            "inputs": {name: _tensor_info(name, "DT_INT64", [-1, -1]) for name in ID_INPUTS},
            "outputs": output,
            "method_name": PREDICT_METHOD,
        },
    }
    return {
        "model_spec": {"name": model_name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": signatures}},
        # Ours, beside TF Serving's keys: what a client needs to read `probabilities` columns or
        # to tokenize on its side.
        "bertserve": {"labels": list(labels), "max_seq_length": max_seq_length, "vocab_size": vocab_size},
    }


def regress_error() -> RequestError:
    """TF Serving's answer to `:regress` on a model without a regression signature, plus the fix."""
    return RequestError(
        f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: {PREDICT_METHOD} "
        "(this model is a classifier: use :classify or :predict)",
        400,
    )
