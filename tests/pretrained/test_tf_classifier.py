"""A model fine-tuned by Google's run_classifier.py, read without TensorFlow.

The fixture `tests/fixtures/tf_classifier_tiny/` was trained and saved by google-research/bert's own
run_classifier.py code under TensorFlow, which also computed the reference probabilities
(`tests/fixtures/make_tf_classifier_checkpoint.py`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bertserve.errors import CheckpointError
from bertserve.pretrained.tf_checkpoint import load_checkpoint_state_dict, read_tensor_bundle
from bertserve.pretrained.tf_classifier import (
    checkpoint_steps,
    find_fine_tuned_checkpoint,
    load_fine_tuned_classifier,
    read_bert_config,
    read_classifier_head,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tf_classifier_tiny"
PRETRAINED = FIXTURE / "pretrained"
REFERENCE = json.loads((FIXTURE / "reference_probabilities.json").read_text(encoding="utf-8"))
CONFIG = json.loads((FIXTURE / "bert_config.json").read_text(encoding="utf-8"))


def test_the_fixture_is_what_run_classifier_saves():
    variables = read_tensor_bundle(FIXTURE / "model.ckpt-30")
    assert variables["output_weights"].shape == (2, 8) and variables["output_bias"].shape == (2,)
    assert int(variables["global_step"]) == 30
    slots = [name for name in variables if name.endswith(("/adam_m", "/adam_v"))]
    assert len(slots) == 2 * 41  # one pair per weight: the encoder's 39 and the head's 2


def test_only_the_encoder_and_the_head_are_kept():
    state = load_checkpoint_state_dict(FIXTURE / "model.ckpt-30")
    assert len(state) == 41
    assert all(key.startswith("bert.") or key in ("classifier.weight", "classifier.bias") for key in state)
    np.testing.assert_array_equal(state["classifier.weight"], read_tensor_bundle(FIXTURE / "model.ckpt-30")["output_weights"])


def test_the_newest_step_is_the_default():
    assert sorted(checkpoint_steps(FIXTURE)) == [0, 30]
    checkpoint = find_fine_tuned_checkpoint(FIXTURE)
    assert checkpoint.prefix == FIXTURE / "model.ckpt-30" and checkpoint.global_step == 30


def test_a_step_or_a_prefix_picks_one_checkpoint():
    assert find_fine_tuned_checkpoint(FIXTURE, 0).prefix == FIXTURE / "model.ckpt-0"
    assert find_fine_tuned_checkpoint(FIXTURE / "model.ckpt-0").global_step == 0
    assert find_fine_tuned_checkpoint(FIXTURE / "model.ckpt-30", 30).global_step == 30
    for name in ("model.ckpt-30.index", "model.ckpt-30.data-00000-of-00001"):  # a file of it names it too
        assert find_fine_tuned_checkpoint(FIXTURE / name).prefix == FIXTURE / "model.ckpt-30"
    with pytest.raises(CheckpointError, match=r"model.ckpt-0 is one checkpoint; --checkpoint-step 30 names another"):
        find_fine_tuned_checkpoint(FIXTURE / "model.ckpt-0", 30)
    with pytest.raises(CheckpointError, match=r"no model.ckpt-7.index \(steps saved there: 0, 30\)"):
        find_fine_tuned_checkpoint(FIXTURE, 7)


def test_the_newest_is_by_step_number_not_by_name(tmp_path):
    for step in (9, 10):
        for suffix in (".index", ".data-00000-of-00001"):
            shutil.copy(FIXTURE / f"model.ckpt-30{suffix}", tmp_path / f"model.ckpt-{step}{suffix}")
    assert find_fine_tuned_checkpoint(tmp_path).prefix == tmp_path / "model.ckpt-10"


def test_a_folder_without_step_checkpoints_uses_its_only_checkpoint():
    checkpoint = find_fine_tuned_checkpoint(PRETRAINED)
    assert checkpoint.prefix == PRETRAINED / "bert_model.ckpt" and checkpoint.global_step is None


def test_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no TensorFlow checkpoint"):
        find_fine_tuned_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"--checkpoint .*nowhere: neither a folder nor a TensorFlow checkpoint"):
        find_fine_tuned_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"--checkpoint .*bert_config.json: neither a folder nor a TensorFlow checkpoint"):
        find_fine_tuned_checkpoint(FIXTURE / "bert_config.json")
    with pytest.raises(CheckpointError, match=r"no model.ckpt-3.index \(steps saved there: none\)"):
        find_fine_tuned_checkpoint(tmp_path, 3)


def test_a_pretrained_checkpoint_is_refused_with_what_to_do():
    with pytest.raises(CheckpointError) as caught:
        read_classifier_head(PRETRAINED / "bert_model.ckpt")
    assert str(caught.value) == (
        f"{PRETRAINED / 'bert_model.ckpt'}: no output_weights, so this is a pre-trained, not a fine-tuned, checkpoint; "
        f"fine-tune it first: bertserve train --pretrained {PRETRAINED} --data DATA --output RUN"
    )


@pytest.mark.parametrize("step", ["0", "30"])
def test_torch_model_reproduces_tensorflow(step):
    import torch

    model = load_fine_tuned_classifier(FIXTURE / f"model.ckpt-{step}", CONFIG, ["negative", "positive"])
    assert model.config.id2label == {0: "negative", 1: "positive"} and not model.training
    length = REFERENCE["max_seq_length"]
    ids = torch.tensor([row + [0] * (length - len(row)) for row in REFERENCE["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=torch.zeros_like(ids)).logits
    expected = REFERENCE["checkpoints"][step]
    np.testing.assert_allclose(logits.numpy(), expected["logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), expected["probabilities"], atol=1e-5, rtol=0)


def test_label_count_must_match_the_head():
    with pytest.raises(CheckpointError, match=r"output_weights has 2 rows \(classes\) but 3 labels were given \(a, b, c\)"):
        load_fine_tuned_classifier(FIXTURE / "model.ckpt-30", CONFIG, ["a", "b", "c"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_hidden_layers": 1}, r"tensors have no place in the model bert_config.json describes"),
        ({"num_hidden_layers": 3}, r"weights missing for 16 tensors .*num_hidden_layers"),
        ({"hidden_size": 16, "num_attention_heads": 2}, r"does not match bert_config.json: size mismatch for bert\."),
    ],
)
def test_a_config_that_does_not_describe_the_checkpoint(change, message):
    with pytest.raises(CheckpointError, match=message):
        load_fine_tuned_classifier(FIXTURE / "model.ckpt-30", CONFIG | change, ["negative", "positive"])


def test_bert_config_problems(tmp_path):
    with pytest.raises(CheckpointError, match=r"bert_config.json: not found; .*pass --bert-config"):
        read_bert_config(tmp_path / "bert_config.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"broken.json: not valid JSON"):
        read_bert_config(broken)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"hidden_size": 8, "vocab_size": "100"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"not a Google BERT config \(no integer num_hidden_layers, .*vocab_size"):
        read_bert_config(partial)
    assert read_bert_config(FIXTURE / "bert_config.json") == CONFIG
