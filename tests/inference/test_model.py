"""ExportedModel: loading a version folder (checksums, refused file kinds, torch-free) and predicting."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bertserve.errors import ExportError, RequestError
from bertserve.inference.model import AveragedEngine, ExportedModel, softmax
from bertserve.tokenizer import Encoded


@pytest.fixture(scope="module")
def model(tiny_export):
    return ExportedModel.load(tiny_export, threads=1)


@pytest.fixture
def copy(tiny_export, tmp_path):
    """A private copy of the export that a test may damage."""
    return shutil.copytree(tiny_export, tmp_path / "base" / "1")


def test_load_reads_the_version_folder(model, tiny_export):
    assert model.path == tiny_export
    assert model.version == 1
    assert model.labels == ["negative", "positive"]
    assert model.num_labels == 2
    assert model.max_seq_length == 128
    assert model.signature["signature_name"] == "serving_default"
    assert model.tokenizer.vocab_size == 21128
    assert model.export_config["settings"]["version"] == 1


def test_predict_texts_gives_probabilities(model):
    probabilities = model.predict_texts(["很好", "太差了，不推荐", "好" * 300])
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert model.predict_texts([]).shape == (0, 2)


def test_predict_encoded_matches_predict_texts(model):
    texts = ["很好", "房间干净，服务热情"]
    np.testing.assert_array_equal(model.predict_encoded(model.tokenizer.encode(texts)), model.predict_texts(texts))


def test_bad_batches_are_request_errors(model):
    too_long = model.tokenizer.pad([[101] + [100] * 200 + [102]])
    with pytest.raises(RequestError, match="sequence length 202 exceeds this model's max_seq_length 128") as error:
        model.predict_encoded(too_long)
    assert error.value.status == 400
    out_of_vocabulary = model.tokenizer.pad([[101, 99999, 102]])
    with pytest.raises(RequestError, match=r"input_ids must lie in \[0, 21128\)"):
        model.predict_encoded(out_of_vocabulary)
    ids = np.array([[101, 102]], dtype=np.int64)
    with pytest.raises(RequestError, match=r"attention_mask has shape \[1, 3\], expected \[1, 2\]"):
        model.predict_encoded(Encoded(ids, np.ones((1, 3), dtype=np.int64), np.zeros_like(ids)))


def test_softmax_is_stable():
    np.testing.assert_allclose(softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])), [[0.5, 0.5], [1.0, 0.0]])


def test_loading_does_not_import_torch(tiny_export):
    code = (
        "import sys\n"
        "from bertserve.inference.model import ExportedModel\n"
        f"model = ExportedModel.load({str(tiny_export)!r}, threads=1)\n"
        "model.predict_texts(['很好'])\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_tampered_file_fails_verification(copy):
    model_file = copy / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    model_file.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"model.onnx does not match its sha256 in manifest.json; .*re-export"):
        ExportedModel.load(copy)
    labels = copy / "labels.json"
    labels.write_text(json.dumps({"labels": ["bad", "good"]}), encoding="utf-8")
    with pytest.raises(ExportError, match=r"labels.json has \d+ bytes but the manifest says \d+"):
        ExportedModel.load(copy)


def test_unlisted_and_missing_files_fail_verification(copy):
    (copy / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ExportError, match=r"files not in manifest.json: \['notes.txt'\]"):
        ExportedModel.load(copy)
    (copy / "notes.txt").unlink()
    (copy / "tokenizer" / "vocab.txt").unlink()
    with pytest.raises(ExportError, match=r"missing: \['tokenizer/vocab.txt'\]"):
        ExportedModel.load(copy)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "tokenizer/extra.pkl"])
def test_pickle_like_files_are_refused_even_without_verification(copy, name):
    (copy / name).write_bytes(b"\x80\x04N.")
    with pytest.raises(ExportError, match=f"refusing {name}: only .* files may be in an export \\(no pickles"):
        ExportedModel.load(copy, verify=False)


def test_verify_false_skips_checksums_only(copy):
    (copy / "model_card.md").write_text("edited\n", encoding="utf-8")
    assert ExportedModel.load(copy, verify=False, threads=1).version == 1
    with pytest.raises(ExportError, match="model_card.md"):
        ExportedModel.load(copy)


def test_bad_folders(tmp_path, copy):
    with pytest.raises(ExportError, match="does not exist"):
        ExportedModel.load(tmp_path / "base" / "2")
    renamed = shutil.copytree(copy, tmp_path / "base" / "latest")
    with pytest.raises(ExportError, match="must be named by a positive integer"):
        ExportedModel.load(renamed)
    (copy / "manifest.json").unlink()
    with pytest.raises(ExportError, match="no manifest.json; is this a folder written by `bertserve export`"):
        ExportedModel.load(copy)


def test_openvino_weights_allowed_only_as_model_bin_beside_model_xml(copy):
    from bertserve.inference.manifest import list_files

    (copy / "model.bin").write_bytes(b"\x00" * 8)
    with pytest.raises(ExportError, match="refusing model.bin: only .* files may be in an export"):
        list_files(copy)
    (copy / "model.xml").write_text("<net/>", encoding="utf-8")
    assert {"model.xml", "model.bin"} <= set(list_files(copy))
    (copy / "tokenizer" / "model.bin").write_bytes(b"\x00")
    with pytest.raises(ExportError, match="refusing tokenizer/model.bin"):
        list_files(copy)
    (copy / "tokenizer" / "model.bin").unlink()
    (copy / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(ExportError, match="refusing weights.bin"):
        list_files(copy)
    (copy / "weights.bin").unlink()
    # An ensemble member's folder holds its own pair; only members/<index>/, only beside model.xml.
    member = copy / "members" / "0"
    member.mkdir(parents=True)
    (member / "model.bin").write_bytes(b"\x00")
    with pytest.raises(ExportError, match="refusing members/0/model.bin"):
        list_files(copy)
    (member / "model.xml").write_text("<net/>", encoding="utf-8")
    assert {"members/0/model.xml", "members/0/model.bin"} <= set(list_files(copy))
    shutil.move(member, copy / "members" / "first")
    with pytest.raises(ExportError, match="refusing members/first/model.bin"):
        list_files(copy)


class FixedEngine:
    input_names = ("input_ids", "attention_mask")

    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype=np.float32)
        self.seen = []

    def run(self, inputs):
        self.seen.append(sorted(inputs))
        return self.logits


def test_averaged_engine_returns_the_log_of_the_mean_probability():
    first, second = FixedEngine([[0.0, 0.0], [2.0, -1.0]]), FixedEngine([[3.0, 1.0], [0.0, 5.0]])
    engine = AveragedEngine([first, second])
    assert engine.input_names == ("input_ids", "attention_mask")
    inputs = {"input_ids": np.ones((2, 3), np.int64), "attention_mask": np.ones((2, 3), np.int64),
              "token_type_ids": np.zeros((2, 3), np.int64)}
    expected = (softmax(first.logits) + softmax(second.logits)) / 2
    np.testing.assert_allclose(softmax(engine.run(inputs)), expected, rtol=1e-6)
    assert first.seen == second.seen == [["attention_mask", "input_ids"]]  # each member gets only its inputs


def test_members_must_be_numbered_from_zero(copy):
    (copy / "members" / "1").mkdir(parents=True)
    shutil.copy(copy / "model.onnx", copy / "members" / "1" / "model.onnx")
    with pytest.raises(ExportError, match=r"members/ must hold folders 0..n-1, found \['1'\]; re-export the ensemble"):
        ExportedModel.load(copy, verify=False)
