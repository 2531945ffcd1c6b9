"""`bertserve export` on the command line: exit codes, the one-line summary and one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np

from bertserve.cli import main
from bertserve.inference.model import ExportedModel


def test_int8_export_with_force_replaces_the_version(tiny_run, tiny_export, tmp_path, capsys):
    base = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_export, base / "1")
    argv = ["export", "--run", str(tiny_run), "--base-path", str(base), "--version", "1", "--format", "onnx", "--quantize", "int8"]
    assert main(argv + ["--force"]) == 0
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert len(out) == 1
    assert "Loading weights" not in captured.err  # no third-party progress bars around the summary
    assert out[0].startswith(f"exported {base / '1'} (model.onnx ") and ", int8, fused, parity max |dp| " in out[0]
    assert [path.name for path in base.iterdir()] == ["1"]  # no .tmp-/.old- folder left
    config = json.loads((base / "1" / "export_config.json").read_text(encoding="utf-8"))
    assert config["settings"]["quantize"] == "int8"
    assert (base / "1" / "model.onnx").stat().st_size < (tiny_export / "model.onnx").stat().st_size / 2

    int8 = ExportedModel.load(base / "1", threads=1)
    fp32 = ExportedModel.load(tiny_export, threads=1)
    texts = ["很好", "太差了，不推荐", "房间干净，服务热情，下次还来！", "一般" * 30]
    difference = float(np.abs(int8.predict_texts(texts) - fp32.predict_texts(texts)).max())
    print(f"int8 vs fp32 max |dp| on the tiny model: {difference:.2e}")
    assert difference < 0.01  # "roughly": dynamic int8 on a random tiny model


def test_existing_version_is_a_one_line_error(tiny_run, tiny_export, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(tiny_export, base / "7")
    code = main(["export", "--run", str(tiny_run), "--base-path", str(base), "--version", "7"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == f"bertserve: error: {base / '7'} already exists; pass --force to replace it or choose another --version\n"


def test_missing_run_is_a_one_line_error(tmp_path, capsys):
    code = main(["export", "--run", str(tmp_path / "no-run"), "--base-path", str(tmp_path / "base")])
    assert code == 2
    assert capsys.readouterr().err == f"bertserve: error: run folder {tmp_path / 'no-run'} does not exist\n"
    assert not (tmp_path / "base").exists()
