"""`bertserve bench --protocols rest,grpc`: both APIs of one server loaded in one run, bounded."""

from __future__ import annotations

import json

import pytest

from bertserve.cli import main
from grpc_harness import grpc_base, grpc_server  # noqa: F401 (fixtures)


def test_bench_loads_rest_and_grpc_in_one_run(grpc_server, tmp_path, capsys):
    report = tmp_path / "bench.json"
    code = main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "rest,grpc",
                 "--grpc-url", grpc_server.grpc_target, "--concurrency", "1,2", "--requests", "6",
                 "--duration", "30", "--warmup", "0", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    results = json.loads(report.read_text())["results"]
    rows = [(r["target"], r["concurrency"], r["requests"], r["errors"]) for r in results]
    assert rows == [("bertserve", 1, 6, 0), ("bertserve", 2, 6, 0), ("bertserve-grpc", 1, 6, 0), ("bertserve-grpc", 2, 6, 0)]


def test_a_grpc_error_is_counted_and_shown(grpc_server, capsys):
    code = main(["bench", "--url", grpc_server.url, "--model", "nope", "--protocols", "grpc",
                 "--grpc-url", grpc_server.grpc_target, "--concurrency", "1", "--requests", "2", "--warmup", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "first error: gRPC NOT_FOUND: Servable not found for request: Latest(nope)" in out


def test_unknown_protocol_and_remote_grpc_address_are_refused(grpc_server, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "rest,v9"])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "argument --protocols: protocols are rest, grpc" in error and "got 'rest,v9'" in error
    assert main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "grpc",
                 "--grpc-url", "example.com:8500", "--requests", "1"]) == 2
    assert "bench only loads servers on this machine" in capsys.readouterr().err
