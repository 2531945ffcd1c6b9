"""What one OpenVINO engine call costs around the inference itself, measured on one export.

The served request path at one client spends most of its time in the engine call; this script
times the ways of handing that call its inputs, interleaved in one process (round robin, the
order shuffled each round) so that a noisy minute hurts every way alike:

- `infer(feed)`: OpenVINO copies each numpy input into its own tensor first (bertserve's path
  until 2026-11-30);
- `infer(feed, share_inputs=True)`: OpenVINO reads the numpy buffers in place;
- `set_input_tensor` + `infer()`: the buffers wrapped as tensors by hand, OpenVINO's Python input
  dispatching skipped (bertserve's path now, `OpenVinoEngine.run`);

and the two ways of tokenizing one text with the Rust tokenizer (`encode` vs `encode_batch`).
Then the same engine call back to back vs with the caller idle for `--gap-ms` between calls, as a
server is between one answer and the next request (HTTP round trip, parsing, tokenizing): what an
idle gap costs in CPU (OpenVINO's worker thread keeps running for a while after each call) and in
the next call's time.
Prints wall and CPU time per call (CPU counts every thread of this process: OpenVINO's second
thread spins while the first copies), the CPU model and the load average.

    .venv/bin/python benchmarks/engine_call.py EXPORT_VERSION_FOLDER [--rounds 20] [--calls 50]

Not a test; results go in docs/benchmarks.md ("Issue 10").
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bertserve.inference.engines import OpenVinoEngine
from bertserve.inference.model import ExportedModel
from bertserve.inference.tuning import cpu_description

# A hotel review of the median ChnSentiCorp length (75 characters), written for this benchmark.
TEXT = ("这家酒店位置很好，离地铁站只有五分钟，房间干净整洁，床也很舒服。前台服务热情，办理入住很快。"
        "早餐品种少了一点，价格略贵，总体还不错，下次出差还会再来。")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="an OpenVINO export version folder (bertserve export)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default: 20)")
    parser.add_argument("--calls", type=int, default=50, help="calls per way per round (default: 50)")
    parser.add_argument("--gap-ms", type=float, default=1.5, help="idle time between calls in the gap test (default: 1.5)")
    args = parser.parse_args()

    model = ExportedModel.load(Path(args.export), verify=False, inference_precision="fp32")
    engine = model.engine
    if not isinstance(engine, OpenVinoEngine):
        raise SystemExit(f"{args.export}: not an OpenVINO export (engine {engine.kind}); this script times OpenVINO calls")
    import openvino

    request = engine.compiled.create_infer_request()
    encoded = model.tokenizer.encode([TEXT]).as_dict()
    feed = {name: np.ascontiguousarray(encoded[name], dtype=np.int64) for name in engine.input_names}

    def wrapped_by_hand() -> None:
        for index, name in enumerate(engine.input_names):
            request.set_input_tensor(index, openvino.Tensor(feed[name], shared_memory=True))
        request.infer()

    rust = model.tokenizer._rust  # the Rust tokenizer bertserve's TextTokenizer wraps
    ways: dict[str, Callable[[], object]] = {
        "infer(feed): copies the inputs": lambda: request.infer(feed),
        "infer(feed, share_inputs=True)": lambda: request.infer(feed, share_inputs=True),
        "set_input_tensor + infer()": wrapped_by_hand,
        "tokenize: encode_batch([text])": lambda: rust.encode_batch([TEXT]),
        "tokenize: encode(text)": lambda: rust.encode(TEXT),
    }
    for way in ways.values():  # warm every path
        for _ in range(5):
            way()
    load_before = os.getloadavg()
    timings = time_interleaved(ways, args.rounds, args.calls)
    machine = cpu_description()
    print(f"CPU {machine['model']}, {machine['cores']} cores, flags {' '.join(machine['flags'])}; "
          f"load {load_before} -> {os.getloadavg()}")
    print(f"export {args.export}: {len(model.tokenizer.token_ids([TEXT])[0])} tokens, "
          f"{args.rounds} rounds x {args.calls} calls per way")
    print_timings(timings)

    gap_name = f"{args.gap_ms:g} ms idle after each call"
    def call() -> None:
        engine.run(encoded)

    timings = time_interleaved({"back to back": call, gap_name: call}, args.rounds, args.calls,
                               idle_after={gap_name: args.gap_ms / 1000})
    print("engine.run (bertserve's call) back to back vs with the caller idle in between (the idle time itself costs no CPU):")
    print_timings(timings)
    return 0


def time_interleaved(ways: dict[str, Callable[[], object]], rounds: int, calls: int,
                     idle_after: dict[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """Each way `calls` times per round, the ways in a new random order each round; with
    `idle_after`, that way's caller sleeps so many seconds after each call (not in its wall time).
    Returns, per way, the median wall time and the process CPU time per call, in microseconds."""
    idle_after = idle_after or {}
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, float] = dict.fromkeys(ways, 0.0)
    for _ in range(rounds):
        order = list(ways)
        random.shuffle(order)
        for name in order:
            cpu_started = time.process_time()
            for _ in range(calls):
                started = time.perf_counter()
                ways[name]()
                wall[name].append((time.perf_counter() - started) * 1e6)
                if idle_after.get(name):
                    time.sleep(idle_after[name])
            cpu[name] += time.process_time() - cpu_started
    return {name: (statistics.median(wall[name]), cpu[name] * 1e6 / len(wall[name])) for name in ways}


def print_timings(timings: dict[str, tuple[float, float]]) -> None:
    for name, (median_us, cpu_us) in timings.items():
        print(f"  {name:<34} median {median_us:9.1f} us  CPU {cpu_us:9.1f} us per call")


if __name__ == "__main__":
    raise SystemExit(main())
