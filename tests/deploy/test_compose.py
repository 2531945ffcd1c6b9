"""docker-compose.yml, checked offline: the Compose specification's JSON schema (bundled with
check-jsonschema), `docker compose config` when a Compose plugin is installed, and the wiring
(balancer on 8501, replicas, health checks, stop grace >= the server's drain)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    checker = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema is not installed (test extra)")
    done = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_config_accepts_it(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` plugin here (the docker CLI alone cannot parse compose files)")
    (tmp_path / "models").mkdir()
    done = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                          timeout=60, env={"MODEL_DIR": str(tmp_path / "models"), "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert done.returncode == 0, done.stderr


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", text)
    assert match, text
    return float(match.group(1))


def test_replicas_sit_behind_the_balancer_with_health_checks(compose):
    server, balancer = compose["services"]["bertserve"], compose["services"]["loadbalancer"]
    assert "ports" not in server  # replicas are reached only through the balancer
    assert balancer["ports"] == ["${BERTSERVE_PORT:-8501}:8501", "${BERTSERVE_GRPC_PORT:-8500}:8500"]
    assert server["expose"] == ["8501", "8500"]
    assert server["deploy"]["replicas"] == "${BERTSERVE_REPLICAS:-2}"
    assert server["environment"]["MODEL_BASE_PATH"] == "/models"
    assert server["volumes"][0]["target"] == "/models" and server["volumes"][0]["read_only"] is True
    assert "/readyz" in " ".join(server["healthcheck"]["test"])
    assert "python -m bertserve.serving.grpc.probe 127.0.0.1:8500" in " ".join(server["healthcheck"]["test"])
    assert "/lb-healthz" in " ".join(balancer["healthcheck"]["test"])
    assert (ROOT / compose["configs"]["nginx_conf"]["file"]).is_file()


def test_stop_grace_covers_the_servers_drain(compose):
    server = compose["services"]["bertserve"]
    flags = dict(argument.lstrip("-").split("=", 1) for argument in server["command"])
    drain = float(flags["shutdown_delay_seconds"]) + float(flags["drain_seconds"])
    assert seconds(server["stop_grace_period"]) >= drain + 1


def test_nginx_retries_draining_replicas_and_re_resolves_them():
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    assert "listen 8501;" in conf
    assert "resolver 127.0.0.11" in conf and "proxy_pass $replicas;" in conf
    assert re.search(r"proxy_next_upstream [^;]*http_503[^;]*non_idempotent;", conf)
    assert conf.count("{") == conf.count("}")


def test_nginx_balances_grpc_over_http2_and_retries_draining_replicas():
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    grpc_server = conf[conf.index("listen 8500;"):]
    assert "http2 on;" in grpc_server and "grpc_pass $grpc_replicas;" in grpc_server
    assert "set $grpc_replicas grpc://bertserve:8500;" in grpc_server
    assert re.search(r"grpc_next_upstream [^;]*unavailable[^;]*non_idempotent;", grpc_server)
