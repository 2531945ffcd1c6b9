"""`bertserve online` (and `bertserve predict --url`) against one real `bertserve serve` subprocess:
piped stdin gives exactly one demo-shaped line per sentence; a down server gives one line, exit 2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bertserve.commands.online import format_line
from live_server import free_port

MODEL = "tiny"
LINE = re.compile(r"^negative pro:(\d\.\d{4}) positive pro:(\d\.\d{4}) time consuming:(\d+)ms$")


def bertserve(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bertserve", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_format_line_matches_the_original_demo():
    assert format_line(["negative", "positive"], [0.96341, 0.03659], 12.4) == (
        "negative pro:0.9634 positive pro:0.0366 time consuming:12ms"
    )


def test_piped_sentences_one_line_each_then_exit(tiny_server):
    from bertserve.inference.model import ExportedModel

    url, version = tiny_server
    # Blank lines are skipped, `exit` stops reading (the last line is never sent).
    result = bertserve("online", "--url", url, "--model", MODEL, stdin="很好\n\n太差了\nexit\n不会发送\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # no prompt or banner when stdin is not a terminal
    assert result.stderr == ""  # and no per-request log lines
    expected = ExportedModel.load(version).predict_texts(["很好", "太差了"])
    for line, probabilities in zip(lines, expected):
        match = LINE.match(line)
        assert match, line
        assert [float(match[1]), float(match[2])] == pytest.approx(probabilities.tolist(), abs=6e-5)


def test_only_model_is_picked_and_eof_ends(tiny_server):
    url, _ = tiny_server
    result = bertserve("online", "--url", url, stdin="好")  # no trailing newline, then EOF
    assert result.returncode == 0, result.stderr
    assert LINE.match(result.stdout.strip())


def test_server_down_is_one_line_exit_2():
    port = free_port()  # nothing listens here
    result = bertserve("online", "--url", f"http://127.0.0.1:{port}", "--model", MODEL, stdin="很好\n")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"bertserve: error: cannot reach the server at http://127.0.0.1:{port}: connection refused - "
        "is `bertserve serve` running and is --url right?\n"
    )


def test_unknown_model_is_one_line_exit_2(tiny_server):
    url, _ = tiny_server
    result = bertserve("online", "--url", url, "--model", "nope", stdin="很好\n")
    assert result.returncode == 2
    # The message after the status is the server's own (TF Serving's wording).
    assert result.stderr.startswith(f"bertserve: error: GET {url}/v1/models/nope/metadata -> 404: ")
    assert "nope" in result.stderr and result.stderr.count("\n") == 1


def test_predict_through_the_server_matches_in_process(tiny_server, tmp_path):
    url, version = tiny_server
    source = tmp_path / "in.tsv"
    source.write_text("label\ttext_a\n1\t很好\n0\t太差了\n1\t还行吧\n", encoding="utf-8")
    remote, local = tmp_path / "remote.tsv", tmp_path / "local.tsv"
    result = bertserve("predict", "--input", str(source), "--output", str(remote), "--url", url, "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    result = bertserve("predict", "--input", str(source), "--output", str(local), "--model-dir", str(version))
    assert result.returncode == 0, result.stderr
    remote_rows = [line.split("\t") for line in remote.read_text(encoding="utf-8").splitlines()]
    local_rows = [line.split("\t") for line in local.read_text(encoding="utf-8").splitlines()]
    assert remote_rows[0] == local_rows[0] == ["label", "text_a", "p_negative", "p_positive", "predicted_label"]
    assert len(remote_rows) == 4
    for remote_row, local_row in zip(remote_rows[1:], local_rows[1:]):
        assert remote_row[:2] == local_row[:2]
        assert [float(p) for p in remote_row[2:4]] == pytest.approx([float(p) for p in local_row[2:4]], abs=2e-6)


def test_tokenizer_sends_the_demo_ids_from_a_version_or_tokenizer_folder(tiny_server, tmp_path):
    """--tokenizer: the client tokenizes as the 2019 demo did ([CLS] ... [SEP], zero-padded to 128)."""
    from bertserve.commands.online import _client_tokenizer
    from bertserve.inference.model import ExportedModel

    url, version = tiny_server
    model = ExportedModel.load(version)
    expected_ids = model.tokenizer.encode(["很好"], pad_to=128).input_ids.tolist()
    assert _client_tokenizer(str(version))("很好") == expected_ids
    assert _client_tokenizer(str(version / "tokenizer"))("很好") == expected_ids
    assert expected_ids[0][:4] == [101, 2523, 1962, 102] and expected_ids[0][4:] == [0] * 124
    result = bertserve("online", "--url", url, "--model", MODEL, "--tokenizer", str(version), stdin="很好\n")
    assert result.returncode == 0, result.stderr
    match = LINE.match(result.stdout.strip())
    assert match, result.stdout
    expected = model.predict_texts(["很好"])[0].tolist()
    assert [float(match[1]), float(match[2])] == pytest.approx(expected, abs=6e-5)
    # A folder without a tokenizer: one line, exit 2, before anything is sent.
    result = bertserve("online", "--url", url, "--model", MODEL, "--tokenizer", str(tmp_path), stdin="很好\n")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"bertserve: error: --tokenizer {tmp_path}: expected an exported version folder (BASE/<version>) "
        "or its tokenizer/ folder (tokenizer_settings.json + its vocabulary)\n"
    )
