"""End to end: train a tiny random BERT on a few dozen examples, then evaluate the run folder."""

from __future__ import annotations

import json
import random

import pytest

from bertserve.training.config import build_config
from bertserve.errors import RunFolderError
from bertserve.training.evaluate import evaluate_run
from bertserve.training.loop import length_grouped_batches, train



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_pretrained, small_data):
    output = tmp_path_factory.mktemp("runs") / "tiny"
    config = build_config(flags=dict(data=str(small_data), pretrained=str(tiny_pretrained), output=str(output),
                                     epochs=4, batch_size=4, learning_rate=5e-3, max_seq_length=32, warmup_ratio=0.0,
                                     precision="fp32", seed=1), environ={})
    metrics = train(config)
    return output, metrics


def test_run_folder_contents(trained_run):
    output, metrics = trained_run
    names = {path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file()}
    assert {
        "config.json", "labels.json", "history.jsonl", "metrics.json", "data.json", "environment.json", "model_card.md",
        "model/config.json", "model/model.safetensors",
        "tokenizer/vocab.txt", "tokenizer/tokenizer.json", "tokenizer/tokenizer_settings.json",
        "plots/loss_accuracy.png", "plots/confusion_matrix.png",
    } <= names
    assert not any(name.startswith("model.tmp") or name.startswith("model.old") for name in names)
    assert json.loads((output / "labels.json").read_text()) == {"labels": ["negative", "positive"], "values": ["0", "1"]}
    config = json.loads((output / "config.json").read_text())
    assert config["epochs"] == 4 and config["seed"] == 1 and config["max_seq_length"] == 32
    for split in ("dev", "test"):
        assert set(metrics[split]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
        assert sum(map(sum, metrics[split]["confusion_matrix"])) == 16


def test_loss_went_down(trained_run):
    output, _ = trained_run
    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.95
    assert all("dev_accuracy" in record for record in history)


def test_best_dev_epoch_is_the_one_kept(trained_run):
    output, metrics = trained_run
    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    best = max(history, key=lambda record: record["dev_accuracy"])  # first of equals, like the loop
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["dev"]["accuracy"] == pytest.approx(best["dev_accuracy"])


def test_evaluate_reproduces_training_metrics(trained_run, small_data):
    output, metrics = trained_run
    report = evaluate_run(output, str(small_data / "test.tsv"))
    assert report["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert report["confusion_matrix"] == metrics["test"]["confusion_matrix"]


def test_existing_run_folder_is_not_overwritten(trained_run, tiny_pretrained, small_data):
    output, _ = trained_run
    config = build_config(flags=dict(data=str(small_data), pretrained=str(tiny_pretrained), output=str(output), max_seq_length=32), environ={})
    with pytest.raises(RunFolderError, match="already holds a trained model"):
        train(config)


def test_length_grouped_batches_cover_every_example_once():
    lengths = [random.Random(3).randint(3, 128) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 32, random.Random(0))
    assert sorted(index for batch in batches for index in batch) == list(range(1000))
    assert all(len(batch) <= 32 for batch in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # grouped: far less than the ~125 of random batches
