"""Closed-loop gRPC load: TF Serving's `PredictionService/Predict` with one text per call, the
gRPC twin of `loadgen.run_level` (same budget, warm-up, result row), for `bertserve bench
--protocols rest,grpc`.

    result = asyncio.run(run_grpc_level(GrpcTarget("bertserve-grpc", "127.0.0.1:8500", "m"), texts, 8, 10.0))

Each client has its own channel (one HTTP/2 connection, as each REST client has its own
keep-alive connection) and sends its next call as soon as the previous answer arrives. Requests
are serialised once per text and answers are checked only for their status and output name, so
the generator takes as little of the shared CPU as the REST one does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from bertserve.bench.loadgen import LOOPBACK_HOSTS, REQUEST_TIMEOUT_SECONDS, LevelResult, _Budget, drive_closed_loop
from bertserve.errors import ConfigError

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
EXPECTED_OUTPUT = b"probabilities"


@dataclass(frozen=True)
class GrpcTarget:
    name: str
    address: str  # host:port
    model: str

    def checked_address(self) -> str:
        host = self.address.rsplit(":", 1)[0].strip("[]")
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(f"--grpc-url {self.address!r}: bench only loads servers on this machine (127.0.0.1:PORT)")
        return self.address


def request_bytes(model: str, text: str) -> bytes:
    from bertserve.serving.grpc import tensors
    from bertserve.serving.grpc.protos import load

    serving, _ = load("tensorflow_serving")
    request = serving.PredictRequest()
    request.model_spec.name = model
    request.inputs["text"].CopyFrom(tensors.string_tensor([text]))
    return request.SerializeToString()


async def _client(address: str, budget: _Budget, result: LevelResult, record: bool) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        predict = channel.unary_unary(PREDICT_METHOD, request_serializer=None, response_deserializer=None)
        while (request := budget.next_request()) is not None:
            started = time.perf_counter()
            try:
                answer = await predict(request, timeout=REQUEST_TIMEOUT_SECONDS)
                failure = "" if EXPECTED_OUTPUT in answer else "answer without 'probabilities'"
            except grpc.aio.AioRpcError as error:
                failure = f"gRPC {error.code().name}: {error.details()}"
            elapsed_ms = (time.perf_counter() - started) * 1000
            if not record:
                continue
            if not failure:
                result.requests += 1
                result.latencies_ms.append(elapsed_ms)
            else:
                result.errors += 1
                result.first_error = result.first_error or failure[:200]


async def run_grpc_level(
    target: GrpcTarget,
    texts: list[str],
    concurrency: int,
    duration: float | None = 10.0,
    max_requests: int | None = None,
    warmup_seconds: float = 1.0,
    text_mode: str = "all",
    server_pid: int | None = None,
) -> LevelResult:
    """`loadgen.run_level` over gRPC: same bounds, warm-up and result fields."""
    address = target.checked_address()
    requests = [request_bytes(target.model, text) for text in texts]
    return await drive_closed_loop(
        lambda budget, result, record: _client(address, budget, result, record),
        requests, LevelResult(target.name, concurrency, text_mode),
        duration=duration, max_requests=max_requests, warmup_seconds=warmup_seconds, server_pid=server_pid,
    )
