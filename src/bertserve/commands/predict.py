"""`bertserve predict`: label every row of a TSV/CSV/JSONL file, in-process or through a server.

    bertserve predict --input test.tsv --output predictions.tsv --model-dir models/chnsenticorp/1569141360
    bertserve predict --input reviews.csv --output scored.csv --url http://127.0.0.1:8501 --model chnsenticorp

The output has the input's format, every input column and row (in order), one probability column
`p_<label>` per label and `predicted_label`. It is written to a temporary file and renamed into place
when complete, so an interrupted run leaves no partial output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from bertserve.errors import ConfigError

HELP = "label every row of a TSV/CSV/JSONL file (in-process or via a server)"
DESCRIPTION = """Add class probabilities and the predicted label to every row of a table.

The model is either an export version folder loaded in this process (--model-dir) or a running
`bertserve serve` / TF Serving-compatible server (--url and --model). The format (tsv, csv, jsonl)
comes from the input's extension unless --format is given; the output is written in the same format
with all input columns plus `p_<label>` for each label and `predicted_label`. TSV is read with
quoting disabled, as ChnSentiCorp's `label<TAB>text_a` files are. The text column defaults to
`text`, or `text_a` when there is no `text`.

examples:
  bertserve predict --input data/test.tsv --output out/test.predictions.tsv \\
      --model-dir models/chnsenticorp/1569141360
  bertserve predict --input reviews.jsonl --output scored.jsonl --url http://127.0.0.1:8501 --model chnsenticorp
  bertserve predict --input reviews.jsonl --output scored.jsonl --protocol grpc --url 127.0.0.1:8500 --model chnsenticorp
  bertserve predict --input export.txt --format csv --text-column comment --output scored.csv \\
      --model-dir models/chnsenticorp/1"""

# Big enough to amortise per-call overhead, small enough to keep one request well under the
# server's body and instance limits.
DEFAULT_BATCH_SIZE = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path, help="table to label (.tsv, .csv, .jsonl)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the labelled table")
    parser.add_argument("--model-dir", type=Path, help="an export version folder, e.g. models/NAME/1569141360")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8501, or 127.0.0.1:8500 with --protocol grpc")
    parser.add_argument("--protocol", choices=("rest", "grpc", "v2"), default="rest",
                        help="with --url: TF Serving's REST (default) or gRPC API (gRPC needs --model), "
                             "or v2: the Open Inference Protocol (KServe V2) over REST")
    parser.add_argument("--model", help="model name on the server (default: the server's only model)")
    parser.add_argument("--text-column", help="column holding the text (default: text, else text_a)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"rows per model call (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--format", choices=("tsv", "csv", "jsonl"), help="input and output format (default: from the input's extension)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each server answer (default: 60)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads with --model-dir (default: all cores)")


Predictor = Callable[[Sequence[str]], list[list[float]]]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bertserve.client import quiet_http_logs
    from bertserve.data.table_io import detect_format, open_table_writer, read_table, texts_of

    quiet_http_logs()
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    fmt = detect_format(args.input, args.format)
    table = read_table(args.input, fmt)
    _, texts = texts_of(table, args.text_column, args.input)
    labels, predict, close = _open_model(args)
    try:
        new_columns = [f"p_{label}" for label in labels] + ["predicted_label"]
        # Re-labelling an earlier output replaces its prediction columns instead of duplicating them.
        columns = table.columns + [name for name in new_columns if name not in table.columns]
        with open_table_writer(args.output, fmt, columns) as writer, tqdm(
            total=len(texts), unit="row", desc="predict", disable=not sys.stderr.isatty()
        ) as progress:
            for start in range(0, len(texts), args.batch_size):
                batch = texts[start : start + args.batch_size]
                probabilities = predict(batch)
                for row, row_probabilities in zip(table.rows[start : start + len(batch)], probabilities, strict=True):
                    out = dict(row)
                    for label, probability in zip(labels, row_probabilities, strict=True):
                        out[f"p_{label}"] = round(float(probability), 6)
                    out["predicted_label"] = labels[max(range(len(labels)), key=row_probabilities.__getitem__)]
                    writer.write(out)
                progress.update(len(batch))
    finally:
        close()
    print(f"wrote {writer.rows_written} row(s) to {args.output}")
    return 0


def _open_model(args: argparse.Namespace) -> tuple[list[str], Predictor, Callable[[], None]]:
    """(labels, predict function, close function) for --model-dir or --url."""
    if args.model_dir is not None:
        if args.url is not None or args.model is not None:
            raise ConfigError("give either --model-dir or --url/--model, not both")
        from bertserve.inference.model import ExportedModel

        versions = sorted(int(p.name) for p in args.model_dir.glob("*") if p.is_dir() and p.name.isdigit())
        if versions and not args.model_dir.name.isdigit():
            # A base path (what `serve` takes) instead of one version folder: say which to pass.
            raise ConfigError(
                f"--model-dir {args.model_dir} holds versions {versions}; pass one version folder, "
                f"e.g. --model-dir {args.model_dir / str(versions[-1])}"
            )
        model = ExportedModel.load(args.model_dir, threads=args.threads)
        return list(model.labels), lambda texts: model.predict_texts(list(texts)).tolist(), lambda: None
    if args.url is None and args.protocol in ("rest", "v2"):
        raise ConfigError("say which model to use: --model-dir VERSION_DIR, or --url URL --model NAME")
    from bertserve.serving.grpc.client import connect

    client = connect(args.protocol, args.url, args.model or "", args.timeout)
    try:
        if args.model is None:
            client.use_the_only_model()
        labels = client.labels()
    except BaseException:
        client.close()
        raise
    return labels, client.predict_texts, client.close
