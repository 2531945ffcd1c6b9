"""Cold start and memory of `bertserve serve`: for each model base path, start a fresh server
process, time process start -> first `GET /readyz` 200, send one prediction (and then 50 more),
and read the server's resident memory (VmRSS, and VmHWM = peak) from /proc. Median of --repeats.

    .venv/bin/python benchmarks/cold_start.py m3e-small=$WORK/models/m3e bert-base=$WORK/models/bert-base

Prints a Markdown table; --json writes the raw numbers. Each base path must hold export version
folders (`bertserve export`); the newest one is served. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bertserve.bench.peers import free_port, stop_process_group  # noqa: E402

BODY = json.dumps({"instances": ["这家酒店的位置很好,离地铁站很近,房间干净,服务员态度也不错,早餐种类比较多,下次还会再来住。"]},
                  ensure_ascii=False).encode()


def rss_mib(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return values


def get(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def measure(name: str, base_path: Path, timeout: float = 120.0) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bertserve", "serve", "--model_name", name, "--model_base_path", str(base_path),
               "--rest_api_port", str(port), "--port", "0", "--access_log", "off"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while get(f"{url}/readyz") != 200:
            if process.poll() is not None:
                raise SystemExit(f"cold_start: the server for {base_path} exited with {process.returncode}")
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"cold_start: {base_path} not ready within {timeout:.0f} s")
            time.sleep(0.01)
        ready = time.perf_counter() - started
        idle = rss_mib(process.pid)
        if get(f"{url}/v1/models/{name}:predict", BODY) != 200:
            raise SystemExit(f"cold_start: the first prediction from {base_path} failed")
        first = time.perf_counter() - started
        after_one = rss_mib(process.pid)
        for _ in range(50):
            get(f"{url}/v1/models/{name}:predict", BODY)
        after_many = rss_mib(process.pid)
        return {"ready_s": ready, "first_answer_s": first, "rss_ready_mib": idle["VmRSS"],
                "rss_after_1_mib": after_one["VmRSS"], "rss_after_51_mib": after_many["VmRSS"],
                "peak_rss_mib": after_many["VmHWM"]}
    finally:
        stop_process_group(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=BASE_PATH (model base path with export version folders)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for item in args.models:
        name, _, base = item.partition("=")
        if not base or not Path(base).is_dir():
            parser.error(f"expected NAME=BASE_PATH with an existing folder, got {item!r}")
        runs = [measure(name, Path(base)) for _ in range(args.repeats)]
        results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        results[name]["runs"] = runs
    print("| model | process start -> /readyz 200 | -> first answer | RSS ready | RSS after 1 | RSS after 51 | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['ready_s']:.2f} s | {r['first_answer_s']:.2f} s | {r['rss_ready_mib']:.0f} MiB | "
              f"{r['rss_after_1_mib']:.0f} MiB | {r['rss_after_51_mib']:.0f} MiB | {r['peak_rss_mib']:.0f} MiB |")
    print(f"median of {args.repeats}; load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
