"""Served accuracy: score a `bertserve predict` output of a data folder's test split (or dev, with
`--split dev`), whole and leakage-free (the texts that do not also occur in its train split), as
bertserve evaluate would.

    bertserve predict --model-dir models/NAME/1 --input ../shared/data/chnsenticorp/test.tsv --output test.predictions.tsv
    python benchmarks/served_accuracy.py ../shared/data/chnsenticorp test.predictions.tsv runs/NAME

RUN is the run folder the export came from: its labels.json maps the data's raw labels (0/1) to the
names `predict` writes in `predicted_label`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertserve.data.datasets import load_dataset, read_file, unseen_positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="data folder with train and test splits")
    parser.add_argument("predictions", type=Path, help="bertserve predict's output for the split (.tsv)")
    parser.add_argument("run", type=Path, help="the run folder the export came from (for its label names)")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="the split predicted (default: test)")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    examples = dataset.splits[args.split].examples
    labels = json.loads((args.run / "labels.json").read_text(encoding="utf-8"))
    name_of = dict(zip(labels.get("values") or labels["labels"], labels["labels"]))
    rows, _, _ = read_file(args.predictions, label_column="predicted_label")
    if [row.text for row in rows] != [example.text for example in examples]:
        raise SystemExit(f"{args.predictions}: its texts are not the {args.split} split of {args.data}, in order")
    correct = [name_of[example.label] == row.label for example, row in zip(examples, rows)]
    unseen = unseen_positions(examples, dataset.splits["train"].texts)
    free = [correct[index] for index in unseen]
    free_accuracy = f"{100 * sum(free) / len(free):.2f} %" if free else "-"
    print(f"{args.split} {100 * sum(correct) / len(correct):.2f} % ({len(correct)} texts), "
          f"leakage-free {free_accuracy} ({len(free)} texts)")


if __name__ == "__main__":
    main()
