"""Faults under load, CI-sized: while clients send predictions without pause, a new version is
dropped in, then a corrupted one, then the serving version's folder is deleted. Not one request
may fail, and status and metrics must show every event.

The minute-long version with memory measurements is `scripts/reliability/soak.py --phase faults`.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from bertserve.serving.server import ServerOptions
from inprocess_server import InProcessServer

PREDICT = "/v1/models/tiny:predict"


def drop(staged: Path, base: Path, version: int, corrupt: bool = False) -> None:
    """Publish as the exporter does: a hidden copy, then one rename."""
    hidden = base / f".tmp-{version}"
    shutil.copytree(staged, hidden)
    if corrupt:
        (hidden / "model.onnx").write_bytes(b"not an onnx graph")
    hidden.rename(base / str(version))


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_version_drops_corruption_and_deletion_under_load_fail_no_request(tiny_export, tmp_path):
    base = tmp_path / "tiny"
    drop(tiny_export, base, 1)
    outcomes: list[int | str] = []
    stop = threading.Event()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                try:
                    outcomes.append(http.post(PREDICT, json={"instances": ["很好", "太差了"]}).status_code)
                except httpx.HTTPError as error:
                    outcomes.append(type(error).__name__)

    with InProcessServer(base, server_options=ServerOptions(port=0, poll_seconds=0.1)) as server:

        def states() -> dict[str, tuple[str, str]]:
            body = httpx.get(f"{server.url}/v1/models/tiny", timeout=10).json()
            return {s["version"]: (s["state"], s["status"]["error_code"]) for s in body["model_version_status"]}

        clients = [threading.Thread(target=client, args=(server.url,)) for _ in range(3)]
        for thread in clients:
            thread.start()
        try:
            drop(tiny_export, base, 2)
            wait_for(lambda: states().get("1") == ("END", "OK") and states()["2"] == ("AVAILABLE", "OK"), 30, "2 replaces 1")
            drop(tiny_export, base, 3, corrupt=True)
            wait_for(lambda: states().get("3", ("",))[0] == "END", 30, "3 to fail")
            assert states()["3"] == ("END", "INVALID_ARGUMENT") and states()["2"] == ("AVAILABLE", "OK")
            shutil.rmtree(base / "2")  # the serving version is pulled: fall back to 1, then unload 2
            wait_for(lambda: states()["1"] == ("AVAILABLE", "OK") and states()["2"] == ("END", "OK"), 30, "1 replaces 2")
            served_before = len(outcomes)
            time.sleep(0.5)
            assert len(outcomes) > served_before  # still serving after the last event
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)
        metrics = httpx.get(f"{server.url}/metrics").text
    assert 'bertserve_loaded_versions{model="tiny"} 1.0' in metrics
    assert outcomes and set(outcomes) == {200}, {str(outcome): outcomes.count(outcome) for outcome in set(outcomes)}
