"""Fine-tuning a BERT classifier: `bertserve train` runs `train(config)`.

`train` reads top to bottom: seed -> device -> data, tokenized once -> the --teacher models' soft
targets, if any (distillation.py) -> run folder started -> model, optimiser and schedule (or the
checkpoint to resume) -> for each epoch: length-grouped
shuffled batches with dynamic padding, one `train_step` per batch, a resumable checkpoint every
N steps -> evaluate on dev, keep the best-dev weights -> finish the run folder (finish.py).
bf16 autocast where the CPU has AMX/AVX512-BF16 (1.9x faster per step than fp32 there).

    bertserve train --data ../shared/data/chnsenticorp --pretrained m3e-small --output runs/chnsenticorp
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertserve.pretrained import sources as pretrained
from bertserve.training.checkpoint import Progress, restore_checkpoint, save_checkpoint
from bertserve.training.config import TrainConfig
from bertserve.training.distillation import set_up_distillation
from bertserve.training.distributed import Distributed
from bertserve.training.finish import finish_run, score_split
from bertserve.training.objectives import SoftTargets, classification_loss, fgm_adversarial_backward
from bertserve.training.optimization import build_optimizer, build_schedule
from bertserve.training.predict import select_device, select_precision, to_tensors
from bertserve.training.run_folder import (append_history, environment_info, prepare_run_folder, save_kept_weights,
                                           start_run_folder, trim_history)
from bertserve.training.training_data import load_training_data

log = logging.getLogger(__name__)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside windows of 50 batches, cut into batches, shuffle batches.
    Similar lengths share a batch, so dynamic padding wastes little compute, while the order of
    batches stays random."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda index: lengths[index])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Fine-tune according to `config`, write the run folder, return the final metrics.
    Under `torchrun` each process trains on its share of every batch (DistributedDataParallel: gloo
    on CPU, nccl on GPU) and only rank 0 writes the run folder."""
    started = time.time()
    output = Path(config.output)
    dist = Distributed.from_environment()
    device, autocast_dtype = set_up_process(config, dist)

    # Data and tokenizer, read and validated before anything is written.
    source = pretrained.resolve(config.pretrained)
    tokenizer = pretrained.load_tokenizer(source, config.max_seq_length, config.lowercase, config.truncation)
    data = load_training_data(config, tokenizer)
    # Distillation (--teacher): the teachers' probabilities of the training texts, computed once;
    # config now records the teachers' fingerprints. None without a teacher.
    config, distillation = set_up_distillation(config, data, device, autocast_dtype, resume)
    if dist.is_main:
        prepare_run_folder(output, resume)
        data.log_summary()
        if not resume:
            start_run_folder(output, config.to_dict(), data.report(), environment_info(device, autocast_dtype, dist.world_size),
                             tokenizer, data.label_names, data.dataset.labels)
    dist.barrier()

    model = pretrained.load_classifier(source, data.label_names).to(device)
    optimizer = build_optimizer(model, config, device)
    steps_per_epoch = math.ceil(len(data.train_ids) / config.batch_size)
    scheduler = build_schedule(optimizer, steps_per_epoch * config.epochs, config.warmup_ratio)
    rng = random.Random(config.seed)  # the order of batches, epoch after epoch
    progress = Progress(epoch_rng_state=_json_state(rng.getstate()))
    if resume:
        progress = resume_from_checkpoint(output, model, optimizer, scheduler, device, dist.is_main)
    trained_model = dist.wrap(model, device)
    if dist.is_main:
        log.info("training %d examples, %d steps/epoch, device %s, precision %s, %d threads, %d process(es)",
                 len(data.train_ids), steps_per_epoch, device, "bf16" if autocast_dtype else "fp32",
                 torch.get_num_threads(), dist.world_size)

    lengths = [len(ids) for ids in data.train_ids]
    while progress.epoch <= config.epochs:
        epoch = progress.epoch
        rng.setstate(_tuple_state(progress.epoch_rng_state))
        batches = length_grouped_batches(lengths, config.batch_size, rng)
        next_epoch_rng_state = _json_state(rng.getstate())
        trained_model.train()
        epoch_started = time.time() - progress.epoch_seconds
        last_log = time.time()
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", initial=progress.batches_done,
                   disable=None if dist.is_main else True)
        for batch_number, batch in enumerate(batches[progress.batches_done:], start=progress.batches_done + 1):
            shard, weight = dist.shard(batch)
            inputs = to_tensors(tokenizer, [data.train_ids[i] for i in shard], device)
            labels = torch.tensor([data.train_gold[i] for i in shard], device=device)
            soft_targets = distillation.targets_for(shard, device) if distillation else None
            # Sum over the shard divided by the whole batch's size: after DDP averages gradients
            # over processes, the step is exactly the one a single process would take.
            loss = train_step(trained_model, model, optimizer, scheduler, inputs, labels,
                              weight * dist.world_size / len(batch), config, autocast_dtype, soft_targets)
            progress.step += 1
            progress.batches_done = batch_number
            progress.epoch_losses.append(loss)
            progress.epoch_seen += len(batch)
            last_log = show_progress(bar, progress, len(batches), time.time() - epoch_started, last_log, dist.is_main)
            if config.checkpoint_every_steps and progress.step % config.checkpoint_every_steps == 0 and batch_number < len(batches):
                if dist.is_main:
                    progress.epoch_seconds = time.time() - epoch_started
                    save_checkpoint(output, model, optimizer, scheduler, progress)
        bar.close()
        epoch_seconds = time.time() - epoch_started
        progress.train_seconds += epoch_seconds
        if dist.is_main:
            end_epoch(output, model, tokenizer, data, progress, epoch_seconds, config, device, autocast_dtype)
        progress = Progress(epoch=epoch + 1, step=progress.step, best_accuracy=progress.best_accuracy, best_epoch=progress.best_epoch,
                            train_seconds=progress.train_seconds, epoch_rng_state=next_epoch_rng_state)
        if dist.is_main and config.checkpoint_every_steps:
            save_checkpoint(output, model, optimizer, scheduler, progress)
        dist.barrier()

    metrics = {}
    if dist.is_main:
        metrics = finish_run(output, config, data, tokenizer, source, device, autocast_dtype, progress.best_epoch,
                             progress.train_seconds, started, dist.world_size, resume,
                             distillation.metrics() if distillation else {})
    dist.stop()
    return metrics


def set_up_process(config: TrainConfig, dist: Distributed) -> tuple[torch.device, torch.dtype | None]:
    """Seed every generator, set torch's threads, join the torchrun job if any; return the device
    and the autocast dtype (None: fp32)."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = dist.start(select_device(config.device))
    return device, select_precision(config.precision, device)


def resume_from_checkpoint(output: Path, model, optimizer, scheduler, device, is_main: bool) -> Progress:
    progress = restore_checkpoint(output, model, optimizer, scheduler, device)
    log.info("resuming at epoch %d, batch %d (step %d)", progress.epoch, progress.batches_done, progress.step)
    if is_main:  # epochs after the checkpoint may have been logged before the crash: they are trained again
        trim_history(output, progress.epoch)
    return progress


def train_step(trained_model, model, optimizer, scheduler, inputs: dict, labels: torch.Tensor, loss_scale: float,
               config: TrainConfig, autocast_dtype, soft_targets: SoftTargets | None = None) -> float:
    """One optimiser step on one batch (this process's share of it); returns the batch's mean loss.
    `trained_model` is `model`, or the DDP wrapper around it that averages gradients over processes;
    `soft_targets`: the teachers' for this batch when distilling."""
    def batch_loss() -> torch.Tensor:
        return classification_loss(trained_model, inputs, labels, autocast_dtype, config.rdrop_alpha, soft_targets)

    optimizer.zero_grad(set_to_none=True)
    loss_sum = batch_loss()
    (loss_sum * loss_scale).backward()
    if config.fgm_epsilon > 0:
        fgm_adversarial_backward(model.get_input_embeddings(), config.fgm_epsilon, lambda: batch_loss() * loss_scale)
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss_sum.item() / len(labels)


def show_progress(bar, progress: Progress, batches: int, epoch_seconds: float, last_log: float, is_main: bool) -> float:
    """Update the progress bar (on a terminal), or log a line a minute (in a log); returns when it last logged."""
    speed = progress.epoch_seen / max(1e-9, epoch_seconds)
    running_loss = float(np.mean(progress.epoch_losses[-20:]))
    bar.update(1)
    bar.set_postfix(loss=f"{running_loss:.4f}", ex_s=f"{speed:.1f}")
    if is_main and bar.disable and time.time() - last_log > 60:
        log.info("epoch %d: batch %d/%d, loss %.4f, %.1f examples/s", progress.epoch, progress.batches_done, batches,
                 running_loss, speed)
        return time.time()
    return last_log


def end_epoch(output: Path, model, tokenizer, data, progress: Progress, epoch_seconds: float, config: TrainConfig,
              device, autocast_dtype) -> None:
    """Score dev, keep the weights if they are the best so far (without dev: always), log the epoch."""
    epoch = progress.epoch
    record = {"epoch": epoch, "step": progress.step, "train_loss": float(np.mean(progress.epoch_losses)),
              "train_seconds": epoch_seconds, "train_examples_per_second": progress.epoch_seen / epoch_seconds,
              "loss_curve": [float(x) for x in progress.epoch_losses]}
    if "dev" in data.eval_sets:
        dev = score_split(model, tokenizer, data.eval_sets["dev"], data.label_names, device, autocast_dtype,
                          config.eval_batch_size, "dev")
        record.update(dev_accuracy=dev["accuracy"], dev_macro_f1=dev["macro_f1"])
    if "dev" not in data.eval_sets or record["dev_accuracy"] > progress.best_accuracy:
        progress.best_accuracy, progress.best_epoch = record.get("dev_accuracy", progress.best_accuracy), epoch
        save_kept_weights(model, output)
    append_history(output, record)
    log.info("epoch %d: train loss %.4f, %.1f ex/s, dev accuracy %s%s", epoch, record["train_loss"],
             record["train_examples_per_second"], f"{record.get('dev_accuracy', float('nan')):.4f}",
             " (best so far, saved)" if progress.best_epoch == epoch else "")


def _json_state(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple_state(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
