"""`bertserve ray` as a real process: 2 replicas behind Ray's proxy on 127.0.0.1, both answer,
SIGTERM finishes the request in flight and exits 0; plus its one-line errors. Skipped without Ray.
(The REST contract through Ray's proxy is tested in tests/serving/test_ray_serve.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from bertserve.cli import main

pytest.importorskip("ray", reason="Ray is not installed; pip install 'bertserve[ray]'")

START_SECONDS = 120.0  # a local Ray cluster plus two replicas on 2 busy cores


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_replicas_answer_and_sigterm_drains_to_exit_0(tiny_export, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/models/tiny:predict"
    log = open(tmp_path / "ray.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "bertserve", "ray", "--model_name=tiny", f"--model_base_path={tiny_export.parent}",
         "--replicas=2", f"--rest_api_port={port}", "--drain_seconds=5"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        replicas: set[str] = set()
        while len(replicas) < 2:
            assert process.poll() is None, (log.seek(0), log.read())[1][-3000:]
            assert time.monotonic() < deadline, f"saw replicas {replicas}:\n" + (log.seek(0), log.read())[1][-3000:]
            try:
                answer = httpx.post(url, json={"instances": ["很好"]}, timeout=10)
                if answer.status_code == 200:
                    assert len(answer.json()["predictions"][0]) == 2
                    replicas.add(answer.headers["x-bertserve-replica"])
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        in_flight: list[int] = []
        sender = threading.Thread(target=lambda: in_flight.append(
            httpx.post(url, json={"instances": ["很好"] * 50}, timeout=30).status_code))
        sender.start()
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        sender.join(timeout=30)
        assert process.wait(timeout=60) == 0
        assert in_flight == [200]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--replicas", "0"], "--replicas must be at least 1, got 0"),
        (["--min_replicas", "3", "--max_replicas", "2"], "--min_replicas <= --max_replicas"),
        (["--num_cpus_per_replica", "0"], "--num_cpus_per_replica must be positive"),
        (["--port", "8500"], "bertserve ray serves the REST APIs only (Ray's HTTP proxy); drop --port"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, arguments, message):
    code = main(["ray", "--model_name", "m", "--model_base_path", str(tmp_path), *arguments])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("bertserve: error: ") and message in error and error.count("\n") == 1


def test_missing_model_folder_is_a_one_line_error(tmp_path, capsys):
    code = main(["ray", "--model_name", "m", "--model_base_path", str(tmp_path / "absent")])
    assert code == 2
    assert "is not a folder; export a model there" in capsys.readouterr().err
