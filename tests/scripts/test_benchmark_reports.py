"""The pass marks and tables the benchmark scripts print are arithmetic on measured numbers: check
that arithmetic on made-up numbers (benchmarks/issue10.py's targets, benchmarks/protocols_summary.py)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_issue10_judges_one_client_on_the_best_raw_block_and_throughput_on_the_best_raw_batch():
    issue10 = load_script("issue10")
    interleaved = {"served": {"p50_ms": 20.0, "cpu_ms": 40.4}, "raw default": {"p50_ms": 18.5, "cpu_ms": 39.0},
                   "raw fp32": {"p50_ms": 17.8, "cpu_ms": 40.0}}
    row = lambda p50, rate, server, client: {"p50_ms": p50, "throughput": rate, "server_cpu_ms": server, "client_cpu_ms": client}  # noqa: E731
    summary = {"raw openvino fp32": {1: row(18.0, 50, math.nan, 40.0), 32: row(600, 40.0, math.nan, 45.0)},
               "raw openvino default": {32: row(600, 44.0, math.nan, 45.0)},
               "bertserve defaults": {1: row(21.0, 45, 41.0, 0.3), 32: row(500, 37.0, 40.0, 0.2)}}
    checks = {check["check"].split(" (")[0] + (" blocks" if "interleaved" in check["check"] else ""): check
              for check in issue10.targets(summary, interleaved)}
    latency = checks["served p50 at 1 client <= 1.10 x raw + 0.6 ms blocks"]
    assert math.isclose(latency["limit"], 1.10 * 17.8 + 0.6) and latency["result"] == "PASS"  # 20.0 <= 20.18
    cpu = checks["server CPU per request at 1 client <= engine CPU per call + 0.5 ms blocks"]
    assert cpu["limit"] == 40.5 and cpu["result"] == "PASS"  # the fastest raw block's CPU, not the cheapest
    throughput = checks["throughput at 32 clients >= 0.85 x raw in batches of 32"]
    assert math.isclose(throughput["limit"], 0.85 * 44.0) and throughput["result"] == "MISS"  # 37.0 < 37.4
    levels = checks["served p50 at 1 client <= 1.10 x raw + 0.6 ms"]
    assert math.isclose(levels["limit"], 1.10 * 18.0 + 0.6) and levels["result"] == "MISS"  # 21.0 > 20.4


def test_protocols_summary_takes_medians_over_rounds_and_counts_rounds_won(tmp_path, capsys):
    summary = load_script("protocols_summary")
    rates = {"rest": [40.0, 30.0, 50.0], "grpc": [41.0, 29.0, 52.0]}
    for protocol, values in rates.items():
        for round_number, rate in enumerate(values, start=1):
            result = {"p50_ms": 800.0, "throughput": rate, "server_cpu_ms": 50.0 + round_number,
                      "client_cpu_ms": 0.2, "errors": 0}
            (tmp_path / f"round-{round_number}-{protocol}-32.json").write_text(json.dumps({"results": [result]}))
    assert summary.main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "| grpc | 32 | 3 | 800.0 / 800.0 / 800.0 | 800.00 | 41.0 / 29.0 / 52.0 | 41.0 | 52.00 | 0.200 |" in out
    assert ("grpc vs rest at 32 client(s): throughput median 41.00 vs 40.00 (1.02x): not slower; "
            "grpc ahead in 2 of 3 rounds") in out
    saved = json.loads((tmp_path / "protocols-summary.json").read_text())
    assert saved["rest@32"]["throughput"] == [40.0, 30.0, 50.0]


def test_protocols_summary_says_when_there_is_nothing_to_read(tmp_path, capsys):
    assert load_script("protocols_summary").main(tmp_path) == 1
    assert "no round-*.json in" in capsys.readouterr().out


def test_served_accuracy_scores_the_whole_test_split_and_its_leakage_free_part(tmp_path, capsys, monkeypatch):
    import sys

    import pytest

    served_accuracy = load_script("served_accuracy")
    data = tmp_path / "data"
    data.mkdir()
    train = [("1", "很好"), ("0", "很差"), ("1", "喜欢"), ("0", "失望")]
    test = [("1", "很好"), ("0", "很差"), ("1", "满意"), ("0", "退货")]  # the first two also occur in train
    dev = [("1", "很好"), ("0", "一般般")]  # the first also occurs in train
    for split, rows in (("train", train), ("dev", dev), ("test", test)):
        (data / f"{split}.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "labels.json").write_text(json.dumps({"labels": ["negative", "positive"], "values": ["0", "1"]}))
    predicted = ["positive", "positive", "positive", "positive"]  # right on 2 of 4; on 1 of the 2 leakage-free
    predictions = tmp_path / "test.predictions.tsv"
    predictions.write_text("label\ttext_a\tpredicted_label\n" + "".join(f"{l}\t{t}\t{p}\n" for (l, t), p in zip(test, predicted)),
                           encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["served_accuracy", str(data), str(predictions), str(run)])
    served_accuracy.main()
    assert capsys.readouterr().out == "test 50.00 % (4 texts), leakage-free 50.00 % (2 texts)\n"
    predictions.write_text("label\ttext_a\tpredicted_label\n1\t别的\tpositive\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not the test split"):
        served_accuracy.main()
    dev_predictions = tmp_path / "dev.predictions.tsv"
    dev_predictions.write_text("label\ttext_a\tpredicted_label\n1\t很好\tpositive\n0\t一般般\tpositive\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["served_accuracy", str(data), str(dev_predictions), str(run), "--split", "dev"])
    served_accuracy.main()
    assert capsys.readouterr().out == "dev 50.00 % (2 texts), leakage-free 0.00 % (1 texts)\n"
