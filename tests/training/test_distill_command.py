"""`bertserve train --teacher ...` end to end on the tiny models: a run distilled from a tiny export
and a tiny run folder (with --seeds, R-Drop and FGM on), what it records, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bertserve.cli import main
from bertserve.files import sha256_of

from conftest import make_tiny_run

TINY = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "5e-3", "--max-seq-length", "16", "--precision", "fp32",
        "--checkpoint-every-steps", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, tiny_pretrained, small_data, tiny_export, tiny_run):
    output = tmp_path_factory.mktemp("distilled") / "sweep"
    result = subprocess.run([sys.executable, "-m", "bertserve", "train", "--data", str(small_data), "--pretrained",
                             str(tiny_pretrained), "--output", str(output), *TINY, "--seeds", "5,6",
                             "--teacher", str(tiny_export), "--teacher", str(tiny_run), "--distill-alpha", "0.7",
                             "--distill-temperature", "3", "--rdrop-alpha", "1", "--fgm-epsilon", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_config_json_records_the_teachers_as_given_and_their_fingerprints(distilled, tiny_export, tiny_run):
    output, _ = distilled
    for seed in (5, 6):
        config = json.loads((output / f"seed-{seed}" / "config.json").read_text())
        assert config["teachers"] == [str(tiny_export), str(tiny_run)]
        assert config["teacher_fingerprints"] == ["sha256:" + sha256_of(tiny_export / "manifest.json"),
                                                  "sha256:" + sha256_of(tiny_run / "model" / "model.safetensors")]
        assert (config["distill_alpha"], config["distill_temperature"], config["seed"]) == (0.7, 3.0, seed)
        card = (output / f"seed-{seed}" / "model_card.md").read_text()
        assert "distilled from 2 teacher(s) (alpha 0.7, temperature 3.0)" in card


def test_teacher_dev_accuracy_is_the_mean_teachers_accuracy_on_dev(distilled, small_data, tiny_export, tiny_run):
    from bertserve.inference.model import ExportedModel
    from bertserve.training.run_folder import load_run

    output, _ = distilled
    rows = [line.split("\t") for line in (small_data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    texts, gold = [text for _, text in rows], np.array([int(label) for label, _ in rows])
    run = load_run(tiny_run)
    with torch.no_grad():
        inputs = {name: torch.from_numpy(array) for name, array in run.tokenizer.encode(texts).as_dict().items()}
        from_run = torch.softmax(run.model(**inputs).logits, dim=-1).numpy()
    mean = (ExportedModel.load(tiny_export).predict_texts(texts) + from_run) / 2
    expected = float(np.mean(mean.argmax(axis=1) == gold))
    for seed in (5, 6):
        metrics = json.loads((output / f"seed-{seed}" / "metrics.json").read_text())
        assert metrics["teacher_dev_accuracy"] == pytest.approx(expected)


def test_teacher_probabilities_are_computed_once_for_every_seed(distilled, tiny_export, tiny_run):
    _, result = distilled
    lines = result.stderr.splitlines()
    # small_data's 48 training rows hold 16 distinct texts (dev repeats them): each teacher reads them once.
    assert sum(line.endswith(f"teacher {tiny_export} (export): probabilities of 16 texts") for line in lines) == 1
    assert sum(line.endswith(f"teacher {tiny_run} (run): probabilities of 16 texts") for line in lines) == 1
    assert sum("teachers' (averaged probabilities) dev accuracy" in line for line in lines) == 2  # logged by each seed


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["train", *args])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


def test_a_teacher_with_other_labels_is_a_one_line_error(tmp_path, capsys, tiny_pretrained, small_data):
    teacher = make_tiny_run(tmp_path / "teacher", labels=["bad", "good"])
    code, last = run_cli(capsys, "--data", str(small_data), "--pretrained", str(tiny_pretrained), "--output",
                         str(tmp_path / "run"), "--teacher", str(teacher), *TINY)
    assert code == 2
    assert last == (f"bertserve: error: --teacher {teacher} has labels ['bad', 'good'] but the training data has "
                    "['negative', 'positive']; a teacher must have the same labels in the same order")
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.parametrize("flags, message", [
    (["--distill-alpha", "1.5"], "distill_alpha must be in [0, 1]"),
    (["--distill-temperature", "0"], "distill_temperature must be > 0"),
    (["--teacher", "{tmp}/missing"], "--teacher {tmp}/missing does not exist (give an export version folder or a run folder)"),
    (["--teacher", "{tmp}"], "--teacher {tmp} is neither an export version folder (no manifest.json) nor a run folder "
                             "(no model/model.safetensors)"),
])
def test_bad_teacher_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    if "--teacher" not in flags:
        flags += ["--teacher", str(tmp_path)]
    code, last = run_cli(capsys, "--output", str(tmp_path / "run"), *flags)
    assert code == 2
    assert last == "bertserve: error: " + message.replace("{tmp}", str(tmp_path))


def test_distill_flags_without_a_teacher_are_refused(tmp_path, capsys):
    code, last = run_cli(capsys, "--output", str(tmp_path / "run"), "--distill-alpha", "0.3")
    assert code == 2
    assert last == "bertserve: error: --distill-alpha and --distill-temperature need at least one --teacher PATH"
