"""`--format openvino`: the IR version folder, parity with torch (fp32 1e-4; bf16 and int8 looser),
calibration source recorded, engine picked by the files, and the CLI's one-line errors.

Tolerances for reduced precision on the tiny random model (probabilities near 0.5, the most
sensitive place): bf16 keeps 8 bits of mantissa, so 1e-2; static int8 rounds activations to
1/255 of their calibrated range, so 5e-2. Export itself refuses more than 0.1 (REDUCED_TOLERANCE).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bertserve.cli import main
from bertserve.errors import ExportError
from bertserve.export.version import ExportSettings, export_run
from bertserve.inference.model import ExportedModel
from bertserve.inference.engines import OnnxRuntimeEngine, OpenVinoEngine

TEXTS = ["很好", "太差了，不推荐", "房间干净，服务热情，下次还来！", "一般" * 30, "Wi-Fi 很慢😀"]


@pytest.fixture(scope="module")
def openvino_export(tiny_run, tmp_path_factory):
    return export_run(tiny_run, tmp_path_factory.mktemp("ov") / "tiny", ExportSettings(version=1, format="openvino")).path


def test_openvino_folder_holds_ir_and_no_onnx(openvino_export):
    present = {path.relative_to(openvino_export).as_posix() for path in openvino_export.rglob("*") if path.is_file()}
    assert {"model.xml", "model.bin", "manifest.json", "signature.json", "labels.json"} <= present
    assert "model.onnx" not in present
    manifest = json.loads((openvino_export / "manifest.json").read_text(encoding="utf-8"))
    assert {"model.xml", "model.bin"} <= set(manifest["files"])
    config = json.loads((openvino_export / "export_config.json").read_text(encoding="utf-8"))
    assert config["engine"] == {"format": "openvino", "inference_precision": "fp32"}
    assert config["settings"]["format"] == "openvino" and config["calibration_source"] is None
    assert "openvino" in config["library_versions"]
    assert "- format: openvino" in (openvino_export / "model_card.md").read_text(encoding="utf-8")


def test_fp32_parity_with_onnx_and_torch(openvino_export, tiny_export):
    config = json.loads((openvino_export / "export_config.json").read_text(encoding="utf-8"))
    assert config["parity_max_abs_diff"] <= 1e-4  # against torch, checked by export itself
    model = ExportedModel.load(openvino_export, threads=1)
    assert isinstance(model.engine, OpenVinoEngine) and model.engine.inference_precision == "fp32"
    reference = ExportedModel.load(tiny_export, threads=1)
    assert isinstance(reference.engine, OnnxRuntimeEngine)
    assert np.abs(model.predict_texts(TEXTS) - reference.predict_texts(TEXTS)).max() <= 1e-4


def test_shared_input_buffers_give_each_call_its_own_answer(openvino_export):
    """The engine hands OpenVINO the numpy buffers in place (set_input_tensor, no copy): alternating
    batches of different shapes must still get their own answers, and the caller's arrays stay
    untouched."""
    model = ExportedModel.load(openvino_export, threads=1)
    request = model.engine.compiled.create_infer_request()

    def copied(inputs: dict[str, np.ndarray]) -> np.ndarray:  # OpenVINO's copying path, for reference
        request.infer({name: inputs[name] for name in model.engine.input_names})
        return np.array(request.get_output_tensor(0).data, copy=True)

    batches = [model.tokenizer.encode(TEXTS[:2]).as_dict(), model.tokenizer.encode(TEXTS[2:]).as_dict()]
    expected = [copied(batch) for batch in batches]
    before = [{name: value.copy() for name, value in batch.items()} for batch in batches]
    for _ in range(2):
        for batch, answer in zip(batches, expected):
            np.testing.assert_array_equal(model.engine.run(batch), answer)
    for batch, kept in zip(batches, before):
        for name, value in kept.items():
            np.testing.assert_array_equal(batch[name], value)


def test_bf16_inference_stays_close(openvino_export, tiny_export):
    bf16 = ExportedModel.load(openvino_export, threads=1, inference_precision="bf16")
    assert bf16.engine.inference_precision == "bf16"
    assert bf16.engine.config["INFERENCE_PRECISION_HINT"] == "bf16"
    reference = ExportedModel.load(tiny_export, threads=1).predict_texts(TEXTS)
    assert np.abs(bf16.predict_texts(TEXTS) - reference).max() <= 1e-2


def test_int8_export_on_the_command_line_with_calibration_file(tiny_run, tiny_export, tmp_path, capsys):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("很好\n\n太差了\n房间干净，服务热情\n一般般吧\n", encoding="utf-8")
    base = tmp_path / "base"
    # No --format/--quantize: OpenVINO static int8 is the default.
    argv = ["export", "--run", str(tiny_run), "--base-path", str(base), "--version", "3",
            "--calibration-data", str(calibration)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"exported {base / '3'} (model.xml+model.bin ") and ", openvino int8, parity max |dp| " in out
    config = json.loads((base / "3" / "export_config.json").read_text(encoding="utf-8"))
    assert config["calibration_source"] == f"--calibration-data {calibration.resolve()} (first 4 of 4)"
    assert config["calibration_examples"] == 4
    assert config["engine"]["inference_precision"] == "fp32"  # int8 layers, the rest in fp32
    assert config["parity_max_abs_diff"] <= 5e-2
    assert (base / "3" / "model.bin").stat().st_size < (tiny_export / "model.onnx").stat().st_size / 2
    int8 = ExportedModel.load(base / "3", threads=1)
    reference = ExportedModel.load(tiny_export, threads=1).predict_texts(TEXTS)
    assert np.abs(int8.predict_texts(TEXTS) - reference).max() <= 5e-2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "onnx", "--quantize", "bf16"], "--quantize bf16 needs --format openvino"),
        (["--format", "openvino", "--quantize", "int8", "--calibration-data", "/no/such.txt"],
         "--calibration-data /no/such.txt does not exist"),
    ],
)
def test_bad_combinations_are_one_line_errors(tiny_run, tmp_path, capsys, extra, message):
    code = main(["export", "--run", str(tiny_run), "--base-path", str(tmp_path / "base"), "--version", "1", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("bertserve: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "base" / "1").exists()


def test_engine_choice_follows_the_files(openvino_export, tiny_export):
    assert isinstance(ExportedModel.load(openvino_export, engine="auto", threads=1).engine, OpenVinoEngine)
    with pytest.raises(ExportError, match="no model.onnx for ONNX Runtime .* re-export with --format onnx"):
        ExportedModel.load(openvino_export, engine="onnxruntime")
    with pytest.raises(ExportError, match="OpenVINO engine runs on the CPU only"):
        ExportedModel.load(openvino_export, device="cuda")


def test_serving_an_openvino_export_imports_neither_torch_nor_nncf(openvino_export):
    code = (
        "import sys\n"
        "from bertserve.inference.model import ExportedModel\n"
        f"ExportedModel.load({str(openvino_export)!r}, threads=1).predict_texts(['很好'])\n"
        "print(sorted(name for name in ('torch', 'transformers', 'nncf') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_fp32_variant_sits_beside_the_int8_model_and_the_tuner_measures_both(tiny_run, tiny_export, tmp_path, capsys):
    from bertserve.inference.engines import available_variants, create_engine
    from bertserve.inference.manifest import verify_folder
    from bertserve.inference.tuning import TuningOptions

    base = tmp_path / "base"
    assert main(["export", "--run", str(tiny_run), "--base-path", str(base), "--version", "1", "--fp32-variant"]) == 0
    folder = base / "1"
    assert "openvino int8" in capsys.readouterr().out
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert {"model.xml", "model.bin", "variants/fp32/model.xml", "variants/fp32/model.bin"} <= set(manifest["files"])
    verify_folder(folder)  # the variant's .bin is allowed beside its .xml; checksums hold
    config = json.loads((folder / "export_config.json").read_text(encoding="utf-8"))
    variant = config["variants"]["fp32"]
    assert variant["path"] == "variants/fp32/model.xml" and variant["parity_max_abs_diff"] <= 1e-4
    assert config["model_bytes"] == sum((folder / name).stat().st_size for name in (
        "model.xml", "model.bin", "variants/fp32/model.xml", "variants/fp32/model.bin"))
    assert available_variants(folder) == ["fp32"]
    # The variant is the unquantised model: it agrees with the fp32 ONNX export to 1e-4.
    reference = ExportedModel.load(tiny_export, threads=1).predict_texts(TEXTS)
    engine = create_engine(folder, variant="fp32", threads=1)
    assert engine.settings["model"] == "variants/fp32" and engine.path == folder / "variants" / "fp32" / "model.xml"
    # Loaded through the tuner, both models are measured (the variant first: the most precise).
    model = ExportedModel.load(folder, tuning=TuningOptions(cache_dir=tmp_path / "cache", threads=1))
    trials = model.engine.tuning["trials"]
    assert [trial["variant"] for trial in trials] == ["fp32", None]
    assert all(trial["ms"] is not None for trial in trials)
    assert np.abs(model.predict_texts(TEXTS) - reference).max() <= 5e-2
    with pytest.raises(ExportError, match="no variants/bf16/model.xml"):
        create_engine(folder, variant="bf16")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "onnx", "--quantize", "int8", "--fp32-variant"], "--fp32-variant adds an fp32 twin"),
        (["--format", "openvino", "--quantize", "none", "--fp32-variant"], "--fp32-variant adds an fp32 twin"),
    ],
)
def test_fp32_variant_needs_a_reduced_openvino_export(tiny_run, tmp_path, capsys, extra, message):
    code = main(["export", "--run", str(tiny_run), "--base-path", str(tmp_path / "base"), "--version", "1", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("bertserve: error: ") and message in err and err.count("\n") == 1
