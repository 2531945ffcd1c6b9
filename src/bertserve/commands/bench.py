"""`bertserve bench`: load a running server with real texts and compare it, in the same run, with
the engine in-process and with peer servers on the same model (see `bertserve.bench`)."""

from __future__ import annotations

import argparse

HELP = "load-test a server: p50/p90/p99 and throughput vs the engine in-process and peer servers"
DESCRIPTION = """Replay real texts (ChnSentiCorp dev, or any file) against a running server with closed-loop
clients at each --concurrency (raw HTTP/1.1 keep-alive connections, loopback only), and print
p50/p90/p99 latency and throughput. In the same run, optionally:

  --protocols rest,grpc,v2,v2grpc
                             the server over TF Serving's REST API (rest, the default) and/or its
                             gRPC API (grpc: Predict with a DT_STRING text at --grpc-url) and/or the
                             Open Inference Protocol over REST (v2: /v2/models/M/infer) and/or over
                             gRPC (v2grpc: ModelInfer with a BYTES text at --grpc-url), same texts
  --engine-dir VERSION_DIR   the engine's own limit: the same texts in batches of
                             min(concurrency, --max-batch-size) through the runtime in-process
  --peers naive,ray,litserve other servers on the same model, started as subprocesses:
                             naive    = HF transformers pipeline behind FastAPI (needs --run),
                             ray      = Ray Serve with @serve.batch,
                             litserve = LitServe with its own batching; both on the same export
                                        and engine as bertserve (OpenVINO for the default export;
                                        need --engine-dir and `bash benchmarks/peers/setup_peer_venv.sh`)

The load generator shares the CPU with the servers it measures; its own CPU cost per request is
a column; with --server-pid the server's CPU per request is another (less disturbed by other
load on the machine than latency). Run benchmarks on an otherwise idle machine and report
`uptime` with them.

examples:
  bertserve bench --url http://127.0.0.1:8501 --model chnsenticorp --data ../shared/data/chnsenticorp
  bertserve bench --url http://127.0.0.1:8501 --model m --concurrency 1 --texts median --engine-dir models/m/1
  bertserve bench --url http://127.0.0.1:8501 --model m --concurrency 1,8,32,64 --duration 10 \\
      --engine-dir models/m/1 --run runs/m --peers naive,ray,litserve --json bench.json
  bertserve bench --url http://127.0.0.1:8501 --model m --concurrency 1,4 --requests 200
  bertserve bench --url http://127.0.0.1:8501 --model m --protocols rest,grpc --grpc-url 127.0.0.1:8500
  bertserve bench --url http://127.0.0.1:8501 --model m --protocols rest,v2 --concurrency 1,8
  bertserve bench --url http://127.0.0.1:8501 --model m --protocols rest,grpc,v2,v2grpc --grpc-url 127.0.0.1:8500
"""


def _concurrency_list(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated client counts like 1,8,32, got {text!r}") from None
    if not levels or min(levels) < 1 or max(levels) > 1024:
        raise argparse.ArgumentTypeError(f"client counts lie in 1-1024, got {text!r}")
    return levels


def _peer_list(text: str) -> tuple[str, ...]:
    from bertserve.bench.peers import PEER_NAMES

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in PEER_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEER_NAMES)}")
    return names


PROTOCOLS = ("rest", "grpc", "v2", "v2grpc")
GRPC_TARGETS = {"grpc": "bertserve-grpc", "v2grpc": "bertserve-v2grpc"}  # gRPC protocol -> its row in the table


def _protocol_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"protocols are {', '.join(PROTOCOLS)} (comma-separated), got {text!r}")
    return names


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def served_engine(url: str, model: str) -> dict:
    """The engine settings the server reports in its metadata (`bertserve.engine`), {} if none."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/v1/models/{model}/metadata", timeout=10) as response:
            engine = json.loads(response.read()).get("bertserve", {}).get("engine", {})
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return {}
    return engine if isinstance(engine, dict) else {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="server to load, e.g. http://127.0.0.1:8501 (loopback only)")
    parser.add_argument("--model", required=True, help="model name in /v1/models/NAME:predict")
    parser.add_argument("--protocols", type=_protocol_list, default=("rest",),
                        help="which APIs of the server to load, comma-separated: rest, grpc, v2, v2grpc (default: rest)")
    parser.add_argument("--grpc-url", help="gRPC address for --protocols grpc and v2grpc (default: --url's host, port 8500)")
    parser.add_argument("--grpc-channels", type=_non_negative_int, default=1,
                        help="gRPC channels the clients share (default: 1, how gRPC clients are meant to be used: "
                             "calls multiplexed on one HTTP/2 connection); 0: one channel per client")
    parser.add_argument("--data", help="TSV with text_a, text file (one per line) or dataset folder (dev.tsv); default: built-in reviews")
    parser.add_argument("--texts", choices=("all", "median"), default="all",
                        help="all: replay every text in order (default); median: only the median-length text")
    parser.add_argument("--concurrency", type=_concurrency_list, default=(1, 8, 32, 64),
                        help="closed-loop clients per level, comma-separated (default: 1,8,32,64)")
    parser.add_argument("--duration", type=_positive_float, default=10.0, help="seconds per level (default: 10)")
    parser.add_argument("--requests", type=_positive_int, default=None,
                        help="stop a level after this many answers (whichever of --duration/--requests comes first)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level (default: 1)")
    parser.add_argument("--engine-dir", help="export version folder: also measure the engine in-process (no HTTP)")
    parser.add_argument("--run", help="run folder (torch model) for the naive peer")
    parser.add_argument("--peers", type=_peer_list, default=(), help="peers to start and load too: naive, ray, litserve")
    parser.add_argument("--engine-precision", choices=("fp32", "bf16", "default"), default=None,
                        help="OpenVINO precision of the in-process engine and the ray/litserve peers "
                             "(default: the precision the server at --url reports it chose, else the export's)")
    parser.add_argument("--max-batch-size", type=_positive_int, default=8,
                        help="batch cap for the engine reference and the ray/litserve peers; match the server's (default: 8)")
    parser.add_argument("--p50-budget-ms", type=_positive_float, default=None,
                        help="also check the server's p50 at concurrency 1 against this budget")
    parser.add_argument("--server-pid", type=_positive_int, default=None,
                        help="process id of the server at --url: also report its CPU time per request (Linux)")
    parser.add_argument("--json", help="also write settings, machine, results and targets to this JSON file")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    from pathlib import Path

    from bertserve.bench import report
    from bertserve.bench.engine import engine_level
    from bertserve.bench.loadgen import LevelResult, Target, run_level
    from bertserve.bench.peers import start_peer
    from bertserve.bench.texts import load_texts, select
    from bertserve.errors import ConfigError

    texts = select(load_texts(args.data), args.texts)
    server = Target("bertserve", args.url.rstrip("/"), f"/v1/models/{args.model}:predict")
    server.host_port  # refuses a non-loopback URL before anything starts
    if args.warmup < 0:
        raise ConfigError("--warmup must be >= 0")
    duration = args.duration
    print(f"bench: {len(texts)} text(s) ({args.texts}), concurrency {','.join(map(str, args.concurrency))}, "
          f"{duration:g} s per level{f' or {args.requests} requests' if args.requests else ''}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results: list[LevelResult] = []
    engine = served_engine(server.url, args.model)
    precision = args.engine_precision
    if precision is None and engine.get("engine") == "openvino" and engine.get("precision") in ("fp32", "bf16"):
        precision = engine["precision"]  # the raw engine and the peers run what the server chose
    if engine:
        print(f"bench: the server's engine: {', '.join(f'{k} {v}' for k, v in engine.items() if k != 'tuning')}"
              f"{' (' + engine['tuning']['source'] + ')' if isinstance(engine.get('tuning'), dict) else ''}", flush=True)

    def show(result: LevelResult) -> None:
        results.append(result)
        note = f"  first error: {result.first_error}" if result.first_error else ""
        print(f"  {result.target:<20} c={result.concurrency:<3} {result.requests:>6} ok {result.errors:>4} errors  "
              f"p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  {result.throughput:8.1f}/s{note}", flush=True)

    def load(target: Target, pid: int | None = None) -> None:
        for concurrency in args.concurrency:
            show(asyncio.run(run_level(target, texts, concurrency, duration, args.requests, args.warmup, args.texts, pid)))

    if args.engine_dir:
        from bertserve.inference.model import ExportedModel

        model = ExportedModel.load(Path(args.engine_dir), verify=False,
                                   **({"inference_precision": precision} if precision else {}))
        for concurrency in args.concurrency:
            show(engine_level(model, texts, concurrency, args.max_batch_size, duration, args.requests, args.warmup, args.texts))
        del model
    if "rest" in args.protocols:
        load(server, args.server_pid)
    if "v2" in args.protocols:  # the Open Inference Protocol over REST, same port, same texts
        load(Target("bertserve-v2", server.url, f"/v2/models/{args.model}/infer", protocol="v2"), args.server_pid)
    for protocol in (name for name in GRPC_TARGETS if name in args.protocols):
        from bertserve.bench.grpc_load import GrpcTarget, run_grpc_level

        grpc_target = GrpcTarget(GRPC_TARGETS[protocol], args.grpc_url or f"{server.host_port[0]}:8500", args.model, protocol,
                                 args.grpc_channels)
        for concurrency in args.concurrency:
            show(asyncio.run(run_grpc_level(grpc_target, texts, concurrency, duration, args.requests, args.warmup,
                                            args.texts, args.server_pid)))
    for peer in args.peers:
        print(f"bench: starting peer {peer} ...", flush=True)
        with start_peer(peer, run_dir=Path(args.run) if args.run else None,
                        export_dir=Path(args.engine_dir) if args.engine_dir else None,
                        max_batch_size=args.max_batch_size, precision=precision) as target:
            load(target)

    print()
    print(report.format_table(results))
    checks = report.check_targets(results, server.name, args.p50_budget_ms)
    if checks:
        print()
        for check in checks:
            print(check.line())
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        settings = {key: value for key, value in vars(args).items() if not key.startswith("_")}
        report.write_json(args.json, results, checks, settings)
        print(f"wrote {args.json}")
    errors = sum(result.errors for result in results)
    if errors:
        print(f"bench: {errors} request(s) failed; see 'first error' above", flush=True)
        return 1
    return 0
