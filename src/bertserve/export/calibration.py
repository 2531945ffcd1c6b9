"""Calibration texts for static int8 quantisation: which texts, and where they came from.

Static int8 (NNCF post-training quantisation for OpenVINO) measures activation ranges on real
inputs, so the texts should look like what the model will serve. In order of preference:

1. `--calibration-data FILE`, when given: a UTF-8 file, one text per line (blank lines skipped),
   or a .tsv/.csv/.jsonl data file read like training data (its text column).
2. The run's dev split, when the run folder's data.json names a dev file that still exists
   (relative paths are resolved against the folder `bertserve train` ran in).
3. The built-in parity texts of `bertserve.export.version` (20 varied sentences): enough for plumbing and
   tiny models, weak for a real model.

    from bertserve.export.calibration import calibration_texts
    texts, source = calibration_texts(Path("runs/chnsenticorp"), None, limit=300, fallback=PARITY_TEXTS)

`source` is recorded in export_config.json so an export says what it was calibrated on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from bertserve.errors import DataError, ExportError
from bertserve.files import read_json
from bertserve.layout import CONFIG_FILE, DATA_REPORT_FILE

logger = logging.getLogger(__name__)

PLAIN_TEXT_SUFFIXES = (".txt", "")


def read_text_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ExportError(f"--calibration-data {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return [line.strip() for line in lines if line.strip()]


def read_data_file_texts(path: Path) -> list[str]:
    from bertserve.data.datasets import read_file

    try:
        examples, _, _ = read_file(path)
    except DataError as error:
        raise ExportError(f"calibration data: {error}") from None
    return [example.text for example in examples]


def run_dev_file(run_dir: Path) -> Path | None:
    """The dev data file recorded in `run_dir/data.json`, if it still exists."""
    data_path, config_path = run_dir / DATA_REPORT_FILE, run_dir / CONFIG_FILE
    if not data_path.is_file():
        return None
    try:
        dev = read_json(data_path).get("splits", {}).get("dev", {}).get("file")
        output = read_json(config_path).get("output") if config_path.is_file() else None
    except (ValueError, AttributeError):
        return None
    if not isinstance(dev, str):
        return None  # e.g. a held-out part of train: no file of its own
    recorded = Path(dev)
    candidates = [recorded] if recorded.is_absolute() else []
    if not recorded.is_absolute():
        # train wrote paths relative to its working folder: run_dir minus the recorded --output.
        if isinstance(output, str) and not Path(output).is_absolute():
            depth = len(Path(output).parts)
            candidates.append(run_dir.resolve().parents[depth - 1] / recorded if depth else recorded)
        candidates.append(Path.cwd() / recorded)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def calibration_texts(
    run_dir: Path, calibration_file: Path | str | None, limit: int, fallback: Sequence[str]
) -> tuple[list[str], str]:
    """Up to `limit` calibration texts (the first ones, so an export is reproducible) and a
    description of their source."""
    if limit < 1:
        raise ExportError(f"--calibration-size must be a positive integer, got {limit}")
    if calibration_file is not None:
        path = Path(calibration_file)
        if not path.is_file():
            raise ExportError(f"--calibration-data {path} does not exist")
        texts = read_text_lines(path) if path.suffix.lower() in PLAIN_TEXT_SUFFIXES else read_data_file_texts(path)
        if not texts:
            raise ExportError(f"--calibration-data {path} holds no texts")
        return texts[:limit], f"--calibration-data {path.resolve()} (first {min(limit, len(texts))} of {len(texts)})"
    dev_file = run_dev_file(Path(run_dir))
    if dev_file is not None:
        texts = read_data_file_texts(dev_file)
        if texts:
            return texts[:limit], f"run dev data {dev_file.resolve()} (first {min(limit, len(texts))} of {len(texts)})"
    logger.warning("no calibration data given and the run records no dev file; calibrating on the built-in parity texts")
    return list(fallback)[:limit], f"built-in parity texts ({min(limit, len(fallback))})"
