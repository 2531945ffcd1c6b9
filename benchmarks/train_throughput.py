"""Training throughput: bertserve's loop vs a plain Hugging Face `Trainer`, side by side.

Same model (m3e-small by default), same examples, same ids (bertserve's tokenizer), same settings
(batch 32, lr 5e-5, 10 % warm-up, max length 128, AdamW, bf16 autocast where the CPU has it, one
epoch over N examples). The Trainer gets the usual dynamic padding (`DataCollatorWithPadding`); its
optional `group_by_length` is left off, as in a plain set-up. Rounds alternate (ours, theirs, ours,
theirs, ...) so that a noisy neighbour hurts both alike; the ratio of medians is the result.

    .venv/bin/pip install accelerate   # the Trainer needs it (bench extra: pip install -e .[bench])
    .venv/bin/python benchmarks/train_throughput.py --data ../shared/data/chnsenticorp --examples 960 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def run_ours(args, output: Path) -> float:
    from bertserve.training.config import build_config
    from bertserve.training.loop import train

    config = build_config(flags=dict(
        data=args.data, pretrained=args.pretrained, output=str(output), epochs=1, batch_size=args.batch_size,
        learning_rate=5e-5, max_seq_length=args.max_seq_length, max_train_examples=args.examples,
        max_eval_examples=32, precision=args.precision, seed=args.seed), environ={})
    metrics = train(config)
    return args.examples / metrics["train_seconds"]


def run_trainer(args, output: Path) -> float:
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast, Trainer, TrainingArguments

    from bertserve.pretrained import sources as pretrained
    from bertserve.data.datasets import load_dataset, parse_label_names
    import random

    dataset = load_dataset(args.data, label_names=parse_label_names(None), seed=args.seed)
    examples = list(dataset.splits["train"].examples)
    random.Random(args.seed).shuffle(examples)  # the same N examples as ours
    examples = examples[: args.examples]
    source = pretrained.resolve(args.pretrained)
    tokenizer = pretrained.load_tokenizer(source, args.max_seq_length)
    index = {label: position for position, label in enumerate(dataset.labels)}
    ids = tokenizer.token_ids([example.text for example in examples])
    rows = [{"input_ids": row, "attention_mask": [1] * len(row), "token_type_ids": [0] * len(row),
             "labels": index[example.label]} for row, example in zip(ids, examples)]
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer._rust, pad_token="[PAD]")
    model = pretrained.load_classifier(source, dataset.label_names)
    training_args = TrainingArguments(
        output_dir=str(output), per_device_train_batch_size=args.batch_size, num_train_epochs=1,
        learning_rate=5e-5, warmup_steps=0.1, weight_decay=0.01, bf16=args.precision == "bf16",
        use_cpu=not torch.cuda.is_available(), eval_strategy="no", save_strategy="no", report_to=[],
        logging_strategy="no", dataloader_num_workers=0, seed=args.seed, disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=rows,
                      data_collator=DataCollatorWithPadding(hf_tokenizer))
    started = time.perf_counter()
    trainer.train()
    return args.examples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/chnsenticorp")
    parser.add_argument("--pretrained", default="m3e-small")
    parser.add_argument("--examples", type=int, default=960)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"bertserve": [], "hf_trainer": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            for name, runner in (("bertserve", run_ours), ("hf_trainer", run_trainer)):
                speed = runner(args, Path(scratch) / f"{name}-{round_number}")
                results[name].append(speed)
                print(f"round {round_number + 1} {name:<10} {speed:7.2f} examples/s", flush=True)
    ours, theirs = statistics.median(results["bertserve"]), statistics.median(results["hf_trainer"])
    summary = {"examples": args.examples, "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
               "precision": args.precision, "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
               "rounds": results, "bertserve_examples_per_second": ours, "hf_trainer_examples_per_second": theirs,
               "ratio_ours_over_theirs": ours / theirs}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
