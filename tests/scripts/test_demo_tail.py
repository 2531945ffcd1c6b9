"""scripts/demo_serve.sh, the README demo's serve-and-query tail, on the tiny export: it serves the
export, prints the 2019 demo's 128-id request and a raw-text request in the demo's line format,
and stops the server cleanly; on failure it leaves no server behind. (CI runs the whole demo.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_serve.sh"
DEMO_SENTENCE = "这个宾馆比较陈旧了，特价的房间也很一般。总体来说一般"  # the 2019 demo's, sent as ids
TEXT_SENTENCE = "这家酒店很干净，服务也很好，下次还来。"  # sent as text
LINE = re.compile(r"^negative pro:(\d\.\d{4}) positive pro:(\d\.\d{4}) time consuming:(\d+)ms$")
URL = re.compile(r" on (http://127\.0\.0\.1:\d+), gRPC on 127\.0\.0\.1:\d+ \(server log: ")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the script in its own process group, so a timeout can take the server down with it.
    Its server log (mktemp -d) goes under tmp_path."""
    process = subprocess.Popen(
        ["bash", str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), **env}, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"demo_serve.sh did not finish:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def served_url(stdout: str) -> str:
    match = URL.search(stdout)
    assert match, stdout
    return match[1]


def assert_nothing_listens(url: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=5)


def test_serves_answers_the_demo_requests_and_shuts_down_cleanly(tiny_export, tmp_path):
    from bertserve.inference.model import ExportedModel

    serve_log = tmp_path / "logs" / "serve.log"  # SERVE_LOG: where CI keeps it (removed with its work folder)
    serve_log.parent.mkdir()
    result = run_script(tmp_path, str(tiny_export.parent), "tiny", SERVE_LOG=str(serve_log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # third-party noise and server logs stay out of the demo's output
    assert f"(server log: {serve_log})" in result.stdout and serve_log.stat().st_size > 0
    lines = result.stdout.splitlines()
    # The last lines: the 2019 request's answer, the raw-text answer, the clean shutdown.
    assert lines[-5] == (
        f'== the 2019 demo\'s request: "{DEMO_SENTENCE}" tokenized here, '
        'sent as {"inputs": {"input_ids": [[101, ..., 102, 0, ...]]}} (128 ids)'
    )
    assert lines[-3] == f'== raw text: "{TEXT_SENTENCE}" sent as {{"instances": ["..."]}}'
    assert lines[-1] == "== server stopped cleanly (SIGTERM: drained, exit status 0)"
    model = ExportedModel.load(tiny_export)
    ids = model.tokenizer.encode([DEMO_SENTENCE], pad_to=128)
    assert ids.input_ids.shape == (1, 128) and ids.input_ids[0, -1] == 0  # the demo's zero padding
    expected = [model.predict_texts([DEMO_SENTENCE])[0], model.predict_texts([TEXT_SENTENCE])[0]]
    for line, probabilities in zip((lines[-4], lines[-2]), expected):
        match = LINE.match(line)
        assert match, line
        assert [float(match[1]), float(match[2])] == pytest.approx(probabilities.tolist(), abs=6e-5)
    url = served_url(result.stdout)
    assert f"   curl -s -d '{{\"instances\": [\"{TEXT_SENTENCE}\"]}}' {url}/v1/models/tiny:predict" in lines
    assert_nothing_listens(url)


def test_keep_serving_leaves_the_server_up(tiny_export, tmp_path):
    result = run_script(tmp_path, str(tiny_export.parent), "tiny", KEEP_SERVING="1")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    match = re.fullmatch(r"== still serving at (\S+): the demo page is \1/ ; stop it with: kill (\d+)  \(SIGTERM drains\)", last)
    assert match, last
    url, pid = match[1], int(match[2])
    try:
        assert httpx.get(f"{url}/readyz", timeout=10).json() == {"status": "ready"}
    finally:
        os.kill(pid, signal.SIGTERM)
    for _ in range(300):  # the server drains and exits: its port closes
        try:
            httpx.get(f"{url}/healthz", timeout=1)
        except httpx.ConnectError:
            break
        time.sleep(0.1)
    assert_nothing_listens(url)


def test_a_model_that_does_not_load_fails_fast_and_leaves_no_server(tmp_path):
    (tmp_path / "models" / "5").mkdir(parents=True)
    (tmp_path / "models" / "5" / "model.onnx").write_text("not a model")
    result = run_script(tmp_path, str(tmp_path / "models"), READY_SECONDS="100")
    assert result.returncode == 1
    assert "demo_serve.sh: the model did not load: " in result.stderr and "manifest.json" in result.stderr
    assert_nothing_listens(served_url(result.stdout))


def test_no_version_folder_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script(tmp_path, str(empty))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"demo_serve.sh: no version folder in {empty}; export one with `bertserve export --base-path {empty}`\n"
    )
