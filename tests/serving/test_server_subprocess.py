"""One real `bertserve serve` process on 127.0.0.1 with real tiny exported models.

readyz 503 -> 200; hot reload under continuous traffic with zero failed requests; a corrupt
version leaves the previous one serving with the error in status; SIGTERM lets in-flight requests
finish and exits 0 within the grace period.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import make_tiny_run

MODEL = "tiny"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def version_states(client: httpx.Client) -> dict[str, tuple[str, str]]:
    response = client.get(f"/v1/models/{MODEL}")
    if response.status_code != 200:
        return {}
    return {
        entry["version"]: (entry["state"], entry["status"]["error_code"])
        for entry in response.json()["model_version_status"]
    }


@pytest.fixture(scope="module")
def staged_version(tiny_run, tmp_path_factory) -> Path:
    """Version 1, exported beside BASE so the test can move it in after the server started."""
    from bertserve.export.version import ExportSettings, export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("staging"), ExportSettings(version=1)).path


def test_hot_reload_broken_version_and_sigterm_drain(staged_version, tmp_path):
    from bertserve.export.version import ExportSettings, export_run

    base = tmp_path / "models" / MODEL
    base.mkdir(parents=True)
    port = free_port()
    command = [
        sys.executable, "-m", "bertserve", "serve",
        f"--model_name={MODEL}", f"--model_base_path={base}", f"--rest_api_port={port}", "--port=0",
        "--file_system_poll_wait_seconds=0.1", "--drain_seconds=5",
        # Requests wait up to 0.3 s for company in the batcher, so some are surely in flight at SIGTERM.
        "--batch_timeout_micros=300000", "--max_batch_size=64",
    ]
    log = (tmp_path / "server.log").open("w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # 1. Up but not ready: no version on disk yet.
            first = wait_until(lambda: client.get("/readyz"), 30, "the server to answer")
            assert first.status_code == 503
            shutil.copytree(staged_version, base / ".tmp-1")
            (base / ".tmp-1").rename(base / "1")
            wait_until(lambda: client.get("/readyz").status_code == 200, 15, "readyz 200")
            assert version_states(client) == {"1": ("AVAILABLE", "OK")}

            # 2. Continuous traffic while version 2 is exported into BASE.
            outcomes: list[int | str] = []
            stop = threading.Event()

            def traffic():
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as own:
                    while not stop.is_set():
                        try:
                            response = own.post(f"/v1/models/{MODEL}:predict", json={"instances": ["很好", "太差了"]})
                            ok = response.status_code == 200 and len(response.json()["predictions"]) == 2
                            outcomes.append(200 if ok else f"{response.status_code} {response.text}")
                        except httpx.TransportError as error:
                            outcomes.append(repr(error))

            threads = [threading.Thread(target=traffic) for _ in range(3)]
            for thread in threads:
                thread.start()
            try:
                second_run = make_tiny_run(tmp_path / "run2", seed=1)
                export_run(second_run, base, ExportSettings(version=2))
                wait_until(
                    lambda: version_states(client) == {"2": ("AVAILABLE", "OK"), "1": ("END", "OK")},
                    15, "version 2 AVAILABLE and version 1 unloaded",
                )
                time.sleep(0.5)  # traffic keeps flowing on version 2
            finally:
                stop.set()
                for thread in threads:
                    thread.join(15)
            failures = [outcome for outcome in outcomes if outcome != 200]
            assert failures == [] and len(outcomes) >= 6

            # 3. A corrupt version 3: END with the error, version 2 keeps serving.
            shutil.copytree(base / "2", tmp_path / "3")
            (tmp_path / "3" / "model.onnx").write_bytes(b"not an onnx model")
            (tmp_path / "3").rename(base / "3")
            states = wait_until(
                lambda: (s := version_states(client)).get("3", ("",))[0] == "END" and s, 15, "version 3 to fail"
            )
            assert states["3"][1] == "INVALID_ARGUMENT"
            assert states["2"] == ("AVAILABLE", "OK")
            status = client.get(f"/v1/models/{MODEL}/versions/3").json()["model_version_status"][0]["status"]
            assert "model.onnx" in status["error_message"]
            assert client.post(f"/v1/models/{MODEL}:predict", json={"instances": ["好"]}).status_code == 200
            assert client.get("/readyz").status_code == 200

            # 4. SIGTERM with requests in flight: they finish, the process exits 0 within the grace.
            results: list[int | str] = []
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(4)]

            def in_flight(own: httpx.Client):
                try:
                    results.append(own.post(f"/v1/models/{MODEL}:predict", json={"instances": ["还行"]}).status_code)
                except httpx.TransportError as error:
                    results.append(repr(error))

            senders = [threading.Thread(target=in_flight, args=(own,)) for own in clients]
            for sender in senders:
                sender.start()
            # They wait in the batcher (0.3 s batch timeout): SIGTERM once all four are queued.
            wait_until(
                lambda: f'bertserve_batch_queue_depth{{model="{MODEL}",version="2"}} 4.0' in client.get("/metrics").text,
                5, "four requests in the batch queue",
            )
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=10)
            elapsed = time.monotonic() - started
            for sender in senders:
                sender.join(10)
            for own in clients:
                own.close()
            assert results == [200, 200, 200, 200]
            assert exit_code == 0 and elapsed < 5
            with pytest.raises(httpx.ConnectError):
                client.get("/healthz")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Traceback" not in output, output
