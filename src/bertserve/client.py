"""A small synchronous Python client for a TensorFlow-Serving-compatible REST server.

It speaks the TF Serving REST contract (see TFSERVING_REST.md), so it works against `bertserve
serve` and, for the id-based calls, against a real `tensorflow/serving` too:

    from bertserve.client import BertServeClient

    with BertServeClient("http://127.0.0.1:8501", model="chnsenticorp") as client:
        client.labels()                        # ["negative", "positive"]
        client.predict_texts(["很好", "太差了"])  # [[0.04, 0.96], [0.91, 0.09]]
        client.classify(["很好"])                # [[("negative", 0.04), ("positive", 0.96)]]

Every failure is a `bertserve.errors.ClientError` with a one-line message: a server that is down or
slow (`status` None), or the server's own `{"error": ...}` message and HTTP status.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

import httpx

from bertserve.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8501"
# TF Serving's own request deadline is 30 s; waiting a little longer lets its 504 reach us.
DEFAULT_TIMEOUT_SECONDS = 35.0
# Idle connections are dropped well before the server closes them (`bertserve serve`'s keep-alive:
# 5 s), so the client never reuses one at the instant the server's close is on its way.
KEEPALIVE_EXPIRY_SECONDS = 2.0


def quiet_http_logs() -> None:
    """For the client commands: httpx logs every request at INFO, which would put a log line
    between every two answers of `bertserve online`. Keep them only with --log-level DEBUG."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


class BertServeClient:
    """One model on one server. `transport` is for tests (e.g. `httpx.MockTransport`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        model: str = "default",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        version: int | str | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.version = None if version is None else str(version)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS))
        self._labels: list[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "BertServeClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------------

    @property
    def model_path(self) -> str:
        """`/v1/models/NAME` or `/v1/models/NAME/versions/V` when a version is pinned."""
        path = f"/v1/models/{self.model}"
        return path if self.version is None else f"{path}/versions/{self.version}"

    def models(self) -> list[str]:
        """Model names the server holds (`GET /v1/models`, KServe V1's list)."""
        body = self._request("GET", "/v1/models")
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise ClientError(f"{self.url}/v1/models: expected {{\"models\": [...]}}, got {_short(body)}")
        # KServe V1 answers names; tolerate objects with a "name" too.
        return [m["name"] if isinstance(m, dict) and "name" in m else str(m) for m in models]

    def use_the_only_model(self) -> str:
        """When no model was named: pick the server's only model, or say which ones there are."""
        names = self.models()
        if len(names) != 1:
            raise ClientError(f"{self.url} serves {len(names)} models ({', '.join(names) or 'none'}); pick one with --model")
        self.model = names[0]
        return self.model

    def status(self) -> dict[str, Any]:
        """`GET /v1/models/NAME`: `{"model_version_status": [{"version", "state", "status"}]}`."""
        return self._request("GET", self.model_path)

    def metadata(self) -> dict[str, Any]:
        """`GET /v1/models/NAME/metadata`: the signature (inputs, outputs, label names)."""
        return self._request("GET", f"{self.model_path}/metadata")

    def labels(self) -> list[str]:
        """Label names from the metadata; "0", "1", ... when the server does not give names."""
        if self._labels is None:
            self._labels = labels_from_metadata(self.metadata())
        return list(self._labels)

    def predict_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Class probabilities for each text (text in; the server tokenizes)."""
        texts = _check_texts(texts)
        body = self._request("POST", f"{self.model_path}:predict", {"instances": texts})
        predictions = body.get("predictions") if isinstance(body, dict) else None
        return _probability_rows(predictions, len(texts), "predictions")

    def predict_ids(self, input_ids: Sequence[Sequence[int]]) -> list[list[float]]:
        """Class probabilities for token ids tokenized on the client, sent exactly as the original
        demo's `predict_online.py` did: `{"inputs": {"input_ids": [[101, ..., 102, 0, ...]]}}`."""
        rows = [[int(token) for token in row] for row in input_ids]
        if not rows:
            raise ClientError("predict_ids needs at least one row of token ids")
        body = self._request("POST", f"{self.model_path}:predict", {"inputs": {"input_ids": rows}})
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if isinstance(outputs, dict):
            # Several named outputs: the probabilities are the ones we want.
            outputs = outputs.get("probabilities", next(iter(outputs.values()), None))
        return _probability_rows(outputs, len(rows), "outputs")

    def classify(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """`:classify`: for each text, `[(label, score), ...]` in the server's order."""
        texts = _check_texts(texts)
        body = self._request("POST", f"{self.model_path}:classify", {"examples": [{"text": t} for t in texts]})
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(texts):
            raise ClientError(f"{self.url}: expected {len(texts)} classify results, got {_short(body)}")
        try:
            return [[(str(label), float(score)) for label, score in result] for result in results]
        except (TypeError, ValueError) as error:
            raise ClientError(f"{self.url}: malformed classify results {_short(results)}: {error}") from None

    # -- transport -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        """One HTTP call; every failure becomes a ClientError whose message says what to do."""
        where = f"{self.url}{path}"
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.ConnectError as error:
            reason = _connect_reason(error)
            raise ClientError(
                f"cannot reach the server at {self.url}: {reason} - is `bertserve serve` running "
                f"and is --url right?"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(
                f"no answer from {where} within {self.timeout:g}s - the server is busy or stuck; "
                f"retry or raise --timeout"
            ) from None
        except httpx.HTTPError as error:
            raise ClientError(f"request to {where} failed: {error}") from None
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else None
            if not isinstance(message, str):
                message = response.text.strip()[:200] or response.reason_phrase
            raise ClientError(f"{method} {where} -> {response.status_code}: {message}", status=response.status_code)
        if body is None:
            raise ClientError(
                f"{method} {where} answered {response.status_code} without JSON "
                f"({_short(response.text)}); is this a TF Serving REST port?",
                status=response.status_code,
            )
        return body


def labels_from_metadata(metadata: Any) -> list[str]:
    """Label names carried in a metadata answer; "0".."C-1" if there are none.

    bertserve puts names in the signature (a `labels` list); plain TF Serving has none, so we count
    classes from the probabilities output's last dimension instead."""
    found = _find_labels(metadata)
    if found is not None:
        return found
    try:
        signature = metadata["metadata"]["signature_def"]["signature_def"]
        signature = signature.get("serving_default") or next(iter(signature.values()))
        outputs = signature["outputs"]
        output = outputs.get("probabilities") or next(iter(outputs.values()))
        classes = int(output["tensor_shape"]["dim"][-1]["size"])
    except (KeyError, TypeError, ValueError, StopIteration, IndexError, AttributeError):
        raise ClientError(f"cannot tell the labels from the model metadata {_short(metadata)}") from None
    if classes < 1:
        raise ClientError(f"model metadata gives {classes} classes; cannot name the labels")
    return [str(index) for index in range(classes)]


def _find_labels(value: Any, depth: int = 0) -> list[str] | None:
    """The first `"labels": [str, ...]` anywhere in the metadata (breadth first, bounded)."""
    if depth > 8:
        return None
    if isinstance(value, dict):
        labels = value.get("labels")
        if isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels):
            return list(labels)
        for child in value.values():
            found = _find_labels(child, depth + 1)
            if found is not None:
                return found
    return None


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        # A bare string would be sent as one instance per character; almost surely a mistake.
        raise ClientError("pass a list of texts, e.g. predict_texts([\"很好\"]), not a bare string")
    texts = list(texts)
    if not texts:
        raise ClientError("need at least one text")
    bad = [type(text).__name__ for text in texts if not isinstance(text, str)]
    if bad:
        raise ClientError(f"every text must be a str; got {bad[0]}")
    return texts


def _probability_rows(rows: Any, expected: int, key: str) -> list[list[float]]:
    if not isinstance(rows, list) or len(rows) != expected:
        raise ClientError(f"expected {key} for {expected} instance(s), got {_short(rows)}")
    try:
        return [[float(p) for p in row] for row in rows]
    except (TypeError, ValueError):
        raise ClientError(f"expected {key} to be lists of numbers, got {_short(rows)}") from None


def _connect_reason(error: httpx.ConnectError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    return str(error) or "connection failed"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
