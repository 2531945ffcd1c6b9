"""The bench report: the Markdown table and the targets computed from side-by-side results."""

from __future__ import annotations

from bertserve.bench.loadgen import LevelResult
from bertserve.bench.report import ENGINE, check_targets, format_table


def result(target: str, concurrency: int, p50: float, p99: float, throughput: float) -> LevelResult:
    return LevelResult(target, concurrency, "all", requests=100, p50_ms=p50, p90_ms=p50, p99_ms=p99, throughput=throughput)


def test_table_has_one_row_per_result():
    table = format_table([result("bertserve", 1, 2.5, 4.0, 400.0)]).splitlines()
    assert table[0].split("|")[1:-1] == [
        " target    ", " conc ", " texts ", " requests ", " errors ", " p50 ms ", " p90 ms ", " p99 ms ", " req/s ",
        " client CPU ms/req ", " server CPU ms/req ",
    ]
    assert table[2].split("|")[1:-1] == [
        " bertserve ", " 1    ", " all   ", " 100      ", " 0      ", " 2.50   ", " 2.50   ", " 4.00   ", " 400.0 ",
        " -                 ", " -                 ",
    ]


def test_targets_pass_and_miss():
    results = [
        result(ENGINE, 1, 4.0, 5.0, 250.0), result(ENGINE, 32, 100.0, 120.0, 300.0),
        result("bertserve", 1, 5.5, 7.0, 180.0), result("bertserve", 32, 110.0, 150.0, 270.0),
        result("naive", 32, 1000.0, 2000.0, 60.0),
    ]
    lines = [check.line() for check in check_targets(results, "bertserve", p50_budget_ms=5.0)]
    assert lines == [
        "PASS  c=1 p50 <= 1.15 x engine + 1 ms (all texts): 5.50 ms vs limit 5.60 ms (engine 4.00 ms)",
        "PASS  c=32 throughput >= 0.85 x engine batched: 270.0 vs 300.0 texts/s = 0.90 x",
        "PASS  c=32 throughput >= 3 x naive peer: 270.0 vs 60.0 req/s = 4.50 x",
        "PASS  c=32 p99 <= 1/3 of naive peer: 150.0 vs 2000.0 ms = 0.07 x",
        "MISS  c=1 p50 <= 5 ms: 5.50 ms (all texts)",
    ]


def test_no_targets_without_references():
    assert check_targets([result("bertserve", 1, 5.0, 6.0, 100.0)], "bertserve") == []
