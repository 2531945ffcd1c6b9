"""`bertserve train` and `bertserve evaluate` end to end on the tiny model: quiet logs of our own,
several seeds with a mean ± std summary, and the leakage-free test accuracy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import NEGATIVE, POSITIVE

TINY = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "5e-3", "--max-seq-length", "16", "--precision", "fp32",
        "--checkpoint-every-steps", "0", "--threads", "1"]
NEW_TEXTS = [(1, "服务周到，下次还来"), (0, "隔音太差，一夜没睡"), (1, "早餐丰富"), (0, "前台态度恶劣")]


def bertserve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertserve", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def leaky_data(tmp_path_factory):
    """train: 16 texts twice; test: 8 of them (leaked) + 4 texts not in train (leakage-free); dev: all 16."""
    folder = tmp_path_factory.mktemp("leaky")
    known = [(1, text) for text in POSITIVE] + [(0, text) for text in NEGATIVE]
    splits = {"train": known * 2, "dev": known, "test": known[::2] + NEW_TEXTS}
    for split, rows in splits.items():
        (folder / f"{split}.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def command_run(tmp_path_factory, tiny_pretrained, leaky_data):
    output = tmp_path_factory.mktemp("command") / "run"
    result = bertserve("train", "--data", str(leaky_data), "--pretrained", str(tiny_pretrained), "--output", str(output), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_train_logs_say_things_in_our_own_words(command_run):
    _, result = command_run
    for noise in ("LOAD REPORT", "MISSING", "Loading weights", "Writing model shards", "newly initialized"):
        assert noise not in result.stderr, noise
    lines = result.stderr.splitlines()
    assert any(line.endswith("new classification head for 2 labels (the pretrained weights have none for this task)")
               for line in lines)
    assert any(line.endswith("data train: 32 rows, 32 kept, 16 duplicate texts (kept); negative 16, positive 16") for line in lines)
    assert any(line.endswith("data test: 8 of 12 texts also occur in train; the other 4 make the leakage-free test set")
               for line in lines)
    assert not any(line.startswith("{") for line in lines)  # the full data report is in data.json, not the log
    assert "it/s]" not in result.stderr and "epoch 1/1:" not in result.stderr  # no progress bars when stderr is not a terminal


def test_metrics_and_stdout_carry_the_leakage_free_test_accuracy(command_run):
    output, result = command_run
    metrics = json.loads((output / "metrics.json").read_text())
    free = metrics["test"]["leakage_free"]
    assert free["examples"] == 4
    assert sum(map(sum, free["confusion_matrix"])) == 4
    assert "leakage_free" not in metrics["dev"]  # model selection looks at dev only; leakage is reported for test
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["test"]["leakage_free_accuracy"] == round(free["accuracy"], 4)
    assert json.loads((output / "data.json").read_text())["test_leakage_free_examples"] == 4


def test_evaluate_reports_leakage_free_from_the_folder_or_a_file(command_run, leaky_data):
    output, _ = command_run
    metrics = json.loads((output / "metrics.json").read_text())
    from_folder = bertserve("evaluate", "--run", str(output), "--data", str(leaky_data), "--json")
    assert from_folder.returncode == 0, from_folder.stderr
    report = json.loads(from_folder.stdout)
    assert report["leakage_free"]["examples"] == 4
    assert report["leakage_free"]["accuracy"] == pytest.approx(metrics["test"]["leakage_free"]["accuracy"])
    from_file = bertserve("evaluate", "--run", str(output), "--data", str(leaky_data / "test.tsv"),
                          "--exclude-texts-of", str(leaky_data / "train.tsv"))
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.splitlines()[-1] == (f"leakage-free (4 of 12 texts not in the training data): accuracy "
                                                 f"{report['leakage_free']['accuracy']:.4f}  macro-F1 {report['leakage_free']['macro_f1']:.4f}")
    assert "Loading weights" not in from_file.stderr
    plain = bertserve("evaluate", "--run", str(output), "--data", str(leaky_data / "test.tsv"), "--json")
    assert "leakage_free" not in json.loads(plain.stdout)  # a lone file: the training texts are unknown


def test_exclude_texts_of_a_missing_file_is_a_one_line_error(command_run, leaky_data, tmp_path):
    output, _ = command_run
    result = bertserve("evaluate", "--run", str(output), "--data", str(leaky_data / "test.tsv"),
                       "--exclude-texts-of", str(tmp_path / "nope.tsv"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bertserve: error: data file {tmp_path / 'nope.tsv'} does not exist"


def test_several_seeds_give_a_summary_and_a_rerun_reuses_finished_seeds(tmp_path, tiny_pretrained, leaky_data):
    output = tmp_path / "sweep"
    args = ["train", "--data", str(leaky_data), "--pretrained", str(tiny_pretrained), "--output", str(output), *TINY,
            "--seeds", "5,6"]
    result = bertserve(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in output.iterdir()) == ["seed-5", "seed-6", "seeds_summary.json"]
    summary = json.loads((output / "seeds_summary.json").read_text())
    assert summary["seeds"] == [5, 6]
    for seed in ("5", "6"):
        metrics = json.loads((output / f"seed-{seed}" / "metrics.json").read_text())
        assert json.loads((output / f"seed-{seed}" / "config.json").read_text())["seed"] == int(seed)
        assert summary["runs"][seed] == {"dev_accuracy": metrics["dev"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"],
                                         "test_leakage_free_accuracy": metrics["test"]["leakage_free"]["accuracy"]}
    devs = [summary["runs"][seed]["dev_accuracy"] for seed in ("5", "6")]
    assert summary["dev_accuracy"]["mean"] == pytest.approx(sum(devs) / 2)
    assert summary["dev_accuracy"]["n"] == 2
    table = result.stdout.splitlines()
    assert table[0].split() == ["seed", "dev", "test", "test,", "leakage-free"]
    assert table[1].split()[0] == "5" and table[2].split()[0] == "6" and table[3].startswith("mean ± std")
    assert json.loads(table[-1])["run"] == str(output)

    again = bertserve(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seed 5: " in again.stderr and "already finished, reusing its metrics" in again.stderr
    assert json.loads((output / "seeds_summary.json").read_text()) == summary


def test_seeds_with_resume_is_refused(tmp_path):
    result = bertserve("train", "--resume", "--seeds", "3", "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "bertserve: error: --resume continues one run: give --output RUN/seed-N instead of --seeds"


def test_evaluate_with_two_runs_prints_each_member(command_run, leaky_data):
    output, _ = command_run
    alone = json.loads(bertserve("evaluate", "--run", str(output), "--data", str(leaky_data), "--json").stdout)
    result = bertserve("evaluate", "--run", str(output), "--run", str(output), "--data", str(leaky_data))
    assert result.returncode == 0, result.stderr
    member_line = (f"member {output}: accuracy {alone['accuracy']:.4f}, "
                   f"leakage-free {alone['leakage_free']['accuracy']:.4f}")
    assert result.stdout.splitlines()[-2:] == [member_line, member_line]
    assert f"accuracy {alone['accuracy']:.4f}" in result.stdout  # a run averaged with itself is itself
