"""The end of a training run: score the kept (best-dev) weights on dev, test and the leakage-free
test texts, then complete the run folder (metrics.json, model_card.md, plots) and drop the
checkpoint, which the finished run no longer needs."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from bertserve import __version__
from bertserve.files import write_json_atomic, write_text_atomic
from bertserve.layout import CHECKPOINT_DIR, METRICS_FILE, MODEL_CARD_FILE, MODEL_DIR
from bertserve.training.config import TrainConfig
from bertserve.training.predict import predict_probabilities
from bertserve.training.scores import classification_report, format_report, subset_report
from bertserve.training.training_data import TrainingData

log = logging.getLogger(__name__)


def score_split(model, tokenizer, eval_set, label_names, device, autocast_dtype, batch_size, name) -> dict:
    """The classification report of `eval_set`, with the report on its leakage-free texts under
    "leakage_free" when it has them marked."""
    probabilities = predict_probabilities(model, tokenizer, eval_set.ids, device, autocast_dtype, batch_size, progress=f"eval {name}")
    predicted = probabilities.argmax(axis=1).tolist()
    report = classification_report(eval_set.gold, predicted, label_names)
    if eval_set.leakage_free is not None:
        report["leakage_free"] = subset_report(eval_set.gold, predicted, eval_set.leakage_free, label_names)
    return report


def finish_run(output: Path, config: TrainConfig, data: TrainingData, tokenizer, source, device, autocast_dtype,
               best_epoch: int, train_seconds: float, started: float, world_size: int, resumed: bool,
               extra_metrics: dict | None = None) -> dict:
    """Final metrics from the kept weights, reloaded from disk; completes the run folder.
    `extra_metrics` (e.g. the teachers' dev accuracy when distilling) go into metrics.json as they are."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(output / MODEL_DIR), use_safetensors=True).to(device)
    metrics = {"best_epoch": best_epoch, "train_seconds": train_seconds, "total_seconds": None,
               "train_examples_per_second": len(data.train_ids) * config.epochs / train_seconds,
               "precision": "bf16-autocast" if autocast_dtype else "fp32", "world_size": world_size, "resumed": resumed,
               **(extra_metrics or {})}
    for split, eval_set in data.eval_sets.items():
        metrics[split] = score_split(model, tokenizer, eval_set, data.label_names, device, autocast_dtype,
                                     config.eval_batch_size, split)
        log.info("%s (best epoch %d):\n%s", split, best_epoch, format_report(metrics[split]))
        leakage_free = metrics[split].get("leakage_free")
        if leakage_free and leakage_free["examples"]:
            log.info("%s, leakage-free (%d texts not in train): accuracy %.4f, macro-F1 %.4f", split,
                     leakage_free["examples"], leakage_free["accuracy"], leakage_free["macro_f1"])
    metrics["total_seconds"] = time.time() - started
    write_json_atomic(output / METRICS_FILE, metrics)
    write_model_card(output, config, data, source, metrics, train_seconds)
    shutil.rmtree(output / CHECKPOINT_DIR, ignore_errors=True)  # finished: the kept weights are in model/
    try:
        from bertserve.training.plots import write_plots

        write_plots(output)
    except Exception as error:  # plots are a convenience; never lose a finished run over them
        log.warning("could not draw plots: %s", error)
    return metrics


def write_model_card(output: Path, config: TrainConfig, data: TrainingData, source, metrics: dict, seconds: float) -> None:
    dataset = data.dataset
    options = [f"truncation {config.truncation}"]
    if config.layer_lr_decay < 1:
        options.append(f"layer-wise lr decay {config.layer_lr_decay}")
    if config.rdrop_alpha > 0:
        options.append(f"R-Drop alpha {config.rdrop_alpha}")
    if config.fgm_epsilon > 0:
        options.append(f"FGM epsilon {config.fgm_epsilon}")
    if config.teachers:
        options.append(f"distilled from {len(config.teachers)} teacher(s) (alpha {config.distill_alpha}, "
                       f"temperature {config.distill_temperature})")
    lines = [
        f"# Model card: {output.name}",
        "",
        f"A BERT sequence classifier fine-tuned by bertserve {__version__}.",
        "",
        f"- Pretrained weights: `{config.pretrained}` ({source.kind}, {source.folder})",
        f"- Data: {dataset.source}; labels: {', '.join(f'{raw}={name}' for raw, name in zip(dataset.labels, dataset.label_names))}",
        f"- Training: {config.epochs} epochs, batch {config.batch_size}, lr {config.learning_rate}, "
        f"max length {config.max_seq_length}, {', '.join(options)}, seed {config.seed}; {seconds / 60:.1f} min",
    ]
    for split in ("dev", "test"):
        if split in metrics:
            lines.append(f"- {split}: accuracy {metrics[split]['accuracy']:.4f}, macro-F1 {metrics[split]['macro_f1']:.4f} "
                         f"({metrics[split]['examples']} examples)")
            leakage_free = metrics[split].get("leakage_free")
            if leakage_free and leakage_free["examples"]:
                lines.append(f"- {split}, leakage-free (texts not in train): accuracy {leakage_free['accuracy']:.4f} "
                             f"({leakage_free['examples']} examples)")
    notes = list(dataset.notes)
    if source.licence_note:
        notes.insert(0, "LICENCE: " + source.licence_note)
    if notes:
        lines += ["", "## Notes", *[f"- {note}" for note in notes]]
    write_text_atomic(output / MODEL_CARD_FILE, "\n".join(lines) + "\n")
