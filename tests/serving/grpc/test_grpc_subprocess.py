"""`bertserve serve --port P` as a real subprocess: TF Serving's official client against it, gRPC
health through startup and SIGTERM, and a drain that finishes the calls in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_harness import grpc_base, serving, stubs  # noqa: F401 (grpc_base: a fixture)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from live_server import free_port

from bertserve.serving.grpc import tensors

ROOT = Path(__file__).resolve().parents[3]
TF_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
TEXTS = ["这家酒店很好", "太差了,再也不来", "一般般"]
START_SECONDS = 60.0


@contextmanager
def serve(base: Path, log_path: Path, *flags: str):
    rest, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "bertserve", "serve", "--model_name=tiny", f"--model_base_path={base}",
               f"--rest_api_port={rest}", f"--port={grpc_port}", *flags]
    with open(log_path, "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                deadline = time.monotonic() + START_SECONDS
                while health_status(health) != "SERVING":
                    assert process.poll() is None and time.monotonic() < deadline, (log.seek(0), log.read()[-3000:])[1]
                    time.sleep(0.1)
            yield process, f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc_port}"
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def health_status(health, service: str = "") -> str:
    try:
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    except grpc.RpcError as error:
        return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


@pytest.mark.skipif(not (ROOT / ".venv-tf" / ".installed").is_file(),
                    reason=".venv-tf (tensorflow-cpu + tensorflow-serving-api) is absent or its install failed: "
                           "run scripts/setup_tf_client.sh")
def test_official_tensorflow_serving_client_gets_the_rest_probabilities(grpc_base, tmp_path):
    from bertserve.tokenizer import load_saved_tokenizer

    tokenizer = load_saved_tokenizer(grpc_base / "1" / "tokenizer")
    input_ids = tokenizer.encode(TEXTS, pad_to=128).input_ids.tolist()
    with serve(grpc_base, tmp_path / "server.log") as (_, url, target):
        rest = httpx.post(f"{url}/v1/models/tiny:predict", json={"instances": TEXTS}, timeout=30).json()["predictions"]
        labels = httpx.get(f"{url}/v1/models/tiny/metadata", timeout=30).json()["bertserve"]["labels"]
        done = subprocess.run([str(TF_PYTHON), str(Path(__file__).with_name("official_client.py")), target, "tiny"],
                              input=json.dumps({"texts": TEXTS, "input_ids": input_ids}), capture_output=True,
                              text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(answers["texts"], rest, atol=1e-5)
    np.testing.assert_allclose(answers["input_ids"], rest, atol=1e-5)
    assert [[label for label, _ in row] for row in answers["classify"]] == [labels] * len(TEXTS)
    np.testing.assert_allclose([[score for _, score in row] for row in answers["classify"]], rest, atol=1e-5)
    assert answers["multi_inference"] == [["tiny", "serving_default", answers["classify"]]]
    assert answers["multi_inference_regress"] == "INVALID_ARGUMENT"
    assert answers["version"] == 1
    assert answers["metadata"] == {"signatures": ["ids", "serving_default"], "output_dtype": "float32",
                                   "output_shape": [-1, 2]}
    assert answers["status"] == [[1, "AVAILABLE"]]
    assert answers["unknown_model"] == "NOT_FOUND"


def rest_answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return True


def queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("bertserve_batch_queue_depth{"))


def wait_until(condition, failure: str, seconds: float = 30) -> None:
    """Poll `condition()` every 50 ms until it holds; fail with `failure` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)


def text_request(text: str = "很好"):
    request = serving.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["text"].CopyFrom(tensors.string_tensor([text]))
    return request


def test_sigterm_drains_calls_in_flight_and_refuses_new_ones(grpc_base, tmp_path):
    # A lone row waits up to 3 s for company in the batcher, so calls are surely in flight at SIGTERM.
    flags = ("--drain_seconds=20", "--shutdown_delay_seconds=1", "--batch_timeout_micros=3000000", "--max_batch_size=64",
             "--inline_engine_calls=never")
    with serve(grpc_base, tmp_path / "server.log", *flags) as (process, url, target):
        channel, prediction, _ = stubs(target)
        health = health_pb2_grpc.HealthStub(channel)
        assert health_status(health, "tensorflow.serving.PredictionService") == "SERVING"
        request = text_request()
        in_flight = [prediction.Predict.future(request, timeout=60) for _ in range(3)]
        wait_until(lambda: queue_depth(url) >= 3, "the calls never reached the batcher")
        process.send_signal(signal.SIGTERM)
        # Within the 1 s shutdown delay health still answers; after it both listeners close together.
        wait_until(lambda: health_status(health) == "NOT_SERVING", "health never turned NOT_SERVING")
        wait_until(lambda: not rest_answers(url), "the REST listener never closed")
        with pytest.raises(grpc.RpcError) as refused:  # a new call while the 3 drain
            prediction.Predict(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        for call in in_flight:
            assert len(call.result(timeout=60).outputs["probabilities"].float_val) == 2
        assert process.wait(timeout=60) == 0
        channel.close()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "shut down cleanly" in log


@pytest.mark.parametrize("second_signal, when", [
    (signal.SIGTERM, "REST done"),  # uvicorn has finished: only the gRPC drain holds the process
    (signal.SIGINT, "shutdown delay"),  # still in the delay before the listeners close
])
def test_a_second_signal_cancels_the_grpc_calls_in_flight(grpc_base, tmp_path, second_signal, when):
    # The call waits for company in the batcher far longer than the test waits for the process:
    # only a grace cut to zero lets the process exit before the call would be answered.
    delay = "600" if when == "shutdown delay" else "0"
    flags = ("--drain_seconds=600", f"--shutdown_delay_seconds={delay}", "--batch_timeout_micros=600000000",
             "--max_batch_size=64", "--inline_engine_calls=never", "--rest_api_timeout_in_ms=900000")
    with serve(grpc_base, tmp_path / "server.log", *flags) as (process, url, target):
        channel, prediction, _ = stubs(target)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = prediction.Predict.future(text_request(), timeout=900)
        wait_until(lambda: queue_depth(url) >= 1, "the call never reached the batcher")
        process.send_signal(signal.SIGTERM)
        if when == "REST done":
            wait_until(lambda: "Application shutdown complete." in (tmp_path / "server.log").read_text(),
                       "uvicorn never finished")
            assert not rest_answers(url)
        else:
            wait_until(lambda: health_status(health) == "NOT_SERVING", "health never turned NOT_SERVING")
            assert rest_answers(url)  # the delay keeps REST open
        assert not in_flight.done()  # the drain is waiting for it
        process.send_signal(second_signal)
        assert process.wait(timeout=120) == 0
        with pytest.raises(grpc.RpcError) as cancelled:
            in_flight.result(timeout=30)
        assert cancelled.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        channel.close()
    log = (tmp_path / "server.log").read_text()
    assert f"received {signal.Signals(second_signal).name} again: cancelling" in log
    assert "Traceback" not in log and "shut down cleanly" in log
