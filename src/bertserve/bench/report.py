"""The benchmark's output: one table row per (target, concurrency), the targets of issue 4 with
PASS/MISS computed from numbers measured side by side in this run, and a JSON file with it all.

    print(format_table(results))
    for check in check_targets(results, server="bertserve"):
        print(check.line())
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bertserve.bench.loadgen import LevelResult
from bertserve.files import write_json_atomic

ENGINE = "engine (in-process)"
COLUMNS = ("target", "conc", "texts", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "req/s", "client CPU ms/req", "server CPU ms/req")


def _number(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_table(results: list[LevelResult]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/benchmarks.md)."""
    rows = [
        (r.target, str(r.concurrency), r.texts, str(r.requests), str(r.errors), _number(r.p50_ms), _number(r.p90_ms),
         _number(r.p99_ms), _number(r.throughput, 1), _number(r.client_cpu_ms, 3),
         _number(r.server_cpu_ms, 3))
        for r in results
    ]
    widths = [max(len(column), *(len(row[i]) for row in rows)) if rows else len(column) for i, column in enumerate(COLUMNS)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    name: str
    measured: str  # what was compared, with the numbers
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'MISS'}  {self.name}: {self.measured}"


def _find(results: list[LevelResult], target: str, concurrency: int) -> LevelResult | None:
    for result in results:
        if result.target == target and result.concurrency == concurrency and result.requests > 0:
            return result
    return None


def check_targets(results: list[LevelResult], server: str, p50_budget_ms: float | None = None) -> list[TargetCheck]:
    """The issue's targets that this run has the numbers for (ratios within this run only)."""
    checks: list[TargetCheck] = []
    engine1, server1 = _find(results, ENGINE, 1), _find(results, server, 1)
    if engine1 and server1:
        limit = 1.15 * engine1.p50_ms + 1.0
        checks.append(TargetCheck(
            f"c=1 p50 <= 1.15 x engine + 1 ms ({server1.texts} texts)",
            f"{server1.p50_ms:.2f} ms vs limit {limit:.2f} ms (engine {engine1.p50_ms:.2f} ms)",
            server1.p50_ms <= limit))
    engine32, server32 = _find(results, ENGINE, 32), _find(results, server, 32)
    if engine32 and server32:
        ratio = server32.throughput / engine32.throughput
        checks.append(TargetCheck(
            "c=32 throughput >= 0.85 x engine batched",
            f"{server32.throughput:.1f} vs {engine32.throughput:.1f} texts/s = {ratio:.2f} x", ratio >= 0.85))
    naive32 = _find(results, "naive", 32)
    if naive32 and server32:
        ratio = server32.throughput / naive32.throughput
        checks.append(TargetCheck(
            "c=32 throughput >= 3 x naive peer",
            f"{server32.throughput:.1f} vs {naive32.throughput:.1f} req/s = {ratio:.2f} x", ratio >= 3.0))
        ratio = server32.p99_ms / naive32.p99_ms
        checks.append(TargetCheck(
            "c=32 p99 <= 1/3 of naive peer",
            f"{server32.p99_ms:.1f} vs {naive32.p99_ms:.1f} ms = {ratio:.2f} x", ratio <= 1 / 3))
    ray32 = _find(results, "ray", 32)
    if ray32 and server32:  # no target: a reference point
        checks.append(TargetCheck(
            "c=32 vs Ray Serve (reference, no target)",
            f"throughput {server32.throughput / ray32.throughput:.2f} x, p99 {server32.p99_ms / ray32.p99_ms:.2f} x",
            True))
    if p50_budget_ms is not None and server1:
        checks.append(TargetCheck(
            f"c=1 p50 <= {p50_budget_ms:g} ms", f"{server1.p50_ms:.2f} ms ({server1.texts} texts)",
            server1.p50_ms <= p50_budget_ms))
    return checks


def environment() -> dict:
    """Machine and versions, stored beside the numbers."""
    versions = {}
    for name in ("onnxruntime", "fastapi", "starlette", "uvicorn", "numpy", "tokenizers"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": versions,
    }


def write_json(path: Path | str, results: list[LevelResult], checks: list[TargetCheck], settings: dict) -> None:
    payload = {
        "settings": settings,
        "environment": environment(),
        "results": [result.as_dict() for result in results],
        "targets": [asdict(check) for check in checks],
    }
    write_json_atomic(Path(path), payload)
