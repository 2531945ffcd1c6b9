"""Ensembles: several runs served as one version that averages their probabilities.

    bertserve export --run runs/a --run runs/b --base-path models/ensemble

writes BASE/<version>/members/0/, members/1/, ... (each a complete engine: model file(s) and an
export_config.json with its source run, parity and dev accuracy) beside one shared tokenizer/,
labels.json and signature.json. `bertserve.inference.model.ExportedModel` loads every member and
returns the mean of their probabilities (one engine call per member), so serve, predict and bench
work unchanged. Members must agree on labels (same names, same order) and tokenizer (vocabulary,
lower-casing, max length, truncation): mixing them would average unrelated numbers.

The cost is one engine call per member: export logs the measured latency of the ensemble as a
ratio to one member on the parity batch (no absolute times: they depend on the machine's load).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bertserve.errors import ExportError
from bertserve.export.parity import PARITY_TEXTS, torch_probabilities
from bertserve.inference.engines import create_engine
from bertserve.inference.model import softmax
from bertserve.layout import MEMBERS_DIR

logger = logging.getLogger(__name__)

LATENCY_REPEATS = 5  # parity-batch calls timed per variant; the median is kept


def member_folder(version_folder: Path, index: int) -> Path:
    return Path(version_folder) / MEMBERS_DIR / str(index)


def check_members_agree(runs: list[Any]) -> None:
    """Refuse an ensemble whose runs differ in labels or tokenizer, naming the first difference."""
    first = runs[0]
    for run in runs[1:]:
        if list(run.labels) != list(first.labels):
            raise ExportError(f"cannot ensemble {first.folder} and {run.folder}: labels {list(first.labels)} vs "
                              f"{list(run.labels)}; every --run must have the same labels in the same order")
        ours, theirs = first.tokenizer, run.tokenizer
        if ours.identity() != theirs.identity():
            detail = (f"kinds {ours.kind} vs {theirs.kind}" if ours.kind != theirs.kind else
                      "vocabularies differ" if ours.vocab != theirs.vocab else
                      f"lowercase/max_seq_length/truncation {ours.identity()[2:5]} vs {theirs.identity()[2:5]}"
                      if ours.identity()[2:5] != theirs.identity()[2:5] else "piece scores or character normalisation differ")
            raise ExportError(f"cannot ensemble {first.folder} and {run.folder}: their tokenizers differ ({detail}); "
                              "every --run must use the same tokenizer")
    folders = [run.folder.resolve() for run in runs]
    if len(set(folders)) != len(folders):
        raise ExportError("the same --run is given twice; an ensemble needs different runs")


def median_seconds(call: Any) -> float:
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ensemble_facts(version_folder: Path, runs: list[Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """Member list, parity of the averaged probabilities with the averaged torch models, and the
    latency ratio to one member, for the top export_config.json."""
    inputs = runs[0].tokenizer.encode(list(PARITY_TEXTS)).as_dict()
    engines = [create_engine(member_folder(version_folder, index), threads=1) for index in range(len(runs))]
    feeds = [{name: inputs[name] for name in engine.input_names} for engine in engines]
    averaged = np.mean([softmax(engine.run(feed)) for engine, feed in zip(engines, feeds)], axis=0)
    expected = np.mean([torch_probabilities(run.model, inputs) for run in runs], axis=0)
    one = median_seconds(lambda: engines[0].run(feeds[0]))
    every = median_seconds(lambda: [engine.run(feed) for engine, feed in zip(engines, feeds)])
    ratio = round(every / one, 2) if one > 0 else None
    logger.info("ensemble of %d members: %.2fx the latency of one member (parity batch of %d texts, median of %d, "
                "1 thread)", len(runs), ratio or 0.0, len(PARITY_TEXTS), LATENCY_REPEATS)
    return {
        "combine": "mean of the members' probabilities",
        "members": [
            {"folder": f"{MEMBERS_DIR}/{index}", "source_run": str(run.folder.resolve()),
             **{key: member.get(key) for key in ("parity_max_abs_diff", "fp32_dev_accuracy", "exported_dev_accuracy",
                                                  "dev_texts", "accuracy_within_bound", "calibration_source")}}
            for index, (run, member) in enumerate(zip(runs, members))
        ],
        "parity_max_abs_diff": float(np.abs(averaged - expected).max()),
        "latency_ratio_vs_one_member": ratio,
    }
