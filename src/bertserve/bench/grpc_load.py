"""Closed-loop gRPC load, the gRPC twin of `loadgen.run_level` (same budget, warm-up, result row),
for `bertserve bench --protocols grpc,v2grpc`: one text per call, over

    grpc    TF Serving's `PredictionService/Predict` with a DT_STRING "text" tensor
    v2grpc  the Open Inference Protocol's `GRPCInferenceService/ModelInfer` with a BYTES "text"
            tensor in raw_input_contents (what tritonclient.grpc sends)

    result = asyncio.run(run_grpc_level(GrpcTarget("bertserve-grpc", "127.0.0.1:8500", "m"), texts, 8, 10.0))

Each client sends its next call as soon as the previous answer arrives. The clients share one
channel by default (`channels=1`): a gRPC channel multiplexes concurrent calls over one HTTP/2
connection, and sharing it is how gRPC clients are meant to be used (the official examples build
one stub per process). `channels=0` gives each client its own channel, like each REST client's
own keep-alive connection; on the tiny test model that cost the server ~15 % more CPU per call
and the level 30-40 % of its throughput at 32 clients. Requests are serialised once per text and
answers are checked only for their status and output name, so the generator takes as little of
the shared CPU as it can.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from bertserve.bench.loadgen import LOOPBACK_HOSTS, REQUEST_TIMEOUT_SECONDS, LevelResult, _Budget, drive_closed_loop
from bertserve.errors import ConfigError

METHODS = {  # protocol -> the method each call goes to
    "grpc": "/tensorflow.serving.PredictionService/Predict",
    "v2grpc": "/inference.GRPCInferenceService/ModelInfer",
}
EXPECTED_OUTPUT = b"probabilities"  # the output's name, in every answer of both protocols


@dataclass(frozen=True)
class GrpcTarget:
    name: str
    address: str  # host:port
    model: str
    protocol: str = "grpc"  # a key of METHODS
    channels: int = 1  # channels the clients share round-robin; 0: one per client

    def checked_address(self) -> str:
        host = self.address.rsplit(":", 1)[0].strip("[]")
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(f"--grpc-url {self.address!r}: bench only loads servers on this machine (127.0.0.1:PORT)")
        return self.address


def request_bytes(target: GrpcTarget, text: str) -> bytes:
    from bertserve.serving.grpc.protos import load

    if target.protocol == "v2grpc":
        from bertserve.serving.v2.tensors import BYTES, join_bytes

        v2, _ = load("grpc_predict_v2")
        request = v2.ModelInferRequest(model_name=target.model, raw_input_contents=[join_bytes([text.encode("utf-8")])])
        request.inputs.add(name="text", datatype=BYTES, shape=[1])
        request.outputs.add(name=EXPECTED_OUTPUT.decode())
        return request.SerializeToString()
    from bertserve.serving.grpc import tensors

    serving, _ = load("tensorflow_serving")
    request = serving.PredictRequest()
    request.model_spec.name = target.model
    request.inputs["text"].CopyFrom(tensors.string_tensor([text]))
    return request.SerializeToString()


async def _client(channel: grpc.aio.Channel, method: str, budget: _Budget, result: LevelResult, record: bool) -> None:
    predict = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
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
    address, method = target.checked_address(), METHODS[target.protocol]
    if target.channels < 0:
        raise ConfigError(f"--grpc-channels must be 0 (one per client) or more, got {target.channels}")
    requests = [request_bytes(target, text) for text in texts]
    channels = [grpc.aio.insecure_channel(address) for _ in range(target.channels or max(1, concurrency))]
    started = 0

    def client(budget: _Budget, result: LevelResult, record: bool):
        nonlocal started
        channel = channels[started % len(channels)]
        started += 1
        return _client(channel, method, budget, result, record)

    try:
        return await drive_closed_loop(
            client, requests, LevelResult(target.name, concurrency, text_mode),
            duration=duration, max_requests=max_requests, warmup_seconds=warmup_seconds, server_pid=server_pid,
        )
    finally:
        for channel in channels:
            await channel.close()
