"""`bertserve bench` against one real `bertserve serve` subprocess on a tiny export: ~1 s per level
at concurrency 1 and 4, the table, request counts, zero errors, the JSON file, one-line errors.
No timing is asserted: the numbers depend on the machine."""

from __future__ import annotations

import json
import re

import pytest

from bertserve.cli import main
from live_server import free_port

MODEL = "tiny"
ROW = re.compile(r"^\| (?P<target>[a-z ()-]+?) +\| (?P<conc>\d+) +\| (?P<texts>\w+) +\| (?P<requests>\d+) +\| (?P<errors>\d+) +\|")


def table_rows(output: str) -> list[dict]:
    return [match.groupdict() for line in output.splitlines() if (match := ROW.match(line))]


def test_bench_prints_the_table_counts_requests_and_writes_json(tiny_server, tmp_path, capsys):
    url, version = tiny_server
    data = tmp_path / "texts.txt"
    data.write_text("这家酒店很好\n\n房间太小了,隔音很差\n书的内容很精彩\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--url", url, "--model", MODEL, "--data", str(data), "--concurrency", "1,4",
        "--duration", "1", "--warmup", "0.2", "--engine-dir", str(version), "--json", str(out),
    ])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "bench: 3 text(s) (all), concurrency 1,4, 1 s per level" in output
    assert "| target" in output and "p50 ms" in output and "req/s" in output
    rows = table_rows(output)
    assert [(row["target"], row["conc"]) for row in rows] == [
        ("engine (in-process)", "1"), ("engine (in-process)", "4"), ("bertserve", "1"), ("bertserve", "4"),
    ]
    assert all(int(row["requests"]) > 0 and row["errors"] == "0" for row in rows)
    # The run has engine and server at c=1, so the latency target is evaluated (PASS or MISS).
    assert re.search(r"^(PASS|MISS)  c=1 p50 <= 1\.15 x engine \+ 1 ms \(all texts\): ", output, re.M)

    document = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["target"], r["concurrency"], r["errors"]) for r in document["results"]] == [
        ("engine (in-process)", 1, 0), ("engine (in-process)", 4, 0), ("bertserve", 1, 0), ("bertserve", 4, 0),
    ]
    assert [int(row["requests"]) for row in rows] == [r["requests"] for r in document["results"]]
    assert document["settings"]["model"] == MODEL and document["environment"]["cpu_count"] >= 1
    assert document["targets"][0]["name"].startswith("c=1 p50")


def test_requests_bound_is_exact_and_server_cpu_is_read(tiny_server, tmp_path, capsys):
    import os

    url, _ = tiny_server
    out = tmp_path / "bench.json"
    # Our own pid stands in for the server's: any live process has a CPU time to read.
    code = main(["bench", "--url", url, "--model", MODEL, "--concurrency", "4", "--requests", "37",
                 "--duration", "60", "--warmup", "0", "--texts", "median", "--server-pid", str(os.getpid()),
                 "--json", str(out)])
    output = capsys.readouterr().out
    assert code == 0, output
    [row] = table_rows(output)
    assert row == {"target": "bertserve", "conc": "4", "texts": "median", "requests": "37", "errors": "0"}
    [result] = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert result["requests"] == 37 and result["server_cpu_ms"] >= 0


def test_unknown_model_counts_errors_and_exits_1(tiny_server, capsys):
    url, _ = tiny_server
    code = main(["bench", "--url", url, "--model", "nope", "--concurrency", "1", "--requests", "3", "--warmup", "0"])
    output = capsys.readouterr().out
    assert code == 1
    [row] = table_rows(output)
    assert row["requests"] == "0" and row["errors"] == "3"
    assert "first error: HTTP 404: " in output and "nope" in output
    assert "bench: 3 request(s) failed" in output


def test_server_down_is_counted_not_a_traceback(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["bench", "--url", url, "--model", MODEL, "--concurrency", "2", "--requests", "2", "--warmup", "0"])
    output = capsys.readouterr().out
    assert code == 1
    assert "first error: cannot connect to" in output


@pytest.mark.parametrize("argv, message", [
    (["--url", "http://example.com:8501"], "bench only loads servers on this machine"),
    (["--url", "https://127.0.0.1:8501"], "give an http:// URL"),
    (["--url", "http://127.0.0.1:1", "--data", "/no/such/file.tsv"], "--data /no/such/file.tsv does not exist"),
    (["--url", "http://127.0.0.1:1", "--peers", "naive"], "--peers naive needs --run RUN_FOLDER"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    code = main(["bench", "--model", MODEL, "--concurrency", "1", "--requests", "1", "--warmup", "0", *argv])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("bertserve: error: ") and message in error and "\n" not in error


@pytest.mark.parametrize("flag, value", [("--concurrency", "0"), ("--concurrency", "a,b"), ("--peers", "triton"),
                                         ("--duration", "-1")])
def test_bad_flags_are_argparse_errors(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--url", "http://127.0.0.1:1", "--model", MODEL, flag, value])
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err
