"""The gRPC client (serving/grpc/client.py) and `bertserve online/predict --protocol grpc`, against
the in-process server: same answers as the REST client, one-line errors."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from bertserve.cli import main
from bertserve.client import BertServeClient
from bertserve.errors import ClientError
from bertserve.serving.grpc.client import GrpcClient
from grpc_harness import grpc_base, grpc_server  # noqa: F401 (fixtures)
from live_server import free_port

TEXTS = ["很好", "太差了"]
LINE = re.compile(r"^negative pro:(\d\.\d{4}) positive pro:(\d\.\d{4}) time consuming:(\d+)ms$")


@pytest.fixture(scope="module")
def clients(grpc_server):
    with GrpcClient(grpc_server.grpc_target, model="tiny") as over_grpc, \
            BertServeClient(grpc_server.url, model="tiny") as over_rest:
        yield over_grpc, over_rest


def test_every_call_answers_as_over_rest(clients, grpc_server):
    over_grpc, over_rest = clients
    assert over_grpc.labels() == over_rest.labels() == ["negative", "positive"]
    np.testing.assert_allclose(over_grpc.predict_texts(TEXTS), over_rest.predict_texts(TEXTS), atol=1e-6)
    ids = grpc_server.manager.servable("tiny").model.tokenizer.encode(TEXTS, pad_to=128).input_ids.tolist()
    np.testing.assert_allclose(over_grpc.predict_ids(ids), over_rest.predict_texts(TEXTS), atol=1e-5)
    grpc_rows, rest_rows = over_grpc.classify(TEXTS), over_rest.classify(TEXTS)
    assert [[label for label, _ in row] for row in grpc_rows] == [[label for label, _ in row] for row in rest_rows]
    np.testing.assert_allclose([[s for _, s in row] for row in grpc_rows], [[s for _, s in row] for row in rest_rows], atol=1e-6)
    assert over_grpc.status() == [(1, "AVAILABLE")]


def test_errors_are_client_errors_with_the_rest_status(grpc_server):
    with GrpcClient(f"grpc://{grpc_server.grpc_target}", model="nope") as client:
        with pytest.raises(ClientError) as raised:
            client.predict_texts(["好"])
    assert raised.value.status == 404
    assert str(raised.value) == f"{grpc_server.grpc_target} Predict -> NOT_FOUND: Servable not found for request: Latest(nope)"
    with GrpcClient(grpc_server.grpc_target, model="tiny") as client, pytest.raises(ClientError) as raised:
        client.predict_ids([[101, 10**9]])
    assert raised.value.status == 400 and "INVALID_ARGUMENT: input_ids must lie in [0, " in str(raised.value)


def test_server_down_has_no_status():
    with GrpcClient(f"127.0.0.1:{free_port()}", model="tiny", timeout=10) as client, pytest.raises(ClientError) as raised:
        client.labels()
    assert raised.value.status is None and str(raised.value).startswith("cannot reach the gRPC server at 127.0.0.1:")


def test_online_over_grpc_prints_the_demo_lines(grpc_server, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("很好\n\n太差了\n"))
    code = main(["online", "--protocol", "grpc", "--url", grpc_server.grpc_target, "--model", "tiny"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    with BertServeClient(grpc_server.url, model="tiny") as rest:
        expected = rest.predict_texts(TEXTS)
    lines = out.splitlines()
    assert len(lines) == 2
    for line, probabilities in zip(lines, expected):
        match = LINE.match(line)
        assert match, line
        assert [float(match[1]), float(match[2])] == pytest.approx(probabilities, abs=6e-5)


def test_online_over_grpc_needs_a_model_name(grpc_server, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("很好\n"))
    code = main(["online", "--protocol", "grpc", "--url", grpc_server.grpc_target])
    assert code == 2
    assert capsys.readouterr().err == "bertserve: error: TF Serving's gRPC API cannot list models: name the model with --model\n"


def test_predict_over_grpc_writes_what_rest_writes(grpc_server, tmp_path, capsys):
    source = tmp_path / "in.tsv"
    source.write_text("label\ttext_a\n1\t很好\n0\t太差了\n1\t还行吧\n", encoding="utf-8")
    over_grpc, over_rest = tmp_path / "grpc.tsv", tmp_path / "rest.tsv"
    assert main(["predict", "--input", str(source), "--output", str(over_grpc), "--protocol", "grpc",
                 "--url", grpc_server.grpc_target, "--model", "tiny", "--batch-size", "2"]) == 0
    assert main(["predict", "--input", str(source), "--output", str(over_rest), "--url", grpc_server.url,
                 "--model", "tiny"]) == 0
    grpc_rows = [line.split("\t") for line in over_grpc.read_text(encoding="utf-8").splitlines()]
    rest_rows = [line.split("\t") for line in over_rest.read_text(encoding="utf-8").splitlines()]
    assert grpc_rows[0] == rest_rows[0] == ["label", "text_a", "p_negative", "p_positive", "predicted_label"]
    assert len(grpc_rows) == 4
    for grpc_row, rest_row in zip(grpc_rows[1:], rest_rows[1:]):
        assert grpc_row[:2] == rest_row[:2] and grpc_row[4] == rest_row[4]
        assert [float(p) for p in grpc_row[2:4]] == pytest.approx([float(p) for p in rest_row[2:4]], abs=2e-6)
