"""Other servers on the same model, started as subprocesses so `bertserve bench` can load them
side by side with the server under test:

    naive  benchmarks/peers/naive_app.py: a Hugging Face `pipeline("text-classification")` behind a
           ~30-line FastAPI app, on the run folder's torch model (what a user would write instead)
    ray       benchmarks/peers/ray_app.py: Ray Serve with its own dynamic batching (@serve.batch)
    litserve  benchmarks/peers/litserve_app.py: LitServe with its own batching (max_batch_size,
              batch_timeout)
    Both run the same export as bertserve with the same engine (benchmarks/peers/peer_engine.py:
    OpenVINO for the default export, ONNX Runtime for model.onnx; `precision` = the OpenVINO
    inference precision, e.g. the one bertserve chose), from the isolated venv made by
    benchmarks/peers/setup_peer_venv.sh.

    with start_peer("naive", run_dir=Path("runs/x"), export_dir=None, max_batch_size=32) as target:
        ...   # target.url answers POST target.path {"instances": [...]} -> {"predictions": ...}

Each peer binds 127.0.0.1 on a free port, runs in its own process group (Ray starts helper
processes) and is stopped with SIGTERM, then SIGKILL for whatever is left in that group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bertserve.bench.loadgen import Target
from bertserve.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]
PEERS_DIR = REPO_ROOT / "benchmarks" / "peers"
PEER_VENV = Path(os.environ.get("BENCH_VENV", REPO_ROOT / ".bench" / "venv"))
PEER_NAMES = ("naive", "ray", "litserve")
VENV_PEERS = {"ray": "ray_app.py", "litserve": "litserve_app.py"}  # run from the isolated peer venv
START_SECONDS = 240.0  # torch + transformers, or a Ray cluster, on 2 busy cores: tens of seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peer_command(
    name: str, port: int, run_dir: Path | None, export_dir: Path | None, max_batch_size: int, precision: str | None = None
) -> list[str]:
    if name == "naive":
        if run_dir is None:
            raise ConfigError("--peers naive needs --run RUN_FOLDER (the torch model the pipeline loads)")
        return [sys.executable, str(PEERS_DIR / "naive_app.py"), "--run", str(run_dir), "--port", str(port)]
    if name in VENV_PEERS:
        if export_dir is None:
            raise ConfigError(f"--peers {name} needs --engine-dir VERSION_DIR (the export it serves)")
        python = PEER_VENV / "bin" / "python"
        if not python.is_file():
            raise ConfigError(f"--peers {name} needs the peer venv {PEER_VENV}; run `bash benchmarks/peers/setup_peer_venv.sh`")
        return [
            str(python), str(PEERS_DIR / VENV_PEERS[name]), "--export", str(export_dir), "--port", str(port),
            "--max-batch-size", str(max_batch_size), *(["--precision", precision] if precision else []),
        ]
    raise ConfigError(f"unknown peer {name!r}; choose from {', '.join(PEER_NAMES)}")


def _answers(url: str, probe: bytes) -> bool:
    request = urllib.request.Request(url, data=probe, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200 and b"predictions" in response.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextmanager
def start_peer(
    name: str, *, run_dir: Path | None, export_dir: Path | None, max_batch_size: int = 32, log_dir: Path | None = None,
    precision: str | None = None,
) -> Iterator[Target]:
    """Start peer `name`, wait until it answers a prediction, yield its `Target`, stop it."""
    port = free_port()
    command = peer_command(name, port, run_dir, export_dir, max_batch_size, precision)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="bertserve-bench-"))
    log_path = log_dir / f"peer-{name}.log"
    target = Target(name, f"http://127.0.0.1:{port}", "/predict")
    probe = json.dumps({"instances": ["很好"]}, ensure_ascii=False).encode()
    with open(log_path, "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _answers(target.url + target.path, probe):
                if process.poll() is not None:
                    log.seek(0)
                    tail = log.read()[-1500:]
                    raise ConfigError(f"peer {name} exited with {process.returncode} before answering (log {log_path}):\n{tail}")
                if time.monotonic() > deadline:
                    raise ConfigError(f"peer {name} did not answer within {START_SECONDS:.0f} s; see {log_path}")
                time.sleep(0.5)
            yield target
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the peer, wait, then SIGKILL anything left in its own process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group this function's caller created
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=10)
