"""A small synchronous client for the Open Inference Protocol (KServe V2) over REST.

The same methods as the TF Serving REST client it extends (`bertserve.client.BertServeClient`), so
`bertserve online/predict --protocol v2` switch protocol with one flag; it works against
`bertserve serve` and, for texts in, against any V2 server whose model takes a BYTES `text` input:

    from bertserve.serving.v2.client import V2Client

    with V2Client("http://127.0.0.1:8501", model="chnsenticorp") as client:
        client.labels()                        # metadata's parameters.labels, or "0".."C-1"
        client.predict_texts(["很好", "太差了"])  # BYTES "text" [2] -> FP32 "probabilities" [2, C]
        client.predict_ids([[101, ..., 0]])    # INT64 "input_ids" [1, 128]

Every failure is a `ClientError` with a one-line message (the server's `{"error": ...}`).
"""

from __future__ import annotations

from typing import Any, Sequence

from bertserve.client import BertServeClient, _check_texts, _short
from bertserve.errors import ClientError

PROBABILITIES = "probabilities"  # serving/v2/model_io.py's output name


class V2Client(BertServeClient):
    """One model on one server over V2 REST; `version` pins a version (/versions/V)."""

    @property
    def model_path(self) -> str:
        path = f"/v2/models/{self.model}"
        return path if self.version is None else f"{path}/versions/{self.version}"

    def models(self) -> list[str]:
        """Triton's repository index when the server has it, else TF Serving's model list (bertserve)."""
        try:
            index = self._request("POST", "/v2/repository/index", {})
            return [str(entry["name"]) for entry in index if isinstance(entry, dict) and "name" in entry]
        except ClientError as error:
            if error.status not in (400, 404, 405):
                raise
        return super().models()

    def status(self) -> dict[str, Any]:
        """`GET .../ready`: `{"name", "ready"}`."""
        return self._request("GET", f"{self.model_path}/ready")

    def metadata(self) -> dict[str, Any]:
        """`GET /v2/models/NAME`: inputs, outputs, versions (and bertserve's `parameters.labels`)."""
        return self._request("GET", self.model_path)

    def labels(self) -> list[str]:
        if self._labels is None:
            self._labels = labels_from_v2_metadata(self.metadata())
        return list(self._labels)

    def predict_texts(self, texts: Sequence[str]) -> list[list[float]]:
        texts = _check_texts(texts)
        return self._infer({"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}, len(texts))

    def predict_ids(self, input_ids: Sequence[Sequence[int]]) -> list[list[float]]:
        rows = [[int(token) for token in row] for row in input_ids]
        if not rows or len({len(row) for row in rows}) != 1:
            raise ClientError("predict_ids needs at least one row of token ids, all of the same length")
        flat = [token for row in rows for token in row]
        tensor = {"name": "input_ids", "datatype": "INT64", "shape": [len(rows), len(rows[0])], "data": flat}
        return self._infer(tensor, len(rows))

    def classify(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        labels = self.labels()
        return [list(zip(labels, row)) for row in self.predict_texts(texts)]

    def _infer(self, tensor: dict, rows: int) -> list[list[float]]:
        body = self._request("POST", f"{self.model_path}/infer", {"inputs": [tensor], "outputs": [{"name": PROBABILITIES}]})
        outputs = body.get("outputs") if isinstance(body, dict) else None
        output = next((o for o in outputs or [] if isinstance(o, dict) and o.get("name") == PROBABILITIES), None)
        try:
            shape, data = [int(d) for d in output["shape"]], [float(v) for v in output["data"]]
            if len(shape) != 2 or shape[0] != rows or shape[0] * shape[1] != len(data):
                raise ValueError(f"shape {shape} for {len(data)} values and {rows} rows")
        except (TypeError, KeyError, ValueError) as error:
            raise ClientError(f"{self.url}: expected FP32 {PROBABILITIES} [{rows}, C] in {_short(body)} ({error})") from None
        return [data[row * shape[1]:(row + 1) * shape[1]] for row in range(rows)]


def labels_from_v2_metadata(metadata: Any) -> list[str]:
    """bertserve's `parameters.labels`; else "0".."C-1" from the probabilities output's shape."""
    try:
        labels = (metadata.get("parameters") or {}).get("labels")
        if isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels):
            return list(labels)
        output = next(o for o in metadata["outputs"] if o["name"] == PROBABILITIES)
        classes = int(output["shape"][-1])
    except (AttributeError, KeyError, TypeError, ValueError, StopIteration, IndexError):
        raise ClientError(f"cannot tell the labels from the V2 model metadata {_short(metadata)}") from None
    if classes < 1:
        raise ClientError(f"V2 model metadata gives {classes} classes; cannot name the labels")
    return [str(index) for index in range(classes)]
