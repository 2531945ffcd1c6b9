"""`bertserve export`: turn a run folder (or several: an ensemble) into a servable ONNX or OpenVINO
version folder (see `bertserve.export.version`)."""

from __future__ import annotations

import argparse

from bertserve.export.accuracy import DEFAULT_MAX_ACCURACY_DROP

HELP = "export a trained run to an ONNX or OpenVINO version folder that `serve` can load"
DESCRIPTION = """Export a trained run folder to BASE/<version>/: the model (--format onnx: model.onnx
fused by ONNX Runtime's BERT optimizer; --format openvino: OpenVINO IR model.xml + model.bin),
checked against the torch model, plus tokenizer/, labels.json, signature.json, model_card.md,
export_config.json and manifest.json (sha256 of every file). `serve` picks the engine by the files.

Default: --format openvino --quantize int8, the fastest variant measured on our 2-core CPUs
with dev accuracy within 0.5 points of fp32 (docs/benchmarks.md, section "Engines").
Precision (--quantize): none = fp32; int8 = dynamic int8 for onnx, static int8 calibrated with
NNCF for openvino (calibration texts: --calibration-data, else the run's own dev split, else 20
built-in texts; export_config.json says which); bf16 = bf16 inference (openvino only).
--format onnx is the portable choice (ONNX Runtime; CUDA provider where installed, untested).

Accuracy check (int8, bf16): the exported model and the fp32 graph both classify the run's dev
split; export_config.json records both accuracies and the number of dev texts. A drop over
--max-accuracy-drop points (default 0.5) is recovered for OpenVINO int8 by NNCF's accuracy
control (sensitive layers back in fp32); if still over, a WARNING line and
"accuracy_within_bound": false, or an error with --strict-accuracy. No dev data: skipped.

Int8 is not faster on every CPU (on AVX2 without VNNI the fp32 graph can win): --fp32-variant also
writes the unquantised IR (variants/fp32/, ~4x the int8 model's size); the server measures both at
load and runs the faster (its choice is in the model status and /metrics).

Ensemble: give --run several times (same labels and tokenizer). One version folder holds every
member under members/<index>/ and serves the mean of their probabilities.

The version folder is written under a temporary name and renamed into place, so a server polling
BASE never sees half a model. The version defaults to the current Unix timestamp, like TF
Serving's demo model 1569141360.

examples:
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --format onnx --quantize int8
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --format onnx --quantize none
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --quantize bf16
  bertserve export --run runs/x --base-path models/x --format openvino --quantize int8 --calibration-data texts.txt
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --version 2 --force
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --max-accuracy-drop 1.0 --strict-accuracy
  bertserve export --run runs/chnsenticorp --base-path models/chnsenticorp --fp32-variant
  bertserve export --run runs/seed1 --run runs/seed2 --run runs/seed3 --base-path models/ensemble
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


def accuracy_points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected accuracy points between 0 and 100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected accuracy points between 0 and 100, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, action="append",
        help="run folder written by `bertserve train`; repeat it to export an ensemble of runs",
    )
    parser.add_argument("--base-path", required=True, help="model base path; the version folder goes inside it")
    parser.add_argument(
        "--version", type=positive_int, default=None, help="version number (default: current Unix timestamp)"
    )
    parser.add_argument(
        "--format",
        choices=("onnx", "openvino"),
        default="openvino",
        help="openvino: model.xml + model.bin for OpenVINO (default); onnx: model.onnx for ONNX Runtime",
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8", "bf16"),
        default="int8",
        help="int8 (default): ~4x smaller and fastest, scores move slightly; none: fp32; bf16: openvino only",
    )
    parser.add_argument(
        "--calibration-data",
        default=None,
        help="static int8 calibration texts: one per line (.txt) or a .tsv/.csv/.jsonl data file "
        "(default: the run's dev data, else built-in texts)",
    )
    parser.add_argument(
        "--calibration-size", type=positive_int, default=300, help="calibration texts to use (default: 300)"
    )
    parser.add_argument(
        "--max-accuracy-drop", type=accuracy_points, default=DEFAULT_MAX_ACCURACY_DROP,
        help="int8/bf16: dev accuracy points the export may lose against fp32 (default: %(default)s)",
    )
    parser.add_argument(
        "--strict-accuracy", action="store_true",
        help="fail (no version folder) when the dev accuracy drop stays over --max-accuracy-drop",
    )
    parser.add_argument(
        "--fp32-variant", action="store_true",
        help="openvino int8/bf16: also write the fp32 IR (variants/fp32/); the server runs whichever it measures faster",
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
    from bertserve.export.version import ExportSettings, export_runs

    quiet_third_party_progress()
    settings = ExportSettings(
        version=args.version,
        quantize=args.quantize,
        opset=args.opset,
        force=args.force,
        optimize=args.optimize,
        format=args.format,
        calibration_data=args.calibration_data,
        calibration_size=args.calibration_size,
        max_accuracy_drop=args.max_accuracy_drop,
        strict_accuracy=args.strict_accuracy,
        fp32_variant=args.fp32_variant,
    )
    result = export_runs(args.run, args.base_path, settings)
    print(result.summary())
    return 0


def quiet_third_party_progress() -> None:
    """The export ends with one summary line; without this, a terminal also gets Transformers'
    instant "Loading weights" bar and NNCF's calibration bars (drawn by rich on rich's global
    console, which nothing in bertserve uses). Warnings and log lines still show."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        import rich
    except ImportError:  # NNCF is not installed: nothing draws with rich
        return
    rich.get_console().quiet = True
