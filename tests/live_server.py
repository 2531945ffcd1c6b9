"""A real `bertserve serve` subprocess on 127.0.0.1:<free port> for the client tests.

    from live_server import running_server
    with running_server(base_path, "tiny", log_path) as url:   # AVAILABLE when the block starts
        ...
    grpc_port = free_port()   # gRPC too (off by default), plus any other `serve` flags
    with running_server(base_path, "tiny", log_path, "--engine_tuning=off", grpc_port=grpc_port) as url:
        ...

Used by tests/conftest.py's `tiny_server` and tests/serving/v2/test_v2_live.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

START_SECONDS = 60.0  # a cold start on 2 busy cores imports onnxruntime and fastapi: seconds, not ms


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def export_tiny(run_dir: Path, base_path: Path, version: int = 1) -> Path:
    from bertserve.export.version import ExportSettings, export_run

    return export_run(run_dir, base_path, ExportSettings(version=version)).path


@contextmanager
def running_server(base_path: Path, model: str, log_path: Path, *flags: str, grpc_port: int = 0) -> Iterator[str]:
    """Start the server, wait until `model` is AVAILABLE, yield its URL; stop it afterwards.
    `grpc_port` 0 (the default) leaves gRPC off: several test servers run at once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "bertserve", "serve",
        f"--model_name={model}", f"--model_base_path={base_path}", f"--rest_api_port={port}",
        f"--port={grpc_port}", *flags,
    ]
    with open(log_path, "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"bertserve serve exited with {process.returncode}:\n{log.read()[-3000:]}")
                try:
                    status = httpx.get(f"{url}/v1/models/{model}", timeout=2).json()
                    if any(v.get("state") == "AVAILABLE" for v in status.get("model_version_status", [])):
                        break
                except (httpx.TransportError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"bertserve serve not AVAILABLE within {START_SECONDS} s:\n{log.read()[-3000:]}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
