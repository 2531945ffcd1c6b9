"""The serving signature of an export: `signature.json`, what the model takes and gives.

Written by `bertserve export`, read by `ExportedModel` and by the server's metadata endpoint.

    {
      "format": 1,                                   # layout version of this file
      "signature_name": "serving_default",           # TF Serving's default signature name
      "method_name": "tensorflow/serving/predict",   # TF Serving's method name for predict
      "inputs": {                                    # the ONNX graph's inputs, in graph order
        "input_ids":      {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]},
        "attention_mask": {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]},
        "token_type_ids": {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]}
      },
      "outputs": {                                   # the ONNX graph's outputs
        "logits": {"dtype": "float32", "shape": [-1, 2], "dims": ["batch", "num_labels"]}
      },
      "postprocess": "softmax",                      # logits -> probabilities (done in numpy)
      "labels": ["negative", "positive"],            # class id = position
      "max_seq_length": 128,                         # longest sequence, [CLS] and [SEP] included
      "lowercase": true,                             # tokenizer lower-cases (and strips accents)
      "vocab_size": 21128                            # ids must lie in [0, vocab_size)
    }

`-1` marks a dynamic dimension (TF Serving writes it the same way in its metadata).
"""

from __future__ import annotations

from typing import Any

from bertserve.errors import ExportError
from bertserve.layout import SIGNATURE_FILE

SIGNATURE_FORMAT = 1
SIGNATURE_NAME = "serving_default"
METHOD_NAME = "tensorflow/serving/predict"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"


def build_signature(labels: list[str], max_seq_length: int, lowercase: bool, vocab_size: int) -> dict[str, Any]:
    token_input = {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]}
    return {
        "format": SIGNATURE_FORMAT,
        "signature_name": SIGNATURE_NAME,
        "method_name": METHOD_NAME,
        "inputs": {name: dict(token_input) for name in INPUT_NAMES},
        "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": [-1, len(labels)], "dims": ["batch", "num_labels"]}},
        "postprocess": "softmax",
        "labels": list(labels),
        "max_seq_length": int(max_seq_length),
        "lowercase": bool(lowercase),
        "vocab_size": int(vocab_size),
    }


def check_signature(signature: Any, where: str) -> dict[str, Any]:
    """Validate a loaded signature; raise `ExportError` naming the problem."""
    if not isinstance(signature, dict):
        raise ExportError(f"{where}: {SIGNATURE_FILE} must be a JSON object")
    if signature.get("format") != SIGNATURE_FORMAT:
        raise ExportError(f"{where}: {SIGNATURE_FILE} format {signature.get('format')!r} is not supported")
    for key in ("inputs", "outputs", "labels", "max_seq_length"):
        if key not in signature:
            raise ExportError(f"{where}: {SIGNATURE_FILE} lacks {key!r}; re-export the model")
    labels = signature["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(label, str) for label in labels):
        raise ExportError(f"{where}: {SIGNATURE_FILE} 'labels' must be a list of at least 2 strings")
    if not isinstance(signature["max_seq_length"], int) or signature["max_seq_length"] < 2:
        raise ExportError(f"{where}: {SIGNATURE_FILE} 'max_seq_length' must be an integer >= 2")
    return signature
