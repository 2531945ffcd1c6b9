"""A small synchronous Python client for TF Serving's gRPC API (bertserve's or TensorFlow Serving's).

The same methods as the REST client (`bertserve.client.BertServeClient`), so `online`, `predict`
and `bench` switch protocol with `--protocol grpc`:

    from bertserve.serving.grpc.client import GrpcClient

    with GrpcClient("127.0.0.1:8500", model="chnsenticorp") as client:
        client.labels()                        # ["negative", "positive"] (metadata_field "labels")
        client.predict_texts(["很好", "太差了"])  # Predict with a DT_STRING "text" tensor
        client.predict_ids([[101, ..., 0]])    # Predict with DT_INT64 "input_ids" [batch, length]
        client.classify(["很好"])                # Classify: [[("negative", 0.04), ("positive", 0.96)]]

Every failure is a `ClientError` with a one-line message; `status` is None when the server could
not be reached or did not answer in time, else the HTTP status matching the gRPC code (404 for
NOT_FOUND, 400 for INVALID_ARGUMENT, ...), as the REST client reports it.
"""

from __future__ import annotations

from typing import Any, Sequence

import grpc

from bertserve.client import _check_texts  # the REST client's argument check, shared
from bertserve.errors import CODE_OF_STATUS, ClientError
from bertserve.serving.grpc import tensors
from bertserve.serving.grpc.protos import load

serving, serving_grpc = load("tensorflow_serving")
core, _ = load("tensorflow_core")

DEFAULT_TARGET = "127.0.0.1:8500"
DEFAULT_TIMEOUT_SECONDS = 35.0
# The HTTP status a REST answer carries for each gRPC code (errors.py's table; 504 over 408).
_STATUS_OF_CODE = {code: status for status, code in sorted(CODE_OF_STATUS.items())}
PROTOCOLS = ("rest", "grpc", "v2")


def connect(protocol: str, url: str | None, model: str, timeout: float) -> Any:
    """The client for `protocol` ("rest": BertServeClient, "grpc": GrpcClient, "v2": the Open
    Inference Protocol's REST V2Client); `url` None: its default."""
    if protocol == "grpc":
        return GrpcClient(url or DEFAULT_TARGET, model=model, timeout=timeout)
    from bertserve.client import DEFAULT_URL, BertServeClient

    if protocol == "v2":
        from bertserve.serving.v2.client import V2Client

        return V2Client(url or DEFAULT_URL, model=model, timeout=timeout)

    return BertServeClient(url or DEFAULT_URL, model=model, timeout=timeout)


def target_of(url: str) -> str:
    """`host:port` from what a user may pass as --url: `127.0.0.1:8500`, `grpc://host:port`, `http://host:port`."""
    for prefix in ("grpc://", "http://", "https://"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    return url.rstrip("/")


class GrpcClient:
    """One model on one server over gRPC; `version` pins a version (ModelSpec.version)."""

    def __init__(self, url: str = DEFAULT_TARGET, model: str = "", timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 version: int | str | None = None):
        self.url = target_of(url)
        self.model = model
        self.timeout = timeout
        self.version = None if version is None else int(version)
        self._channel = grpc.insecure_channel(self.url)
        self._prediction = serving_grpc.PredictionServiceStub(self._channel)
        self._models = serving_grpc.ModelServiceStub(self._channel)
        self._labels: list[str] | None = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GrpcClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def use_the_only_model(self) -> str:
        raise ClientError("TF Serving's gRPC API cannot list models: name the model with --model")

    def _spec(self, target: Any) -> None:
        if not self.model:
            self.use_the_only_model()
        target.name = self.model
        if self.version is not None:
            target.version.value = self.version

    # -- calls -----------------------------------------------------------------------------------

    def status(self) -> list[tuple[int, str]]:
        """(version, state name) for every version (ModelService.GetModelStatus)."""
        request = serving.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._models, "GetModelStatus", request)
        return [(s.version, serving.ModelVersionStatus.State.Name(s.state)) for s in response.model_version_status]

    def labels(self) -> list[str]:
        """Label names from GetModelMetadata's "labels" field (bertserve's; TF Serving has none)."""
        if self._labels is None:
            request = serving.GetModelMetadataRequest()
            self._spec(request.model_spec)
            request.metadata_field.append("labels")
            response = self._call(self._prediction, "GetModelMetadata", request)
            names = core.TensorProto()
            if "labels" not in response.metadata or not response.metadata["labels"].Unpack(names):
                raise ClientError(f"{self.url} gave no label names for model {self.model}; is it a bertserve server?")
            self._labels = [label.decode("utf-8") for label in names.string_val]
        return list(self._labels)

    def predict_texts(self, texts: Sequence[str]) -> list[list[float]]:
        texts = _check_texts(texts)
        return self._predict("text", tensors.string_tensor(texts), len(texts))

    def predict_ids(self, input_ids: Sequence[Sequence[int]]) -> list[list[float]]:
        rows = [[int(token) for token in row] for row in input_ids]
        if not rows:
            raise ClientError("predict_ids needs at least one row of token ids")
        return self._predict("input_ids", tensors.int_tensor(rows), len(rows))

    def _predict(self, name: str, tensor: Any, count: int) -> list[list[float]]:
        request = serving.PredictRequest()
        self._spec(request.model_spec)
        request.inputs[name].CopyFrom(tensor)
        response = self._call(self._prediction, "Predict", request)
        output = response.outputs.get("probabilities")
        shape = [dim.size for dim in output.tensor_shape.dim] if output is not None else []
        if output is None or len(shape) != 2 or shape[0] != count or len(output.float_val) != shape[0] * shape[1]:
            raise ClientError(f"{self.url}: expected a [{count}, labels] DT_FLOAT output 'probabilities', got {list(response.outputs)}")
        values = list(output.float_val)
        return [values[row * shape[1]:(row + 1) * shape[1]] for row in range(count)]

    def classify(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        texts = _check_texts(texts)
        request = serving.ClassificationRequest()
        self._spec(request.model_spec)
        for text in texts:
            request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
        response = self._call(self._prediction, "Classify", request)
        results = response.result.classifications
        if len(results) != len(texts):
            raise ClientError(f"{self.url}: expected {len(texts)} classify results, got {len(results)}")
        return [[(c.label, float(c.score)) for c in result.classes] for result in results]

    def _call(self, stub: Any, method: str, request: Any) -> Any:
        """One call; every failure becomes a ClientError whose message says what to do."""
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "refused" in details.lower()):
                raise ClientError(
                    f"cannot reach the gRPC server at {self.url}: {details} - is `bertserve serve` running "
                    "with --port, and is --url host:port right?"
                ) from None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and "Deadline exceeded: model" not in details:
                raise ClientError(
                    f"no answer from {self.url} within {self.timeout:g}s - the server is busy or stuck; retry or raise --timeout"
                ) from None
            raise ClientError(f"{self.url} {method} -> {code.name}: {details}",
                              status=_STATUS_OF_CODE.get(code.name, 500)) from None
