"""`bertserve import-tf`: serve a model fine-tuned by Google's run_classifier.py, without retraining and without TensorFlow.

The checkpoint (see `bertserve.pretrained.tf_classifier`) becomes a torch classifier, which is written
as a run folder (model/, tokenizer/, labels.json, config.json, model_card.md: the names of
`bertserve.layout`) in a temporary folder and exported from there by `bertserve.export.version.export_run`,
exactly as `bertserve export` exports a trained run. The temporary folder is removed afterwards;
the version folder's export_config.json keeps where the weights came from ("source_run_config").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bertserve.commands.export import positive_int

HELP = "import a model fine-tuned by the 2019 demo's run_classifier.py (TF checkpoint) as a served version folder"
DESCRIPTION = """Turn a TensorFlow checkpoint fine-tuned by google-research/bert's run_classifier.py (the 2019
demo's model) into BASE/<version>/, the same version folder `bertserve export` writes, so
`bertserve serve` serves it. No retraining and no TensorFlow: the checkpoint is read directly.

--checkpoint is run_classifier.py's --output_dir (model.ckpt-N.index + .data-*; the highest N
unless --checkpoint-step picks one) or one checkpoint prefix such as OUT/model.ckpt-1000.
bert_config.json and vocab.txt are looked for beside the checkpoint; run_classifier.py read them
from the pretrained model's folder, so point --bert-config/--vocab there if they are not copied.
--labels names the classes in run_classifier.py's label_list order (class id = position); the
demo's ChnSentiCorp labels "0","1" are negative, positive. Default: the label_list values 0,1,...

Tokenization follows run_classifier.py: --max-seq-length 128 and lower-casing (--do-lower-case),
as the demo trained. --format/--quantize/--version/--force mean what they mean for `bertserve export`
(default: OpenVINO static int8; --format onnx --quantize none is fp32, TensorFlow's own numbers).
--dev-data (the demo's dev.tsv) calibrates int8 on real texts and checks its accuracy against fp32.

examples:
  bertserve import-tf --checkpoint demo/output --labels negative,positive --base-path models/chnsenticorp
  bertserve import-tf --checkpoint demo/output --checkpoint-step 3000 --labels negative,positive \\
      --bert-config chinese_L-12_H-768_A-12/bert_config.json --vocab chinese_L-12_H-768_A-12/vocab.txt \\
      --base-path models/chnsenticorp --format onnx --quantize none --version 1
  bertserve import-tf --checkpoint demo/output/model.ckpt-3000 --labels negative,positive \
      --dev-data ../shared/data/chnsenticorp/dev.tsv --base-path models/chnsenticorp
  bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp
"""


def step_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a step number N of model.ckpt-N, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run_classifier.py's --output_dir, or a checkpoint prefix")
    parser.add_argument("--checkpoint-step", type=step_number, default=None, help="use model.ckpt-N (default: the highest N)")
    parser.add_argument("--base-path", required=True, help="model base path; the version folder goes inside it")
    parser.add_argument("--labels", default=None, help="class names in label_list order, comma-separated, e.g. negative,positive")
    parser.add_argument("--bert-config", default=None, help="bert_config.json (default: beside the checkpoint)")
    parser.add_argument("--vocab", default=None, help="vocab.txt (default: beside the checkpoint)")
    parser.add_argument("--max-seq-length", type=positive_int, default=128, help="tokens per text, [CLS] and [SEP] included (default: 128)")
    parser.add_argument(
        "--do-lower-case", action=argparse.BooleanOptionalAction, default=True,
        help="lower-case and strip accents, as run_classifier.py's --do_lower_case (default: on, as Chinese BERT)",
    )
    parser.add_argument("--version", type=positive_int, default=None, help="version number (default: current Unix timestamp)")
    parser.add_argument("--format", choices=("onnx", "openvino"), default="openvino", help="as `bertserve export` (default: openvino)")
    parser.add_argument("--quantize", choices=("none", "int8", "bf16"), default="int8", help="as `bertserve export` (default: int8)")
    parser.add_argument(
        "--dev-data", default=None,
        help="labelled dev data (.tsv/.csv/.jsonl; labels as names or label_list values 0,1,...): int8 calibration "
        "texts and the int8-vs-fp32 accuracy check of `bertserve export` (default: none, built-in calibration texts)",
    )
    parser.add_argument("--calibration-data", default=None, help="static int8 calibration texts, as `bertserve export` (default: --dev-data)")
    parser.add_argument("--calibration-size", type=positive_int, default=300, help="calibration texts to use (default: 300)")
    parser.add_argument("--force", action="store_true", help="replace BASE/<version> if it exists")


def parse_labels(text: str | None, count: int) -> list[str]:
    """`--labels a,b` as a list; default: run_classifier.py's label_list values "0".."count-1"."""
    from bertserve.errors import ConfigError

    if text is None:
        return [str(index) for index in range(count)]
    labels = [label.strip() for label in text.split(",")]
    if any(not label for label in labels):
        raise ConfigError(f"--labels {text!r}: empty label name; give names separated by commas, e.g. negative,positive")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--labels {text!r}: names must be distinct")
    return labels


def model_card(checkpoint, bert_config: dict, labels: list[str], args: argparse.Namespace) -> str:
    step = "unknown" if checkpoint.global_step is None else checkpoint.global_step
    return "\n".join([
        "# Imported TensorFlow classifier",
        "",
        "Fine-tuned with google-research/bert's run_classifier.py (TensorFlow) and imported by",
        "`bertserve import-tf` without retraining: the same weights, read from the checkpoint.",
        "",
        f"- checkpoint: {checkpoint.prefix.resolve()} (global_step {step})",
        f"- labels, in class-id order: {', '.join(labels)}",
        f"- encoder: {bert_config['num_hidden_layers']} layers, hidden {bert_config['hidden_size']}, "
        f"{bert_config['num_attention_heads']} heads, vocabulary {bert_config['vocab_size']}",
        f"- max_seq_length {args.max_seq_length}, do_lower_case {args.do_lower_case}",
        "- licence: that of the checkpoint and of the pretrained model it was fine-tuned from",
        "",
    ])


def read_inputs(folder: Path, args: argparse.Namespace) -> tuple[Path, dict, Path, Any]:
    """(bert_config.json path, its content, vocab.txt path, tokenizer), each checked against the others."""
    from bertserve.errors import ConfigError
    from bertserve.pretrained.tf_classifier import read_bert_config
    from bertserve.tokenizer import BertTokenizer

    config_path = Path(args.bert_config) if args.bert_config else folder / "bert_config.json"
    vocab_path = Path(args.vocab) if args.vocab else folder / "vocab.txt"
    bert_config = read_bert_config(config_path)
    if not vocab_path.is_file():
        raise ConfigError(
            f"{vocab_path}: not found; it sits in the pretrained model's folder that run_classifier.py read "
            "(--vocab_file, e.g. chinese_L-12_H-768_A-12/vocab.txt): copy it there or pass --vocab"
        )
    positions = bert_config["max_position_embeddings"]
    if args.max_seq_length > positions:
        raise ConfigError(
            f"--max-seq-length {args.max_seq_length} exceeds max_position_embeddings {positions} of {config_path}; "
            f"pass --max-seq-length {positions} or less"
        )
    if args.max_seq_length < 2:
        raise ConfigError("--max-seq-length must be at least 2 ([CLS] and [SEP])")
    tokenizer = BertTokenizer.from_vocab_file(vocab_path, lowercase=args.do_lower_case, max_seq_length=args.max_seq_length)
    largest_id = max(tokenizer.vocab.values())
    if largest_id >= bert_config["vocab_size"]:
        raise ConfigError(
            f"{vocab_path} has ids up to {largest_id}, but {config_path} says vocab_size {bert_config['vocab_size']}; "
            "use the vocab.txt the model was trained with"
        )
    return config_path, bert_config, vocab_path, tokenizer


def write_run_folder(run_dir: Path, checkpoint, args: argparse.Namespace) -> dict:
    """The checkpoint as a run folder that `export_run` reads; returns what config.json records."""
    from bertserve.errors import ConfigError
    from bertserve.files import write_json_atomic, write_text_atomic
    from bertserve.layout import CONFIG_FILE, DATA_REPORT_FILE, MODEL_CARD_FILE
    from bertserve.pretrained.tf_classifier import build_classifier, read_classifier_head
    from bertserve.training.run_folder import save_labels, save_model

    dev_path = None if args.dev_data is None else Path(args.dev_data)
    if dev_path is not None and not dev_path.is_file():
        raise ConfigError(f"--dev-data {dev_path}: no such file")
    state = read_classifier_head(checkpoint.prefix)  # first: a pre-trained checkpoint is the likeliest mistake
    config_path, bert_config, vocab_path, tokenizer = read_inputs(checkpoint.prefix.parent, args)
    labels = parse_labels(args.labels, state["classifier.weight"].shape[0])
    model = build_classifier(state, bert_config, labels, checkpoint.prefix)
    del state
    save_model(run_dir, model, tokenizer, labels)
    # Class ids are positions in run_classifier.py's label_list, whose values are usually "0", "1", ...
    save_labels(run_dir, labels, values=[str(index) for index in range(len(labels))])
    if dev_path is not None:  # where export finds the dev split for calibration and its accuracy check
        write_json_atomic(run_dir / DATA_REPORT_FILE, {"splits": {"dev": {"file": str(dev_path.resolve())}}})
    recorded = {
        "imported_from": "tensorflow checkpoint (google-research/bert run_classifier.py)",
        "checkpoint": str(checkpoint.prefix.resolve()),
        "global_step": checkpoint.global_step,
        "bert_config": str(config_path.resolve()),
        "vocab": str(vocab_path.resolve()),
        "labels": labels,
        "max_seq_length": args.max_seq_length,
        "do_lower_case": args.do_lower_case,
        "dev_data": None if dev_path is None else str(dev_path.resolve()),
    }
    write_json_atomic(run_dir / CONFIG_FILE, recorded)
    write_text_atomic(run_dir / MODEL_CARD_FILE, model_card(checkpoint, bert_config, labels, args))
    return recorded


def run(args: argparse.Namespace) -> int:
    from bertserve.commands.export import quiet_third_party_progress
    from bertserve.export.version import ExportSettings, export_run
    from bertserve.pretrained.tf_classifier import find_fine_tuned_checkpoint

    quiet_third_party_progress()
    checkpoint = find_fine_tuned_checkpoint(Path(args.checkpoint), args.checkpoint_step)
    settings = ExportSettings(
        version=args.version,
        quantize=args.quantize,
        force=args.force,
        format=args.format,
        calibration_data=args.calibration_data,
        calibration_size=args.calibration_size,
    )
    with tempfile.TemporaryDirectory(prefix="bertserve-import-tf-") as scratch:
        run_dir = Path(scratch) / "run"
        run_dir.mkdir()
        recorded = write_run_folder(run_dir, checkpoint, args)
        result = export_run(run_dir, args.base_path, settings)
    step = recorded["global_step"]
    print(f"imported {checkpoint.prefix}" + ("" if step is None else f" (global_step {step})") +
          f" with labels {', '.join(recorded['labels'])}")
    print(result.summary())
    return 0
