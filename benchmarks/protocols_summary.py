"""The table of `benchmarks/protocols.sh`: medians over rounds per protocol and client count, the
rounds themselves, and issue 9's check (gRPC not slower than REST: p50 at 1 client, requests/s
at 32 clients), read from WORK/round-<r>-<protocol>-<clients>.json.

    .venv/bin/python benchmarks/protocols_summary.py WORK
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

NAME = re.compile(r"round-(\d+)-(\w+)-(\d+)\.json")


def main(work: Path) -> int:
    rows: dict[tuple[str, int], list[dict]] = {}
    for path in sorted(work.glob("round-*.json")):
        match = NAME.fullmatch(path.name)
        if match:
            result = json.loads(path.read_text(encoding="utf-8"))["results"][0]
            rows.setdefault((match.group(2), int(match.group(3))), []).append(result)
    if not rows:
        print(f"no round-*.json in {work}")
        return 1
    summary = {}
    print("\n| protocol | clients | rounds | p50 ms (each round) | median | req/s (each round) | median | server CPU ms/req | client CPU ms/req |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (protocol, clients), results in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
        p50s = [r["p50_ms"] for r in results]
        rates = [r["throughput"] for r in results]
        server = statistics.median(r["server_cpu_ms"] for r in results)
        client = statistics.median(r["client_cpu_ms"] for r in results)
        summary[f"{protocol}@{clients}"] = {"p50_ms": p50s, "throughput": rates, "server_cpu_ms": server,
                                            "client_cpu_ms": client, "errors": sum(r["errors"] for r in results)}
        print(f"| {protocol} | {clients} | {len(results)} | {' / '.join(f'{v:.1f}' for v in p50s)} | "
              f"{statistics.median(p50s):.2f} | {' / '.join(f'{v:.1f}' for v in rates)} | {statistics.median(rates):.1f} | "
              f"{server:.2f} | {client:.3f} |")
    print()
    for protocol in ("grpc", "v2grpc", "v2"):
        for clients, key, better in ((1, "p50_ms", min), (32, "throughput", max)):
            mine, rest = summary.get(f"{protocol}@{clients}"), summary.get(f"rest@{clients}")
            if not mine or not rest:
                continue
            ours, theirs = statistics.median(mine[key]), statistics.median(rest[key])
            ratio = ours / theirs
            verdict = "not slower" if better(ours, theirs) == ours else "slower"
            wins = sum(better(a, b) == a for a, b in zip(mine[key], rest[key]))
            print(f"{protocol} vs rest at {clients} client(s): {key} median {ours:.2f} vs {theirs:.2f} "
                  f"({ratio:.2f}x): {verdict}; {protocol} ahead in {wins} of {len(mine[key])} rounds")
    (work / "protocols-summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"wrote {work / 'protocols-summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
