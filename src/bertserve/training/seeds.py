"""Several seeds of one setting: `bertserve train --seeds 3` (or `--seeds 42,7,1`).

Each seed is a complete run folder RUN/seed-<seed>/; RUN/seeds_summary.json holds every seed's
dev, test and leakage-free test accuracy and their mean and sample standard deviation, and the
same is printed as a table. Every seed keeps its best-dev epoch: nothing here looks at test to
choose anything. A seed whose run folder already holds metrics.json is not trained again, so an
interrupted sweep continues where it stopped (an interrupted seed: `--resume --output RUN/seed-N`),
and a seed trained on its own can be moved into the sweep folder and counted. Such a seed is reused
only if its config.json asks for the same training as this sweep (HOW_IT_RAN lists what may differ):
a sweep rerun without, say, `--fgm-epsilon` must not average two settings under one name.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
from pathlib import Path

from bertserve.errors import ConfigError
from bertserve.files import read_json, write_json_atomic
from bertserve.layout import CONFIG_FILE, METRICS_FILE, SEED_RUN_PREFIX, SEEDS_SUMMARY_FILE
from bertserve.training.config import TrainConfig, build_config

log = logging.getLogger(__name__)

# The figures summarized, as (name in the summary, how to read it from a run's metrics.json).
FIGURES = (
    ("dev_accuracy", ("dev", "accuracy")),
    ("test_accuracy", ("test", "accuracy")),
    ("test_leakage_free_accuracy", ("test", "leakage_free", "accuracy")),
)


# config.json fields that say how or where a run was carried out, not what was trained: a finished
# seed is reused whatever they hold. teacher_fingerprints is filled in by train() itself.
HOW_IT_RAN = frozenset({"output", "seed", "device", "threads", "eval_batch_size", "checkpoint_every_steps",
                        "teacher_fingerprints"})
PATH_FIELDS = frozenset({"data", "pretrained", "teachers"})  # compared as normalised paths


def parse_seeds(spec: str, first_seed: int) -> list[int]:
    """`--seeds 3` -> [first_seed, first_seed + 1, first_seed + 2]; `--seeds 42,7,1` -> [42, 7, 1]."""
    parts = [part.strip() for part in spec.split(",")]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ConfigError(f"--seeds: expected a count (3) or a list of seeds (42,7,1), got {spec!r}") from None
    if len(numbers) == 1 and "," not in spec:
        if numbers[0] < 1:
            raise ConfigError(f"--seeds: the count must be >= 1, got {numbers[0]}")
        return [first_seed + offset for offset in range(numbers[0])]
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f"--seeds: seed listed twice in {spec!r}")
    return numbers


def seed_run_folder(output: Path | str, seed: int) -> Path:
    return Path(output) / f"{SEED_RUN_PREFIX}{seed}"


def train_seeds(config: TrainConfig, seeds: list[int], train) -> dict:
    """Train `config` once per seed (`train(config) -> metrics`) and write the summary; returns it."""
    results = {}
    for seed in seeds:
        folder = seed_run_folder(config.output, seed)
        if (folder / METRICS_FILE).is_file():
            check_reusable(folder, config)
            log.info("seed %d: %s already finished, reusing its metrics", seed, folder)
            results[seed] = read_json(folder / METRICS_FILE)
            continue
        log.info("seed %d: training into %s", seed, folder)
        metrics = train(dataclasses.replace(config, seed=seed, output=str(folder)))
        if not metrics:  # a non-zero rank of a torchrun job: rank 0 writes the summary
            continue
        results[seed] = metrics
    if not results:
        return {}
    summary = summarize(results)
    write_json_atomic(Path(config.output) / SEEDS_SUMMARY_FILE, summary)
    return summary


def check_reusable(folder: Path, config: TrainConfig) -> None:
    """Refuse to count a finished seed folder trained with another setting than `config`'s."""
    try:
        trained = build_config(folder / CONFIG_FILE)
    except ConfigError as error:
        raise ConfigError(f"{folder} holds a finished run, but its {CONFIG_FILE} cannot be compared: {error}") from None
    differing = [name for name in (field.name for field in dataclasses.fields(TrainConfig))
                 if name not in HOW_IT_RAN and _comparable(name, getattr(trained, name)) != _comparable(name, getattr(config, name))]
    if differing:
        changes = ", ".join(f"{name} {getattr(trained, name)!r} there, {getattr(config, name)!r} here" for name in differing)
        raise ConfigError(f"{folder} holds a finished run of another setting ({changes}); its metrics would be "
                          "averaged with this sweep's: give another --output, or move that folder away")


def _comparable(name: str, value):
    if name not in PATH_FIELDS or value is None:
        return value
    if isinstance(value, tuple):
        return tuple(os.path.normpath(item) for item in value)
    return os.path.normpath(value)


def _figure(metrics: dict, path: tuple[str, ...]) -> float | None:
    value = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return None if value is None else float(value)  # None: e.g. a test split without leakage-free texts


def summarize(results: dict[int, dict]) -> dict:
    """Per seed and mean / sample standard deviation (0 for one seed) of each figure, where every seed has it."""
    per_seed = {str(seed): {name: _figure(metrics, path) for name, path in FIGURES} for seed, metrics in results.items()}
    summary: dict = {"seeds": [int(seed) for seed in per_seed], "runs": per_seed}
    for name, _ in FIGURES:
        values = [figures[name] for figures in per_seed.values()]
        if values and all(value is not None for value in values):
            summary[name] = {"mean": statistics.fmean(values),
                             "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
    return summary


def format_summary(summary: dict) -> str:
    """A table: one row per seed, then mean ± std, accuracies in percent."""
    columns = [name for name, _ in FIGURES]
    headers = {"dev_accuracy": "dev", "test_accuracy": "test", "test_leakage_free_accuracy": "test, leakage-free"}
    width = 20
    lines = ["seed".ljust(10) + "".join(headers[name].rjust(width) for name in columns)]
    for seed, figures in summary["runs"].items():
        cells = ["-" if figures[name] is None else f"{figures[name] * 100:.2f}" for name in columns]
        lines.append(seed.ljust(10) + "".join(cell.rjust(width) for cell in cells))
    cells = [f"{summary[name]['mean'] * 100:.2f} ± {summary[name]['std'] * 100:.2f}" if name in summary else "-"
             for name in columns]
    lines.append("mean ± std".ljust(10) + "".join(cell.rjust(width) for cell in cells))
    return "\n".join(lines)

