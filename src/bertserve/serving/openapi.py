"""The documented `/v1/...` routes and their JSON schemas, for FastAPI's `/docs` and `/openapi.json`.

`serving/app.py` registers one FastAPI route per entry of `ROUTES` so the OpenAPI document lists
every path TF Serving answers, with request and response schemas accurate enough to fuzz
(e.g. `schemathesis run http://127.0.0.1:8501/openapi.json`). The routes only document: every
`/v1/...` request, documented or not, is dispatched by `tfserving.parse_route` on its raw path
(case-insensitively, as TF Serving does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_STRING = {"type": "string"}
_TEXT_OR_B64 = {
    "oneOf": [_STRING, {"type": "object", "properties": {"b64": _STRING}, "required": ["b64"], "additionalProperties": False}]
}
_IDS = {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}}
_ID_ROW = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_PROBABILITIES = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}

ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "what went wrong and how to fix it"}},
    "required": ["error"],
}

PREDICT_REQUEST = {
    "type": "object",
    "description": "Row format (`instances`) or columnar format (`inputs`), exactly one of them. Texts are "
    "tokenized by the server; token ids (the original demo's format) are accepted too.",
    "properties": {
        "signature_name": {"type": "string", "enum": ["", "serving_default", "ids"]},
        "instances": {
            "type": "array",
            "minItems": 1,
            "items": {
                "oneOf": [
                    _TEXT_OR_B64,
                    _ID_ROW,
                    {"type": "object", "properties": {"text": _TEXT_OR_B64}, "required": ["text"]},
                    {
                        "type": "object",
                        "properties": {"input_ids": _ID_ROW, "attention_mask": _ID_ROW, "token_type_ids": _ID_ROW},
                        "required": ["input_ids"],
                    },
                ]
            },
        },
        "inputs": {
            "oneOf": [
                {"type": "array", "items": _TEXT_OR_B64, "minItems": 1},
                _IDS,
                {"type": "object", "properties": {"text": {"type": "array", "items": _TEXT_OR_B64}}, "required": ["text"]},
                {
                    "type": "object",
                    "properties": {"input_ids": _IDS, "attention_mask": _IDS, "token_type_ids": _IDS},
                    "required": ["input_ids"],
                },
            ]
        },
    },
    "example": {"instances": ["这家酒店很好", "房间太差了"]},
}

PREDICT_RESPONSE = {
    "type": "object",
    "description": "`predictions` for a row request, `outputs` for a columnar one: one probability per label "
    "(label names: metadata's `bertserve.labels`).",
    "properties": {"predictions": _PROBABILITIES, "outputs": _PROBABILITIES},
    "example": {"predictions": [[0.04, 0.96], [0.91, 0.09]]},
}

CLASSIFY_REQUEST = {
    "type": "object",
    "properties": {
        "signature_name": _STRING,
        "context": {"type": "object", "description": "features shared by every example, e.g. a default `text`"},
        "examples": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"text": {"oneOf": [_TEXT_OR_B64, {"type": "array", "items": _TEXT_OR_B64, "maxItems": 1}]}},
            },
        },
    },
    "required": ["examples"],
    "example": {"examples": [{"text": "这家酒店很好"}]},
}

CLASSIFY_RESPONSE = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "array", "prefixItems": [_STRING, {"type": "number"}]}},
        }
    },
    "example": {"results": [[["negative", 0.04], ["positive", 0.96]]]},
}

STATUS_RESPONSE = {
    "type": "object",
    "properties": {
        "model_version_status": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": "string", "description": "int64 as a string"},
                    "state": {"type": "string", "enum": ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
                    "status": {
                        "type": "object",
                        "properties": {"error_code": _STRING, "error_message": _STRING},
                    },
                },
            },
        }
    },
}

METADATA_RESPONSE = {
    "type": "object",
    "description": "TF Serving's GetModelMetadata (note the double `signature_def`), plus `bertserve` "
    "(label names, max_seq_length, vocab_size).",
    "properties": {
        "model_spec": {
            "type": "object",
            "properties": {"name": _STRING, "signature_name": _STRING, "version": _STRING},
        },
        "metadata": {"type": "object", "properties": {"signature_def": {"type": "object"}}},
        "bertserve": {
            "type": "object",
            "properties": {
                "labels": {"type": "array", "items": _STRING},
                "max_seq_length": {"type": "integer"},
                "vocab_size": {"type": "integer"},
            },
        },
    },
}

MODELS_RESPONSE = {
    "type": "object",
    "properties": {"models": {"type": "array", "items": _STRING}},
    "example": {"models": ["chnsenticorp"]},
}


@dataclass(frozen=True)
class DocumentedRoute:
    method: str
    path: str
    summary: str
    response: dict[str, Any]
    request: dict[str, Any] | None = None


_SPECS = ("", "/versions/{version}", "/labels/{label}")
_SPEC_WORDS = {"": "latest version", "/versions/{version}": "one version", "/labels/{label}": "a labelled version"}

ROUTES: tuple[DocumentedRoute, ...] = (
    DocumentedRoute("GET", "/v1/models", "List the served models (KServe V1)", MODELS_RESPONSE),
    *(DocumentedRoute("GET", f"/v1/models/{{model_name}}{spec}", f"Model status ({_SPEC_WORDS[spec]})", STATUS_RESPONSE)
      for spec in _SPECS),
    *(DocumentedRoute("GET", f"/v1/models/{{model_name}}{spec}/metadata", f"Signature metadata ({_SPEC_WORDS[spec]})",
                      METADATA_RESPONSE) for spec in _SPECS),
    *(DocumentedRoute("POST", f"/v1/models/{{model_name}}{spec}:predict", f"Predict ({_SPEC_WORDS[spec]})",
                      PREDICT_RESPONSE, PREDICT_REQUEST) for spec in _SPECS),
    *(DocumentedRoute("POST", f"/v1/models/{{model_name}}{spec}:classify", f"Classify ({_SPEC_WORDS[spec]})",
                      CLASSIFY_RESPONSE, CLASSIFY_REQUEST) for spec in _SPECS),
    *(DocumentedRoute("POST", f"/v1/models/{{model_name}}{spec}:regress",
                      f"Regress ({_SPEC_WORDS[spec]}): always 400, these models are classifiers", ERROR,
                      CLASSIFY_REQUEST) for spec in _SPECS),
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
    for code, text in (
        (400, "bad request, URL or JSON (TF Serving's texts)"),
        (404, "unknown model or version, or a version not AVAILABLE"),
        (413, "body larger than --max_body_bytes"),
        (415, "Content-Encoding other than gzip/identity"),
        (503, "batch queue full or server draining"),
        (504, "deadline exceeded"),
    )
}


def openapi_extra(route: DocumentedRoute) -> dict[str, Any]:
    """Path parameters and request body for one route (the endpoint itself reads the raw request)."""
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in (
            ("model_name", {"type": "string", "pattern": "^[^/:]+$"}),
            ("version", {"type": "integer", "minimum": 0}),
            ("label", {"type": "string", "pattern": "^[^/:]+$"}),
        )
        if "{" + name + "}" in route.path
    ]
    extra: dict[str, Any] = {"parameters": parameters}
    if route.request is not None:
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.request}}}
    return extra


# ---- the Open Inference Protocol (KServe V2): serving/v2/rest.py registers one route per entry -----

_V2_TENSOR = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "datatype": {"type": "string", "enum": ["BYTES", "INT64", "INT32", "FP32"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
}
V2_INFER_REQUEST = {
    "type": "object",
    "description": "Inputs `text` (BYTES [batch]) or `input_ids` (INT64 [batch, sequence], with optional "
    "`attention_mask`, `token_type_ids`); `outputs` picks among `probabilities` and `label`. Triton's binary "
    "tensor data extension is accepted (header Inference-Header-Content-Length).",
    "properties": {
        "id": _STRING,
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {**_V2_TENSOR, "properties": {**_V2_TENSOR["properties"], "data": {"type": "array"}},
                      "required": ["name", "datatype", "shape"]},
        },
        "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": _STRING}, "required": ["name"]}},
    },
    "required": ["inputs"],
    "example": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["这家酒店很好", "房间太差了"]}]},
}
V2_INFER_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": _STRING, "model_version": _STRING, "id": _STRING,
        "outputs": {"type": "array", "items": {**_V2_TENSOR, "properties": {**_V2_TENSOR["properties"], "data": {"type": "array"}}}},
    },
    "example": {"model_name": "chnsenticorp", "model_version": "1", "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.04, 0.96]},
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["positive"]}]},
}
V2_MODEL_METADATA = {
    "type": "object",
    "properties": {
        "name": _STRING, "versions": {"type": "array", "items": _STRING}, "platform": _STRING,
        "inputs": {"type": "array", "items": _V2_TENSOR}, "outputs": {"type": "array", "items": _V2_TENSOR},
        "parameters": {"type": "object", "description": "bertserve's addition: `labels`, `max_seq_length`"},
    },
}
_V2_SERVER_METADATA = {
    "type": "object",
    "properties": {"name": _STRING, "version": _STRING, "extensions": {"type": "array", "items": _STRING}},
}


@dataclass(frozen=True)
class V2Route(DocumentedRoute):
    name: str = ""  # which endpoint of serving/v2/rest.py answers it


_V2_SPECS = {"": "latest version", "/versions/{version}": "one version"}
V2_ROUTES: tuple[V2Route, ...] = (
    V2Route("GET", "/v2", "V2 server metadata", _V2_SERVER_METADATA, name="server_metadata"),
    V2Route("GET", "/v2/health/live", "V2 liveness: {\"live\": true}", {"type": "object"}, name="live"),
    V2Route("GET", "/v2/health/ready", "V2 readiness: {\"ready\": true}, 503 when not", {"type": "object"}, name="ready"),
    *(V2Route("GET", f"/v2/models/{{model_name}}{spec}", f"V2 model metadata ({words})", V2_MODEL_METADATA,
              name="model_metadata") for spec, words in _V2_SPECS.items()),
    *(V2Route("GET", f"/v2/models/{{model_name}}{spec}/ready", f"V2 model readiness ({words})", {"type": "object"},
              name="model_ready") for spec, words in _V2_SPECS.items()),
    *(V2Route("POST", f"/v2/models/{{model_name}}{spec}/infer", f"V2 inference ({words})", V2_INFER_RESPONSE,
              V2_INFER_REQUEST, name="infer") for spec, words in _V2_SPECS.items()),
)
V2_ERROR_RESPONSES = {code: ERROR_RESPONSES[code] for code in (400, 404, 413, 503, 504)}
