"""Calibration texts for static int8: a given file, else the run's dev data, else built-in texts."""

from __future__ import annotations

import json

import pytest

from bertserve.export.calibration import calibration_texts
from bertserve.export.dev_split import run_dev_file, run_dev_split
from bertserve.errors import ExportError

FALLBACK = ("很好", "太差了", "一般")


def make_run(root, dev_text: str | None):
    """A run folder trained from ROOT (output runs/a) whose data.json names data/dev.tsv."""
    run = root / "runs" / "a"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"output": "runs/a"}), encoding="utf-8")
    (run / "data.json").write_text(json.dumps({"splits": {"dev": {"file": "data/dev.tsv"}}}), encoding="utf-8")
    if dev_text is not None:
        (root / "data").mkdir()
        (root / "data" / "dev.tsv").write_text(dev_text, encoding="utf-8")
    return run


def test_run_dev_data_resolved_from_the_training_folder(tmp_path, monkeypatch):
    run = make_run(tmp_path, "label\ttext_a\n1\t房间干净\n0\t太吵了\n1\t早餐好\n")
    monkeypatch.chdir("/")  # not where training ran
    assert run_dev_file(run) == (tmp_path / "data" / "dev.tsv").resolve()
    texts, source = calibration_texts(None, limit=2, fallback=FALLBACK, dev=run_dev_split(run))
    assert texts == ["房间干净", "太吵了"]
    assert source == f"run dev data {(tmp_path / 'data' / 'dev.tsv').resolve()} (first 2 of 3)"


def test_given_file_wins_one_text_per_line(tmp_path):
    run = make_run(tmp_path, "label\ttext_a\n1\t房间干净\n")
    given = tmp_path / "texts.txt"
    given.write_text("很好\n\n  太差了  \n", encoding="utf-8")
    assert calibration_texts(given, limit=300, fallback=FALLBACK, dev=run_dev_split(run)) == (
        ["很好", "太差了"], f"--calibration-data {given.resolve()} (first 2 of 2)")


def test_fallback_to_built_in_texts_when_the_dev_file_is_gone(tmp_path):
    run = make_run(tmp_path, None)
    assert run_dev_file(run) is None
    assert run_dev_split(run) is None
    assert calibration_texts(None, limit=2, fallback=FALLBACK, dev=None) == (["很好", "太差了"], "built-in parity texts (2)")


def test_bad_calibration_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ExportError, match="holds no texts"):
        calibration_texts(empty, 10, FALLBACK, None)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ExportError, match="not UTF-8 text"):
        calibration_texts(binary, 10, FALLBACK, None)
    with pytest.raises(ExportError, match="--calibration-size must be a positive integer"):
        calibration_texts(None, 0, FALLBACK, None)
