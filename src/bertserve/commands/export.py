"""`bertserve export`: turn a run folder into a servable ONNX version folder (see `bertserve.export`)."""

from __future__ import annotations

import argparse

HELP = "export a trained run to an ONNX version folder that `serve` can load"
DESCRIPTION = """Export a trained run folder to BASE/<version>/: model.onnx (fused by ONNX Runtime's
BERT optimizer, checked against the torch model), tokenizer/, labels.json, signature.json,
model_card.md, export_config.json and manifest.json (sha256 of every file).

The version folder is written under a temporary name and renamed into place, so a server polling
BASE never sees half a model. The version defaults to the current Unix timestamp, like TF
Serving's demo model 1569141360.

examples:
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --quantize int8
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --version 2 --force
  bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp
"""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `bertserve train`")
    parser.add_argument("--base-path", required=True, help="model base path; the version folder goes inside it")
    parser.add_argument(
        "--version", type=positive_int, default=None, help="version number (default: current Unix timestamp)"
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="none: fp32 (default); int8: dynamic quantisation, ~4x smaller, slightly different scores",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 14-20 (default: 17)")
    parser.add_argument("--force", action="store_true", help="replace BASE/<version> if it exists")
    parser.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="skip ONNX Runtime's fusions (plain ONNX ops only, for runtimes without ORT contrib ops)",
    )


def run(args: argparse.Namespace) -> int:
    from bertserve.export import ExportSettings, export_run

    settings = ExportSettings(
        version=args.version, quantize=args.quantize, opset=args.opset, force=args.force, optimize=args.optimize
    )
    result = export_run(args.run, args.base_path, settings)
    print(result.summary())
    return 0
