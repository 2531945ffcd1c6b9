"""Ensembles: `export --run A --run B` writes one version with members/<index>/ that serves the mean
of the members' probabilities; mixed labels or tokenizers are refused."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_run

from bertserve.cli import main
from bertserve.errors import ExportError
from bertserve.export.version import ExportSettings, export_runs
from bertserve.inference.model import AveragedEngine, ExportedModel, softmax

TEXTS = ["很好", "太差了，不推荐", "房间干净，服务热情，下次还来！", "一般" * 30, "Wi-Fi 很慢😀"]
SHARED = {"labels.json", "signature.json", "model_card.md", "export_config.json",
          "tokenizer/vocab.txt", "tokenizer/tokenizer.json", "tokenizer/tokenizer_settings.json"}


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("second") / "run", seed=1)


@pytest.fixture(scope="module")
def ensemble(tiny_run, second_run, tmp_path_factory):
    return export_runs([tiny_run, second_run], tmp_path_factory.mktemp("ensemble") / "base", ExportSettings(version=1))


def torch_probabilities(run_dir, texts):
    import torch

    from bertserve.training.run_folder import load_run

    run = load_run(run_dir)
    with torch.no_grad():
        logits = run.model(**{k: torch.from_numpy(v) for k, v in run.tokenizer.encode(texts).as_dict().items()}).logits
    return softmax(logits.numpy())


def test_ensemble_folder_members_and_manifest(ensemble, tiny_run, second_run):
    folder = ensemble.path
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    members = {f"members/{index}/{name}" for index in (0, 1) for name in ("model.onnx", "export_config.json")}
    assert present == SHARED | members | {"manifest.json"}
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == SHARED | members
    for relative, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((folder / relative).read_bytes()).hexdigest()
    config = json.loads((folder / "export_config.json").read_text(encoding="utf-8"))
    assert config["source_run"] == [str(tiny_run.resolve()), str(second_run.resolve())]
    assert [member["folder"] for member in config["ensemble"]["members"]] == ["members/0", "members/1"]
    assert [member["source_run"] for member in config["ensemble"]["members"]] == config["source_run"]
    assert config["ensemble"]["combine"] == "mean of the members' probabilities"
    assert config["ensemble"]["parity_max_abs_diff"] <= 1e-4
    assert config["ensemble"]["latency_ratio_vs_one_member"] > 0
    for index, run in enumerate((tiny_run, second_run)):
        member = json.loads((folder / "members" / str(index) / "export_config.json").read_text(encoding="utf-8"))
        assert member["source_run"] == str(run.resolve())
        assert member["engine"] == {"format": "onnx", "inference_precision": "fp32"}
        assert member["parity_max_abs_diff"] <= 1e-4
    assert ensemble.details["members"] == 2
    assert ensemble.summary().startswith(f"exported {folder} (2 x model.onnx ")
    assert ", ensemble of 2, fp32, fused, parity max |dp| " in ensemble.summary()


def test_ensemble_serves_the_mean_of_its_members(ensemble, tiny_run, second_run):
    model = ExportedModel.load(ensemble.path, threads=1)
    assert isinstance(model.engine, AveragedEngine) and len(model.engine.members) == 2
    assert model.labels == ["negative", "positive"]
    expected = (torch_probabilities(tiny_run, TEXTS) + torch_probabilities(second_run, TEXTS)) / 2
    predicted = model.predict_texts(TEXTS)
    assert np.abs(predicted - expected).max() <= 1e-4
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, atol=1e-6)
    # The members really differ, so the mean is not just one of them.
    assert np.abs(torch_probabilities(tiny_run, TEXTS) - torch_probabilities(second_run, TEXTS)).max() > 1e-3


def test_openvino_ensemble_on_the_command_line(tiny_run, second_run, tmp_path, capsys):
    base = tmp_path / "base"
    argv = ["export", "--run", str(tiny_run), "--run", str(second_run), "--base-path", str(base), "--version", "2",
            "--format", "openvino", "--quantize", "none"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"exported {base / '2'} (2 x model.xml+model.bin ") and ", ensemble of 2, openvino fp32, " in out
    files = {path.relative_to(base / "2").as_posix() for path in (base / "2").rglob("*.*") if path.is_file()}
    assert {"members/0/model.xml", "members/0/model.bin", "members/1/model.xml", "members/1/model.bin"} <= files
    model = ExportedModel.load(base / "2", threads=1)  # the manifest allows model.bin beside each member's model.xml
    expected = (torch_probabilities(tiny_run, TEXTS) + torch_probabilities(second_run, TEXTS)) / 2
    assert np.abs(model.predict_texts(TEXTS) - expected).max() <= 1e-4


def test_mixed_labels_are_refused_in_one_line(tiny_run, tmp_path, capsys):
    other = make_tiny_run(tmp_path / "three", labels=["negative", "neutral", "positive"])
    base = tmp_path / "base"
    assert main(["export", "--run", str(tiny_run), "--run", str(other), "--base-path", str(base)]) == 2
    assert capsys.readouterr().err == (
        f"bertserve: error: cannot ensemble {tiny_run} and {other}: labels ['negative', 'positive'] vs "
        "['negative', 'neutral', 'positive']; every --run must have the same labels in the same order\n"
    )
    assert not base.exists()


def test_mixed_tokenizers_and_repeated_runs_are_refused(tiny_run, tmp_path):
    other = shutil.copytree(tiny_run, tmp_path / "other")
    settings_file = other / "tokenizer" / "tokenizer_settings.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings_file.write_text(json.dumps(settings | {"max_seq_length": 64}), encoding="utf-8")
    with pytest.raises(ExportError, match=r"their tokenizers differ \(lowercase/max_seq_length/truncation "
                                          r"\(True, 128, 'head'\) vs \(True, 64, 'head'\)\)"):
        export_runs([tiny_run, other], tmp_path / "base", ExportSettings(version=1))
    vocab = other / "tokenizer" / "vocab.txt"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    lines = vocab.read_text(encoding="utf-8").splitlines()
    vocab.write_text("\n".join(lines[:-1] + ["[unused-x]"]) + "\n", encoding="utf-8")
    with pytest.raises(ExportError, match=r"their tokenizers differ \(vocabularies differ\)"):
        export_runs([tiny_run, other], tmp_path / "base", ExportSettings(version=1))
    with pytest.raises(ExportError, match="the same --run is given twice"):
        export_runs([tiny_run, tiny_run], tmp_path / "base", ExportSettings(version=1))
    assert not (tmp_path / "base").exists()


def test_an_ensemble_with_an_fp32_variant_is_refused_in_one_line(tiny_run, second_run, tmp_path, capsys):
    base = tmp_path / "base"
    argv = ["export", "--run", str(tiny_run), "--run", str(second_run), "--base-path", str(base), "--fp32-variant"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "bertserve: error: --fp32-variant is for a single run; an ensemble's members carry no variants\n")
    assert not base.exists()
