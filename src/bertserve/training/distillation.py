"""Knowledge distillation: the class probabilities of one or more teachers on the training texts,
kept as soft targets for the student (the loss is in objectives.py).

    bertserve export --run runs/a --run runs/b --base-path models/ensemble      # the teacher
    bertserve train --data ../shared/data/chnsenticorp --teacher models/ensemble/<version> --output runs/student

A teacher is a black box giving p(label | text): an export version folder (one model, or an
ensemble written by `bertserve export --run A --run B`) or a run folder (torch). Each reads the
text with its own saved tokenizer and max length, whatever the student's. Before training, each
teacher's probabilities of the training texts are computed once (batched by length, progress
logged), averaged over the teachers and kept as log-probabilities aligned with the training
examples. Teachers must have the data's label names in the same order.

The content fingerprint of each teacher goes into config.json (`teacher_fingerprints`): the sha256
of an export's manifest.json (which holds every file's checksum) or of a run's
model/model.safetensors. `--resume` recomputes the soft targets and refuses teachers that changed.
Probabilities are remembered per teacher fingerprint and text for the life of the process, so the
seeds of `--seeds` compute them once.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertserve.errors import ConfigError
from bertserve.files import read_json, sha256_of
from bertserve.layout import LABELS_FILE, MANIFEST_FILE, MODEL_DIR, WEIGHTS_FILE
from bertserve.training.config import TrainConfig
from bertserve.training.objectives import SoftTargets
from bertserve.training.training_data import TrainingData

log = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 30  # a log line this often while a teacher reads the training texts
# (fingerprint, device, precision) -> text -> probabilities: what this process has already computed.
_REMEMBERED: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}


@dataclass(frozen=True)
class Teacher:
    path: str  # as given on the command line (and recorded in config.json)
    kind: str  # "export" (a version folder) or "run" (a run folder)
    labels: list[str]
    fingerprint: str  # "sha256:<hex>" of the export's manifest.json or of the run's weights


def teacher_kind(path: str) -> str:
    """"export" for a version folder, "run" for a run folder; a ConfigError for anything else."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"--teacher {path} does not exist (give an export version folder or a run folder)")
    if (folder / MANIFEST_FILE).is_file():
        return "export"
    if (folder / MODEL_DIR / WEIGHTS_FILE).is_file():
        return "run"
    versions = sorted(child.name for child in folder.iterdir() if (child / MANIFEST_FILE).is_file())
    hint = f"; it holds export versions, give one of them, e.g. {folder / versions[-1]}" if versions else ""
    raise ConfigError(f"--teacher {path} is neither an export version folder (no {MANIFEST_FILE}) nor a run folder "
                      f"(no {MODEL_DIR}/{WEIGHTS_FILE}){hint}")


def open_teacher(path: str) -> Teacher:
    """Check that `path` is an export version folder or a run folder; read its labels and fingerprint."""
    folder = Path(path)
    if teacher_kind(path) == "export":
        labels = read_json(folder / LABELS_FILE).get("labels") if (folder / LABELS_FILE).is_file() else None
        if not isinstance(labels, list):
            raise ConfigError(f"--teacher {path}: no labels in {LABELS_FILE}; re-export the model")
        return Teacher(path, "export", [str(label) for label in labels], "sha256:" + sha256_of(folder / MANIFEST_FILE))
    from bertserve.training.run_folder import load_labels

    return Teacher(path, "run", load_labels(folder), "sha256:" + sha256_of(folder / MODEL_DIR / WEIGHTS_FILE))


def check_teachers(teachers: Sequence[Teacher], label_names: list[str]) -> None:
    """Refuse a teacher whose labels differ from the data's (names and order), or one given twice."""
    for teacher in teachers:
        if list(teacher.labels) != list(label_names):
            raise ConfigError(f"--teacher {teacher.path} has labels {teacher.labels} but the training data has "
                              f"{list(label_names)}; a teacher must have the same labels in the same order")
    fingerprints = [teacher.fingerprint for teacher in teachers]
    if len(set(fingerprints)) != len(fingerprints):
        raise ConfigError("the same teacher is given twice; give each --teacher once")


def batch_predictor(teacher: Teacher, device: torch.device, autocast_dtype, threads: int | None) -> Callable:
    """A function texts -> probabilities (texts, labels) that runs `teacher` with its own tokenizer."""
    if teacher.kind == "export":
        from bertserve.inference.model import ExportedModel

        return ExportedModel.load(teacher.path, threads=threads).predict_texts
    from bertserve.training.predict import predict_probabilities
    from bertserve.training.run_folder import load_run

    run = load_run(teacher.path)
    model = run.model.to(device)
    return lambda texts: predict_probabilities(model, run.tokenizer, run.tokenizer.token_ids(texts), device, autocast_dtype,
                                               batch_size=len(texts))


def teacher_probabilities(teacher: Teacher, texts: Sequence[str], config: TrainConfig, device: torch.device,
                          autocast_dtype) -> np.ndarray:
    """`teacher`'s probabilities of `texts` (len(texts), labels), each distinct text computed once per process."""
    known = _REMEMBERED.setdefault((teacher.fingerprint, str(device), str(autocast_dtype)), {})
    # Similar lengths share a batch (little padding); ties by text, so every process batches alike.
    missing = sorted(set(texts) - set(known), key=lambda text: (len(text), text))
    if missing:
        log.info("teacher %s (%s): probabilities of %d texts", teacher.path, teacher.kind, len(missing))
        predict = batch_predictor(teacher, device, autocast_dtype, config.threads)
        started = last_log = time.time()
        batch_size = config.eval_batch_size
        for start in tqdm(range(0, len(missing), batch_size), desc=f"teacher {Path(teacher.path).name}", disable=None,
                          leave=False):
            batch = missing[start : start + batch_size]
            known.update(zip(batch, np.asarray(predict(batch), dtype=np.float32)))
            if time.time() - last_log > PROGRESS_LOG_SECONDS:
                log.info("teacher %s: %d of %d texts", teacher.path, start + len(batch), len(missing))
                last_log = time.time()
        log.info("teacher %s: %d texts in %.1f s", teacher.path, len(missing), time.time() - started)
    if not texts:
        return np.zeros((0, len(teacher.labels)), dtype=np.float32)
    return np.stack([known[text] for text in texts])


@dataclass(frozen=True)
class Distillation:
    log_probabilities: torch.Tensor  # (training examples, labels): the teachers' mean, aligned with data.train_ids
    alpha: float
    temperature: float
    teacher_dev_accuracy: float | None  # dev accuracy of the teachers' averaged probabilities; None without dev

    def targets_for(self, rows: Sequence[int], device: torch.device) -> SoftTargets:
        """The soft targets of these training examples."""
        return SoftTargets(self.log_probabilities[list(rows)].to(device), self.alpha, self.temperature)

    def metrics(self) -> dict:
        return {} if self.teacher_dev_accuracy is None else {"teacher_dev_accuracy": self.teacher_dev_accuracy}


def set_up_distillation(config: TrainConfig, data: TrainingData, device: torch.device, autocast_dtype,
                        resume: bool) -> tuple[TrainConfig, Distillation | None]:
    """Without --teacher: (config, None). Else open and check the teachers, compute their soft targets
    on the training texts and their dev accuracy; the returned config records their fingerprints."""
    if not config.teachers:
        return config, None
    teachers = [open_teacher(path) for path in config.teachers]
    check_teachers(teachers, data.label_names)
    fingerprints = tuple(teacher.fingerprint for teacher in teachers)
    if resume and config.teacher_fingerprints and config.teacher_fingerprints != fingerprints:
        changed = [teacher.path for teacher, old in zip(teachers, config.teacher_fingerprints) if teacher.fingerprint != old]
        raise ConfigError(f"--resume: teacher {', '.join(changed) or config.teachers} changed since this run started "
                          "(its fingerprint differs from config.json); the soft targets would not be the same")

    log.info("distilling from %d teacher(s): alpha %s, temperature %s", len(teachers), config.distill_alpha,
             config.distill_temperature)
    dev = data.eval_sets.get("dev")
    dev_texts = dev.texts if dev is not None else []
    texts = [*data.train_texts, *dev_texts]  # one pass (one model load) per teacher
    probabilities = np.mean([teacher_probabilities(teacher, texts, config, device, autocast_dtype) for teacher in teachers],
                            axis=0)
    train_probabilities, dev_probabilities = probabilities[: len(data.train_texts)], probabilities[len(data.train_texts) :]
    # Probabilities of exactly 0 (an int8 engine's softmax can underflow) would make log-targets -inf.
    log_probabilities = torch.from_numpy(np.log(np.maximum(train_probabilities, np.finfo(np.float32).tiny)))
    dev_accuracy = None
    if dev_texts:
        dev_accuracy = float(np.mean(dev_probabilities.argmax(axis=1) == np.asarray(dev.gold)))
        log.info("teacher%s dev accuracy %.4f (%d texts), the figure the student's dev accuracy compares with",
                 "s' (averaged probabilities)" if len(teachers) > 1 else "", dev_accuracy, len(dev.gold))
    distillation = Distillation(log_probabilities, config.distill_alpha, config.distill_temperature, dev_accuracy)
    return dataclasses.replace(config, teacher_fingerprints=fingerprints), distillation
