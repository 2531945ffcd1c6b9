"""The `bertserve` command line: one sub-command per module in `bertserve.commands`.

Each command module defines `HELP` (one line), `DESCRIPTION` (with examples), `add_arguments(parser)`
and `run(args) -> int`. Modules import their heavy dependencies (torch, onnxruntime) inside `run`,
so `bertserve --help` and the serving commands start fast.

Errors: a `BertServeError` (bad input, missing file, ...) is printed as one line
`bertserve: error: ...` with exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from bertserve import __version__
from bertserve.errors import BertServeError

# Order here is the order in `bertserve --help`.
COMMANDS = ("train", "evaluate", "export", "import-tf", "serve", "online", "predict", "ray", "bench")

EPILOG = """examples:
  bertserve train --data ../shared/data/chnsenticorp --pretrained m3e-small --output runs/chnsenticorp
  bertserve evaluate --run runs/chnsenticorp --data ../shared/data/chnsenticorp/test.tsv
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp
  bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp
  bertserve online --url http://127.0.0.1:8501 --model chnsenticorp

Run `bertserve COMMAND --help` for each command's options and examples."""


def _command_module(name: str):
    return importlib.import_module(f"bertserve.commands.{name.replace('-', '_')}")  # import-tf -> import_tf


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertserve",
        description="Train, export and serve BERT text classifiers (TensorFlow Serving compatible).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bertserve {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _command_module(name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._module.run(args) or 0)
    except BertServeError as error:
        if args.debug:
            raise
        print(f"bertserve: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bertserve: interrupted", file=sys.stderr)
        return 130
