"""Reading a TensorFlow-written Google BERT checkpoint without TensorFlow.

The fixture `tests/fixtures/tf_bert_tiny/` was written by TensorFlow's own Saver, with logits from
Google BERT's forward pass computed by TensorFlow (see `tests/fixtures/make_tf_checkpoint.py`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertserve.pretrained import sources as pretrained
from bertserve.errors import CheckpointError
from bertserve.pretrained.tf_checkpoint import (
    convert_tf_bert_variables,
    find_checkpoint_prefix,
    load_tf_bert_state_dict,
    read_tensor_bundle,
    tf_bert_to_hf_state_dict,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tf_bert_tiny"
PREFIX = FIXTURE / "bert_model.ckpt"
DATA = "bert_model.ckpt.data-00000-of-00001"
INDEX = "bert_model.ckpt.index"


@pytest.fixture(scope="module")
def variables() -> dict[str, np.ndarray]:
    return read_tensor_bundle(PREFIX)


@pytest.fixture()
def copy(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_reads_every_variable_with_shape_and_dtype(variables):
    assert len(variables) == 49
    assert variables["bert/embeddings/word_embeddings"].shape == (60, 8)
    assert variables["bert/encoder/layer_1/intermediate/dense/kernel"].shape == (8, 16)
    assert variables["bert/encoder/layer_1/output/dense/kernel"].shape == (16, 8)
    assert variables["output_weights"].shape == (2, 8)
    assert variables["global_step"].dtype == np.int64 and variables["global_step"].shape == ()
    assert all(array.dtype == np.float32 for name, array in variables.items() if name.startswith("bert/"))


def test_decodes_the_other_dtypes_exactly(variables):
    np.testing.assert_array_equal(variables["extra/half"], np.array([[0, 0.25, 0.5], [0.75, 1, 1.25]], np.float16))
    assert variables["extra/half"].dtype == np.float16
    # bfloat16 keeps 8 significant bits: 3000 is stored as 3008; widened to float32.
    np.testing.assert_array_equal(variables["extra/bfloat16"], np.array([1.5, -2.25, 3008.0], np.float32))
    assert variables["extra/double"].dtype == np.float64 and variables["extra/double"][0, 0] == 1 / 3
    np.testing.assert_array_equal(variables["extra/int32"], np.array([7, -8, 9], np.int32))


def test_include_reads_only_the_chosen_tensors():
    picked = read_tensor_bundle(PREFIX, include=lambda name: name.startswith("bert/pooler/"))
    assert sorted(picked) == [
        "bert/pooler/dense/bias",
        "bert/pooler/dense/kernel",
        "bert/pooler/dense/kernel/adam_m",
        "bert/pooler/dense/kernel/adam_v",
    ]


def test_names_map_onto_bert_for_sequence_classification(variables):
    from transformers import BertConfig, BertForSequenceClassification

    state, skipped = convert_tf_bert_variables(variables)
    config = BertConfig(**json.loads((FIXTURE / "bert_config.json").read_text()), num_labels=2)
    expected = BertForSequenceClassification(config).state_dict()
    assert set(state) == set(expected)
    assert all(state[key].shape == tuple(expected[key].shape) for key in state)
    # Dense kernels are [in, out] in TF and [out, in] in torch; the run_classifier head is already [labels, hidden].
    np.testing.assert_array_equal(state["bert.encoder.layer.0.intermediate.dense.weight"], variables["bert/encoder/layer_0/intermediate/dense/kernel"].T)
    np.testing.assert_array_equal(state["bert.embeddings.LayerNorm.weight"], variables["bert/embeddings/LayerNorm/gamma"])
    np.testing.assert_array_equal(state["bert.embeddings.LayerNorm.bias"], variables["bert/embeddings/LayerNorm/beta"])
    np.testing.assert_array_equal(state["classifier.weight"], variables["output_weights"])
    assert skipped == {
        "bert/pooler/dense/kernel/adam_m": "optimizer state",
        "bert/pooler/dense/kernel/adam_v": "optimizer state",
        "global_step": "optimizer state",
        "cls/predictions/output_bias": "pretraining head (masked LM / next sentence)",
        "extra/bfloat16": "not a BERT encoder or run_classifier.py head variable",
        "extra/double": "not a BERT encoder or run_classifier.py head variable",
        "extra/half": "not a BERT encoder or run_classifier.py head variable",
        "extra/int32": "not a BERT encoder or run_classifier.py head variable",
    }


def test_skipped_variables_are_logged(variables, caplog):
    caplog.set_level("INFO", logger="bertserve.pretrained.tf_checkpoint")
    tf_bert_to_hf_state_dict(variables)
    assert "skipped 8 checkpoint variables" in caplog.text


def test_load_state_dict_never_reads_optimizer_slots():
    state = load_tf_bert_state_dict(FIXTURE)
    assert len(state) == 41 and "classifier.bias" in state


def test_converted_model_reproduces_tensorflow_logits():
    import torch

    source = pretrained.resolve(str(FIXTURE))
    assert source.kind == "tf-checkpoint" and source.folder == FIXTURE
    model = pretrained.load_classifier(source, ["0", "1"]).eval()
    reference = json.loads((FIXTURE / "reference_logits.json").read_text(encoding="utf-8"))
    batch = {
        key: torch.tensor([example[key] for example in reference["examples"]])
        for key in ("input_ids", "attention_mask", "token_type_ids")
    }
    with torch.no_grad():
        logits = model(**batch).logits.numpy()
    np.testing.assert_allclose(logits, np.array(reference["logits"]), atol=1e-5, rtol=0)


def test_fixture_ids_match_bertserve_tokenizer():
    source = pretrained.resolve(str(FIXTURE))
    tokenizer = pretrained.load_tokenizer(source, max_seq_length=12)
    reference = json.loads((FIXTURE / "reference_logits.json").read_text(encoding="utf-8"))
    singles = [example for example in reference["examples"] if example["pair"] is None]
    encoded = tokenizer.encode([example["text"] for example in singles], pad_to=12)
    assert encoded.input_ids.tolist() == [example["input_ids"] for example in singles]


def test_a_new_head_when_the_label_count_differs():
    model = pretrained.load_classifier(pretrained.resolve(str(FIXTURE)), ["a", "b", "c"])
    assert tuple(model.classifier.weight.shape) == (3, 8)


# ---- finding the checkpoint in a folder ---------------------------------------------------------

def test_checkpoint_file_names_the_prefix_even_with_a_foreign_absolute_path(copy):
    for suffix in (".index", ".data-00000-of-00001"):
        (copy / f"bert_model.ckpt{suffix}").rename(copy / f"model.ckpt-1000{suffix}")
    (copy / "other.ckpt.index").write_bytes(b"")
    (copy / "checkpoint").write_text('model_checkpoint_path: "/mnt/another-machine/out/model.ckpt-1000"\n')
    assert find_checkpoint_prefix(copy) == copy / "model.ckpt-1000"
    assert len(load_tf_bert_state_dict(copy)) == 41


def test_the_single_index_is_used_and_several_are_an_error(copy):
    for suffix in (".index", ".data-00000-of-00001"):
        (copy / f"bert_model.ckpt{suffix}").rename(copy / f"model.ckpt-5{suffix}")
    assert find_checkpoint_prefix(copy) == copy / "model.ckpt-5"
    (copy / "model.ckpt-9.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"several checkpoints \(model.ckpt-5.index, model.ckpt-9.index\)"):
        find_checkpoint_prefix(copy)


def test_folder_without_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no TensorFlow checkpoint"):
        load_tf_bert_state_dict(tmp_path)


# ---- damaged files ------------------------------------------------------------------------------

def test_missing_index(copy):
    (copy / INDEX).unlink()
    with pytest.raises(CheckpointError, match=r"bert_model.ckpt.index: not found"):
        read_tensor_bundle(copy / "bert_model.ckpt")


def test_missing_data_file(copy):
    (copy / DATA).unlink()
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001: missing; .*copy every \.data-\* file"):
        load_tf_bert_state_dict(copy)


@pytest.mark.parametrize("keep, message", [(20, "shorter than the 48-byte SSTable footer"), (-5, "bad magic number")])
def test_truncated_index(copy, keep, message):
    index = copy / INDEX
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=message) as caught:
        load_tf_bert_state_dict(copy)
    assert str(index) in str(caught.value)


def test_bad_magic(copy):
    index = copy / INDEX
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF
    index.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="bad magic number.*not a TensorFlow checkpoint .index file"):
        load_tf_bert_state_dict(copy)


def test_damaged_index_block(copy):
    index = copy / INDEX
    data = bytearray(index.read_bytes())
    data[30] ^= 0x20
    index.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch in data block 0"):
        load_tf_bert_state_dict(copy)


def test_truncated_data(copy):
    data = copy / DATA
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"truncated; variable '.*' needs bytes"):
        load_tf_bert_state_dict(copy)


def test_damaged_data_fails_the_tensor_checksum(copy):
    data = copy / DATA
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0x01  # the first tensor in key order: bert/embeddings/LayerNorm/beta
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch for variable 'bert/embeddings/LayerNorm/beta'"):
        load_tf_bert_state_dict(copy)
    assert read_tensor_bundle(copy / "bert_model.ckpt", verify_checksums=False)["bert/embeddings/LayerNorm/beta"].shape == (8,)


def test_not_a_bert_checkpoint(copy, monkeypatch):
    import bertserve.pretrained.tf_checkpoint as module

    monkeypatch.setattr(module, "_wanted", lambda name: name.startswith("extra/"))
    with pytest.raises(CheckpointError, match=r"no Google BERT variables \(bert/...\) found"):
        load_tf_bert_state_dict(copy)
