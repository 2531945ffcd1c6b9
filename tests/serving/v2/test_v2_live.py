"""A real `bertserve serve` subprocess with REST and gRPC: client libraries nobody here wrote
(tritonclient http/grpc, the kserve SDK) get the same probabilities as REST V1, and a 413 reaches a
client that is still sending an oversized body."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from live_server import free_port, running_server

ROOT = Path(__file__).resolve().parents[3]
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
CLIENT_SCRIPT = Path(__file__).resolve().parent / "real_clients.py"
TEXTS = ["这家酒店很好", "房间太差了,再也不来", "一般般"]
DEMO_IDS = [101, 6821, 2157, 6983, 2421, 2523, 1962, 102] + [0] * 120  # the demo's 128-id request


@pytest.fixture(scope="module")
def live(tiny_export, tmp_path_factory):
    """(REST URL, gRPC target) of one server for this module."""
    folder = tmp_path_factory.mktemp("v2_live")
    shutil.copytree(tiny_export, folder / "tiny" / "1")
    grpc_port = free_port()
    with running_server(folder / "tiny", "tiny", folder / "server.log", "--engine_tuning=off", grpc_port=grpc_port) as url:
        yield url, f"127.0.0.1:{grpc_port}"


def test_413_reaches_a_client_still_sending_its_body(live):
    """60 MB to :predict (limit 10 MiB): the server answers 413 at once, reads and discards the
    rest instead of resetting the connection, and keeps the connection for the next request."""
    url, _ = live
    port = int(url.rsplit(":", 1)[1])
    size = 60 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        chunk = b"a" * 65536
        for _ in range(size // len(chunk)):
            connection.sendall(chunk)  # a reset would raise ConnectionResetError / BrokenPipeError here
        answer = read_response(connection)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": (
            "Request body is larger than the limit of 10485760 bytes; send fewer instances per request "
            "or raise --max_body_bytes")}
        connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(connection).endswith(b'{"live":true}')
    # httpx too (it streams the body, then reads the answer).
    response = httpx.post(f"{url}/v2/models/tiny/infer", content=b"x" * size, timeout=60)
    assert response.status_code == 413


def read_response(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def v1_probabilities(url: str, payload: dict) -> np.ndarray:
    body = httpx.post(f"{url}/v1/models/tiny:predict", json=payload, timeout=30).json()
    return np.asarray(body.get("predictions", body.get("outputs")), dtype=np.float32)


CLIENTS = ["tritonclient.http", "tritonclient.http-json", "tritonclient.grpc", "kserve-rest", "kserve-rest-binary", "kserve-grpc"]


@pytest.mark.skipif(not (ROOT / ".venv-clients" / ".installed").is_file(),
                    reason=".venv-clients/ (tritonclient, kserve) is absent: bash scripts/setup_v2_clients.sh creates it")
@pytest.mark.parametrize("client", CLIENTS)
def test_real_clients_get_the_probabilities_of_rest_v1(live, client):
    url, target = live
    run = subprocess.run(
        [str(CLIENTS_PYTHON), str(CLIENT_SCRIPT), client, url, target, "tiny", json.dumps(TEXTS), json.dumps([DEMO_IDS])],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = json.loads(run.stdout)
    by_texts = v1_probabilities(url, {"instances": TEXTS})
    by_ids = v1_probabilities(url, {"inputs": {"input_ids": [DEMO_IDS]}})
    np.testing.assert_allclose(answers["texts"], by_texts, atol=1e-5)
    np.testing.assert_allclose(answers["ids"], by_ids, atol=1e-5)
    np.testing.assert_allclose(by_ids[0], by_texts[0], atol=1e-5)  # the demo's ids are TEXTS[0]
    assert (answers["live"], answers["ready"], answers["model_ready"]) == (True, True, True)
    if "labels" in answers:
        assert answers["labels"] == [["negative", "positive"][i] for i in by_texts.argmax(axis=1)]
    if client.startswith("tritonclient"):
        assert answers["inputs"][:2] == [["text", "BYTES", [-1]], ["input_ids", "INT64", [-1, -1]]]
    if client == "tritonclient.grpc":
        assert answers["unknown_model"] == "StatusCode.NOT_FOUND"
    if client.startswith("kserve-rest"):
        assert (answers["v1_live"], answers["model_name"]) == (True, "tiny")


def test_v2_client_matches_rest_v1(live):
    from bertserve.client import BertServeClient
    from bertserve.errors import ClientError
    from bertserve.serving.v2.client import V2Client

    url, _ = live
    with V2Client(url) as client, BertServeClient(url, model="tiny") as rest:
        assert client.use_the_only_model() == "tiny"
        assert client.labels() == ["negative", "positive"]
        assert client.status() == {"name": "tiny", "ready": True}
        np.testing.assert_allclose(client.predict_texts(TEXTS), rest.predict_texts(TEXTS), atol=1e-6)
        np.testing.assert_allclose(client.predict_ids([DEMO_IDS]), rest.predict_ids([DEMO_IDS]), atol=1e-6)
        assert [label for label, _ in client.classify(["很好"])[0]] == ["negative", "positive"]
    with V2Client(url, model="nope") as client, pytest.raises(ClientError) as caught:
        client.predict_texts(["很好"])
    assert (caught.value.status, str(caught.value)) == (
        404, f"POST {url}/v2/models/nope/infer -> 404: Servable not found for request: Latest(nope)")


def bertserve(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertserve", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_online_and_predict_with_protocol_v2(live, tmp_path):
    from bertserve.client import BertServeClient
    from bertserve.commands.online import format_line

    url, _ = live
    with BertServeClient(url, model="tiny") as rest:
        expected = rest.predict_texts(["很好", "太差了"])
    result = bertserve("online", "--protocol", "v2", "--url", url, stdin="很好\n太差了\n")
    assert (result.returncode, result.stderr) == (0, "")
    lines = [line.rsplit(" time consuming:", 1)[0] for line in result.stdout.splitlines()]
    assert lines == [format_line(["negative", "positive"], row, 0).rsplit(" time consuming:", 1)[0] for row in expected]
    source, output = tmp_path / "in.tsv", tmp_path / "out.tsv"
    source.write_text("label\ttext_a\n1\t很好\n0\t太差了\n", encoding="utf-8")
    result = bertserve("predict", "--protocol", "v2", "--url", url, "--input", str(source), "--output", str(output))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in output.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["label", "text_a", "p_negative", "p_positive", "predicted_label"]
    np.testing.assert_allclose([[float(p) for p in row[2:4]] for row in rows[1:]], expected, atol=2e-6)
    result = bertserve("online", "--protocol", "v2", "--url", url, "--model", "nope", stdin="很好\n")
    assert result.returncode == 2
    assert result.stderr == f"bertserve: error: GET {url}/v2/models/nope -> 404: Servable not found for request: Latest(nope)\n"


def test_bench_measures_v2_beside_rest(live, tmp_path, capsys):
    from bertserve.cli import main

    url, _ = live
    data = tmp_path / "texts.txt"
    data.write_text("这家酒店很好\n房间太小了,隔音很差\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    code = main(["bench", "--url", url, "--model", "tiny", "--data", str(data), "--protocols", "rest,v2",
                 "--concurrency", "2", "--requests", "12", "--duration", "60", "--warmup", "0", "--json", str(out)])
    assert code == 0, capsys.readouterr().out
    document = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["target"], r["requests"], r["errors"]) for r in document["results"]] == [("bertserve", 12, 0), ("bertserve-v2", 12, 0)]


def test_tfserving_grpc_agrees_on_texts_and_the_demo_ids(live):
    """The fourth protocol: TF Serving's gRPC API (serving/grpc/client.py) on the same server."""
    from bertserve.client import BertServeClient
    from bertserve.serving.grpc.client import GrpcClient

    url, target = live
    with GrpcClient(target, model="tiny") as grpc_client, BertServeClient(url, model="tiny") as rest:
        np.testing.assert_allclose(grpc_client.predict_texts(TEXTS), rest.predict_texts(TEXTS), atol=1e-5)
        np.testing.assert_allclose(grpc_client.predict_ids([DEMO_IDS]), rest.predict_ids([DEMO_IDS]), atol=1e-5)
