"""`bertserve import-tf`: the 2019 demo's fine-tuned TF checkpoint served without retraining.

The fixture was fine-tuned and saved by google-research/bert's run_classifier.py code under
TensorFlow, which also tokenized the texts and computed the reference probabilities
(`tests/fixtures/make_tf_classifier_checkpoint.py`); these tests need no TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertserve.cli import main
from bertserve.inference.model import ExportedModel

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tf_classifier_tiny"
REFERENCE = json.loads((FIXTURE / "reference_probabilities.json").read_text(encoding="utf-8"))
TEXTS = REFERENCE["texts"]
FP32 = ["--format", "onnx", "--quantize", "none", "--max-seq-length", "64", "--version", "1"]


def import_tf(*args: str) -> int:
    return main(["import-tf", *args])


def expected(step: int) -> dict:
    return {name: np.array(values) for name, values in REFERENCE["checkpoints"][str(step)].items()}


def engine_logits(model: ExportedModel, texts: list[str]) -> np.ndarray:
    inputs = model.tokenizer.encode(texts).as_dict()
    return model.engine.run({name: value for name, value in inputs.items() if name in model.engine.input_names})


@pytest.fixture(scope="module")
def newest_fp32(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("models") / "demo"
    assert import_tf("--checkpoint", str(FIXTURE), "--labels", "negative,positive", "--base-path", str(base), *FP32) == 0
    return base / "1"


def test_fp32_import_gives_tensorflows_probabilities(newest_fp32):
    model = ExportedModel.load(newest_fp32, threads=1)
    assert model.labels == ["negative", "positive"] and model.max_seq_length == 64
    # Google's FullTokenizer ids (lower-casing, accents, [UNK], empty text, truncation to 64).
    assert model.tokenizer.token_ids(TEXTS) == REFERENCE["input_ids"]
    reference = expected(REFERENCE["newest_step"])
    np.testing.assert_allclose(model.predict_texts(TEXTS), reference["probabilities"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(engine_logits(model, TEXTS), reference["logits"], atol=1e-5, rtol=0)
    one_by_one = np.concatenate([model.predict_texts([text]) for text in TEXTS])  # no padding at all
    np.testing.assert_allclose(one_by_one, reference["probabilities"], atol=1e-5, rtol=0)


def test_served_with_the_demos_own_requests(newest_fp32):
    """The demo's client tokenized with FullTokenizer and sent padded ids; a text request works too."""
    import httpx
    from inprocess_server import InProcessServer

    reference = expected(REFERENCE["newest_step"])["probabilities"]
    padded = [ids + [0] * (REFERENCE["max_seq_length"] - len(ids)) for ids in REFERENCE["input_ids"]]
    with InProcessServer(newest_fp32.parent, "chnsenticorp") as server:
        url = f"{server.url}/v1/models/chnsenticorp:predict"
        by_ids = httpx.post(url, json={"inputs": {"input_ids": padded}}, timeout=30).json()
        by_text = httpx.post(url, json={"instances": TEXTS}, timeout=30).json()
    np.testing.assert_allclose(by_ids["outputs"], reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(by_text["predictions"], reference, atol=1e-5, rtol=0)


def test_the_version_folder_says_where_the_weights_came_from(newest_fp32):
    config = json.loads((newest_fp32 / "export_config.json").read_text(encoding="utf-8"))
    source = config["source_run_config"]
    assert source["checkpoint"] == str((FIXTURE / "model.ckpt-30").resolve()) and source["global_step"] == 30
    assert source["labels"] == ["negative", "positive"] and source["do_lower_case"] is True
    card = (newest_fp32 / "model_card.md").read_text(encoding="utf-8")
    assert f"- checkpoint: {(FIXTURE / 'model.ckpt-30').resolve()} (global_step 30)" in card
    assert "- labels, in class-id order: negative, positive" in card


def test_checkpoint_step_picks_an_older_checkpoint(tmp_path, capsys):
    base = tmp_path / "demo"
    assert import_tf("--checkpoint", str(FIXTURE), "--checkpoint-step", "0", "--labels", "negative,positive",
                     "--base-path", str(base), *FP32) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"imported {FIXTURE / 'model.ckpt-0'} (global_step 0) with labels negative, positive"
    assert out[1].startswith(f"exported {base / '1'} (model.onnx ") and len(out) == 2
    probabilities = ExportedModel.load(base / "1", threads=1).predict_texts(TEXTS)
    np.testing.assert_allclose(probabilities, expected(0)["probabilities"], atol=1e-5, rtol=0)
    assert np.abs(probabilities - expected(30)["probabilities"]).max() > 0.1


def test_a_checkpoint_prefix_with_config_and_vocab_from_the_pretrained_folder(tmp_path):
    output = tmp_path / "output"  # run_classifier.py's --output_dir holds only checkpoints
    output.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(FIXTURE / f"model.ckpt-30{suffix}", output / f"model.ckpt-30{suffix}")
    pretrained = FIXTURE / "pretrained"
    assert import_tf("--checkpoint", str(output / "model.ckpt-30"), "--bert-config", str(pretrained / "bert_config.json"),
                     "--vocab", str(pretrained / "vocab.txt"), "--base-path", str(tmp_path / "m"), *FP32) == 0
    model = ExportedModel.load(tmp_path / "m" / "1", threads=1)
    assert model.labels == ["0", "1"]  # run_classifier.py's label_list values when no names are given
    np.testing.assert_allclose(model.predict_texts(TEXTS), expected(30)["probabilities"], atol=1e-5, rtol=0)


def test_default_int8_export_keeps_tensorflows_argmax(tmp_path):
    """The default: OpenVINO static int8, calibrated on the export's parity texts (no dev data).
    Static int8 is rough on a model 8 wide: max |dp| against TensorFlow is ~0.06 here (0.2 when
    calibrated on the four dev texts below instead, which the export's parity guard refuses)."""
    base = tmp_path / "demo"
    assert import_tf("--checkpoint", str(FIXTURE), "--labels", "negative,positive", "--base-path", str(base),
                     "--max-seq-length", "64", "--version", "3") == 0
    config = json.loads((base / "3" / "export_config.json").read_text(encoding="utf-8"))
    assert (config["settings"]["format"], config["settings"]["quantize"]) == ("openvino", "int8")
    reference = expected(30)["probabilities"]
    probabilities = ExportedModel.load(base / "3", threads=1).predict_texts(TEXTS)
    assert probabilities.argmax(axis=1).tolist() == reference.argmax(axis=1).tolist()
    print(f"openvino int8 vs TensorFlow max |dp|: {np.abs(probabilities - reference).max():.3f}")


def test_dev_data_reaches_the_int8_accuracy_check(tmp_path):
    """--dev-data: the demo's dev.tsv checks int8 against fp32 (dynamic int8 with ONNX Runtime here)."""
    dev = tmp_path / "dev.tsv"  # the demo's data format: label TAB text_a, labels "0"/"1"
    reference = expected(30)["probabilities"]
    dev.write_text("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in zip(reference.argmax(1), TEXTS)
                                               if text.strip()), encoding="utf-8")
    base = tmp_path / "demo"
    assert import_tf("--checkpoint", str(FIXTURE), "--labels", "negative,positive", "--base-path", str(base),
                     "--max-seq-length", "64", "--version", "2", "--format", "onnx", "--quantize", "int8",
                     "--dev-data", str(dev)) == 0
    config = json.loads((base / "2" / "export_config.json").read_text(encoding="utf-8"))
    assert (config["settings"]["format"], config["settings"]["quantize"]) == ("onnx", "int8")
    assert config["source_run_config"]["dev_data"] == str(dev.resolve())
    assert config["dev_source"] == str(dev.resolve())  # export's int8-vs-fp32 accuracy check ran on it
    probabilities = ExportedModel.load(base / "2", threads=1).predict_texts(TEXTS)
    assert probabilities.argmax(axis=1).tolist() == reference.argmax(axis=1).tolist()


def copy_checkpoint(folder: Path, with_config: bool = True, with_vocab: bool = True) -> Path:
    folder.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(FIXTURE / f"model.ckpt-30{suffix}", folder / f"model.ckpt-30{suffix}")
    for name, wanted in (("bert_config.json", with_config), ("vocab.txt", with_vocab)):
        if wanted:
            shutil.copy(FIXTURE / name, folder / name)
    return folder


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda tmp: tmp, [], "{tmp}: no TensorFlow checkpoint (expected bert_model.ckpt.index and bert_model.ckpt.data-00000-of-00001)"),
        (lambda tmp: FIXTURE / "pretrained", [],
         "{pretrained}/bert_model.ckpt: no output_weights, so this is a pre-trained, not a fine-tuned, checkpoint; "
         "fine-tune it first: bertserve train --pretrained {pretrained} --data DATA --output RUN"),
        (lambda tmp: FIXTURE, ["--labels", "a,b,c"],
         "{fixture}/model.ckpt-30: output_weights has 2 rows (classes) but 3 labels were given (a, b, c); "
         "give one name per class, in run_classifier.py's label_list order"),
        (lambda tmp: FIXTURE, ["--labels", "negative,"],
         "--labels 'negative,': empty label name; give names separated by commas, e.g. negative,positive"),
        (lambda tmp: copy_checkpoint(tmp / "ckpt", with_config=False), [],
         "{tmp}/ckpt/bert_config.json: not found; it sits in the pretrained model's folder that run_classifier.py read "
         "(--bert_config_file, e.g. chinese_L-12_H-768_A-12/bert_config.json): copy it there or pass --bert-config"),
        (lambda tmp: copy_checkpoint(tmp / "ckpt", with_vocab=False), [],
         "{tmp}/ckpt/vocab.txt: not found; it sits in the pretrained model's folder that run_classifier.py read "
         "(--vocab_file, e.g. chinese_L-12_H-768_A-12/vocab.txt): copy it there or pass --vocab"),
        (lambda tmp: FIXTURE, ["--checkpoint-step", "7"], "{fixture}: no model.ckpt-7.index (steps saved there: 0, 30)"),
    ],
    ids=["no-checkpoint", "pretrained", "label-count", "empty-label", "no-bert-config", "no-vocab", "no-such-step"],
)
def test_one_line_errors(tmp_path, capsys, make, extra, message):
    checkpoint = make(tmp_path)
    base = tmp_path / "models"
    arguments = ["--max-seq-length", "64"] if "--max-seq-length" not in extra else []
    assert import_tf("--checkpoint", str(checkpoint), "--base-path", str(base), *arguments, *extra) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["bertserve: error: " + message.format(tmp=tmp_path, fixture=FIXTURE, pretrained=FIXTURE / "pretrained")]
    assert not base.exists()


def test_the_demo_default_length_must_fit_the_model(tmp_path, capsys):
    assert import_tf("--checkpoint", str(FIXTURE), "--base-path", str(tmp_path / "m")) == 2
    assert capsys.readouterr().err.strip() == (
        f"bertserve: error: --max-seq-length 128 exceeds max_position_embeddings 64 of {FIXTURE / 'bert_config.json'}; "
        "pass --max-seq-length 64 or less"
    )
    # A pre-trained checkpoint is said to be one before anything else is checked.
    assert import_tf("--checkpoint", str(FIXTURE / "pretrained"), "--base-path", str(tmp_path / "m")) == 2
    assert "no output_weights, so this is a pre-trained, not a fine-tuned, checkpoint" in capsys.readouterr().err


def test_an_existing_version_needs_force(newest_fp32, tmp_path, capsys):
    base = tmp_path / "demo"
    shutil.copytree(newest_fp32, base / "1")
    assert import_tf("--checkpoint", str(FIXTURE), "--base-path", str(base), *FP32) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert import_tf("--checkpoint", str(FIXTURE), "--base-path", str(base), *FP32, "--force") == 0
    assert ExportedModel.load(base / "1", threads=1).labels == ["0", "1"]


def test_missing_dev_data_is_said_before_any_work(tmp_path, capsys):
    missing = tmp_path / "dev.tsv"
    assert import_tf("--checkpoint", str(FIXTURE), "--base-path", str(tmp_path / "m"), "--dev-data", str(missing)) == 2
    assert capsys.readouterr().err.strip() == f"bertserve: error: --dev-data {missing}: no such file"
