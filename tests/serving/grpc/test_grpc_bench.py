"""`bertserve bench --protocols rest,grpc,v2grpc`: the APIs of one server loaded in one run, bounded."""

from __future__ import annotations

import json

import pytest

from bertserve.cli import main
from grpc_harness import grpc_base, grpc_server  # noqa: F401 (fixtures)


def bench_document(server, tmp_path, capsys, protocols: str, concurrency: str, requests: int) -> dict:
    """Run `bertserve bench` against `server` with the given bounds; its --json document."""
    report = tmp_path / "bench.json"
    code = main(["bench", "--url", server.url, "--model", "tiny", "--protocols", protocols,
                 "--grpc-url", server.grpc_target, "--concurrency", concurrency, "--requests", str(requests),
                 "--duration", "30", "--warmup", "0", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(report.read_text())


def rows_of(document: dict) -> list[tuple]:
    return [(r["target"], r["concurrency"], r["requests"], r["errors"]) for r in document["results"]]


def test_bench_loads_rest_and_grpc_in_one_run(grpc_server, tmp_path, capsys):
    document = bench_document(grpc_server, tmp_path, capsys, "rest,grpc", "1,2", 6)
    assert rows_of(document) == [
        ("bertserve", 1, 6, 0), ("bertserve", 2, 6, 0), ("bertserve-grpc", 1, 6, 0), ("bertserve-grpc", 2, 6, 0)]


def test_bench_loads_v2_over_grpc_beside_tfserving_grpc(grpc_server, tmp_path, capsys):
    document = bench_document(grpc_server, tmp_path, capsys, "v2grpc,grpc", "2", 5)
    assert rows_of(document) == [("bertserve-grpc", 2, 5, 0), ("bertserve-v2grpc", 2, 5, 0)]  # table order, not flag order
    assert document["settings"]["protocols"] == ["v2grpc", "grpc"]
    calls = grpc_server.metrics.render()[0].decode()
    assert 'protocol="v2-grpc",route="ModelInfer"' in calls  # the calls went to ModelInfer


def test_the_v2grpc_request_is_a_bytes_text_in_raw_input_contents():
    from bertserve.bench.grpc_load import GrpcTarget, request_bytes
    from bertserve.serving.grpc.protos import load

    v2, _ = load("grpc_predict_v2")
    request = v2.ModelInferRequest.FromString(request_bytes(GrpcTarget("t", "127.0.0.1:1", "m", "v2grpc"), "很好"))
    assert request.model_name == "m"
    assert [(i.name, i.datatype, list(i.shape)) for i in request.inputs] == [("text", "BYTES", [1])]
    assert list(request.raw_input_contents) == [len("很好".encode()).to_bytes(4, "little") + "很好".encode()]
    assert [o.name for o in request.outputs] == ["probabilities"]


def test_a_v2grpc_error_is_counted_and_shown(grpc_server, capsys):
    code = main(["bench", "--url", grpc_server.url, "--model", "nope", "--protocols", "v2grpc",
                 "--grpc-url", grpc_server.grpc_target, "--concurrency", "1", "--requests", "2", "--warmup", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "bertserve-v2grpc" in out and "first error: gRPC NOT_FOUND: Servable not found for request: Latest(nope)" in out


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
    assert "argument --protocols: protocols are rest, grpc, v2, v2grpc (comma-separated), got 'rest,v9'" in error
    assert main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "grpc",
                 "--grpc-url", "example.com:8500", "--requests", "1"]) == 2
    assert "bench only loads servers on this machine" in capsys.readouterr().err
    assert main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "v2grpc",
                 "--grpc-url", "example.com:8500", "--requests", "1"]) == 2
    assert "--grpc-url 'example.com:8500': bench only loads servers on this machine" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "opened"), [("1", 1), ("2", 2), ("0", 4)])
def test_grpc_clients_share_channels_as_asked(grpc_server, tmp_path, capsys, monkeypatch, flag, opened):
    import grpc

    from bertserve.bench import grpc_load

    made, open_channel = [], grpc.aio.insecure_channel

    def counting_channel(address, *args, **kwargs):
        made.append(address)
        return open_channel(address, *args, **kwargs)

    monkeypatch.setattr(grpc_load.grpc.aio, "insecure_channel", counting_channel)
    report = tmp_path / "bench.json"
    code = main(["bench", "--url", grpc_server.url, "--model", "tiny", "--protocols", "grpc", "--grpc-url",
                 grpc_server.grpc_target, "--concurrency", "4", "--requests", "8", "--warmup", "0",
                 "--grpc-channels", flag, "--json", str(report)])
    assert code == 0, capsys.readouterr().out
    assert made == [grpc_server.grpc_target] * opened  # 1 and 2: shared round-robin; 0: one per client
    assert rows_of(json.loads(report.read_text())) == [("bertserve-grpc", 4, 8, 0)]


def test_a_negative_channel_count_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["bench", "--url", "http://127.0.0.1:1", "--model", "m", "--protocols", "grpc", "--grpc-channels", "-1"])
    assert raised.value.code == 2
    assert "--grpc-channels: expected 0 or a positive integer, got '-1'" in capsys.readouterr().err
