"""The fine-tuning options of issue 12 on the tiny model: layer-wise learning-rate decay, the
learning-rate schedule, R-Drop, FGM, and a tiny run with all of them switched on."""

from __future__ import annotations

import json

import pytest
import torch

from bertserve.errors import ConfigError
from bertserve.training.config import build_config
from bertserve.training.loop import train
from bertserve.training.objectives import classification_loss, fgm_adversarial_backward
from bertserve.training.optimization import layer_depth, parameter_groups, warmup_then_linear_decay


@pytest.fixture()
def tiny_classifier(tiny_pretrained):
    from bertserve.pretrained.sources import load_classifier, resolve

    torch.manual_seed(0)
    return load_classifier(resolve(str(tiny_pretrained)), ["negative", "positive"])


def test_layer_depth_of_bert_parameter_names():
    assert layer_depth("bert.embeddings.word_embeddings.weight", 2) == 0
    assert layer_depth("bert.encoder.layer.0.attention.self.query.weight", 2) == 1
    assert layer_depth("bert.encoder.layer.1.output.LayerNorm.bias", 2) == 2
    assert layer_depth("bert.pooler.dense.weight", 2) == 3
    assert layer_depth("classifier.weight", 2) == 3


def test_layer_lr_decay_gives_lower_layers_smaller_rates(tiny_classifier):
    config = build_config(flags=dict(learning_rate=1e-3, layer_lr_decay=0.5, weight_decay=0.01), environ={})
    rate_of = {}
    for group in parameter_groups(tiny_classifier, config):
        for parameter in group["params"]:
            rate_of[id(parameter)] = (group["lr"], group["weight_decay"])
    named = dict(tiny_classifier.named_parameters())
    assert rate_of[id(named["classifier.weight"])] == (1e-3, 0.01)
    assert rate_of[id(named["bert.encoder.layer.1.attention.self.query.weight"])] == (5e-4, 0.01)
    assert rate_of[id(named["bert.encoder.layer.0.attention.self.query.bias"])] == (2.5e-4, 0.0)
    assert rate_of[id(named["bert.embeddings.word_embeddings.weight"])] == (1.25e-4, 0.01)
    assert rate_of[id(named["bert.embeddings.LayerNorm.weight"])] == (1.25e-4, 0.0)
    assert len(rate_of) == len(named)  # every parameter in exactly one group


def test_without_layer_lr_decay_there_are_two_groups_at_the_full_rate(tiny_classifier):
    config = build_config(flags=dict(learning_rate=1e-3), environ={})
    groups = parameter_groups(tiny_classifier, config)
    assert [(group["lr"], group["weight_decay"]) for group in groups] == [(1e-3, 0.01), (1e-3, 0.0)]


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    # 10 steps, 2 of warm-up.
    assert [warmup_then_linear_decay(step, 2, 10) for step in range(11)] == [
        0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    assert warmup_then_linear_decay(0, 0, 4) == 1.0


@pytest.mark.parametrize("flag, value", [("layer_lr_decay", 0.0), ("layer_lr_decay", 1.5), ("rdrop_alpha", -1.0),
                                         ("fgm_epsilon", -0.1), ("truncation", "tail")])
def test_bad_option_values_are_config_errors(flag, value):
    with pytest.raises(ConfigError):
        build_config(flags={flag: value}, environ={})


def _batch(tokenizer_texts=("很好", "太差了")):
    from bertserve.tokenizer import BertTokenizer
    from conftest import chinese_vocab_file

    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab_file(), max_seq_length=16)
    encoded = tokenizer.encode(list(tokenizer_texts))
    return {name: torch.from_numpy(array) for name, array in encoded.as_dict().items()}, torch.tensor([1, 0])


def test_rdrop_without_dropout_is_plain_cross_entropy(tiny_classifier):
    inputs, labels = _batch()
    tiny_classifier.eval()  # no dropout: both passes agree, the KL term is 0
    plain = classification_loss(tiny_classifier, inputs, labels, None)
    with_rdrop = classification_loss(tiny_classifier, inputs, labels, None, rdrop_alpha=4.0)
    assert with_rdrop.item() == pytest.approx(plain.item(), abs=1e-5)
    logits = tiny_classifier(**inputs).logits
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item(), abs=1e-5)


class FixedLogits(torch.nn.Module):
    """Stands in for a model: returns preset logits for the (doubled) batch R-Drop sends."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, input_ids, **_):
        assert input_ids.shape[0] == self.logits.shape[0]
        return type("Output", (), {"logits": self.logits})()


def test_rdrop_adds_alpha_times_the_symmetric_kl_of_the_two_passes():
    import math

    first, second = [0.0, math.log(3.0)], [math.log(3.0), 0.0]  # p = (1/4, 3/4) and q = (3/4, 1/4)
    model = FixedLogits([first, second])
    inputs, labels = {"input_ids": torch.zeros(1, 3, dtype=torch.long)}, torch.tensor([1])
    loss = classification_loss(model, inputs, labels, None, rdrop_alpha=2.0)
    cross_entropy = (-math.log(0.75) - math.log(0.25)) / 2
    kl = 0.25 * math.log(0.25 / 0.75) + 0.75 * math.log(0.75 / 0.25)  # KL(p||q) = KL(q||p) here
    assert loss.item() == pytest.approx(cross_entropy + 2.0 * kl, rel=1e-6)


def test_fgm_adds_the_adversarial_gradient_and_restores_the_embeddings(tiny_classifier):
    inputs, labels = _batch()
    tiny_classifier.eval()
    embeddings = tiny_classifier.get_input_embeddings()
    before = embeddings.weight.detach().clone()
    classification_loss(tiny_classifier, inputs, labels, None).backward()
    normal = {name: p.grad.clone() for name, p in tiny_classifier.named_parameters() if p.grad is not None}
    fgm_adversarial_backward(embeddings, 1.0, lambda: classification_loss(tiny_classifier, inputs, labels, None))
    assert torch.equal(embeddings.weight.detach(), before)  # put back exactly
    changed = [name for name, p in tiny_classifier.named_parameters()
               if name in normal and not torch.allclose(p.grad, 2 * normal[name], atol=1e-7)]
    assert "classifier.weight" in changed  # the gradient at the perturbed point differs from the normal one


def test_a_run_with_every_option_on(tmp_path, tiny_pretrained, small_data):
    output = tmp_path / "run"
    config = build_config(flags=dict(data=str(small_data), pretrained=str(tiny_pretrained), output=str(output), epochs=2,
                                     batch_size=8, learning_rate=5e-3, max_seq_length=16, precision="fp32", seed=3,
                                     truncation="head+tail", layer_lr_decay=0.8, rdrop_alpha=1.0, fgm_epsilon=1.0), environ={})
    metrics = train(config)
    saved = json.loads((output / "config.json").read_text())
    assert (saved["truncation"], saved["layer_lr_decay"], saved["rdrop_alpha"], saved["fgm_epsilon"]) == ("head+tail", 0.8, 1.0, 1.0)
    assert json.loads((output / "tokenizer" / "tokenizer_settings.json").read_text())["truncation"] == "head+tail"
    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2]
    assert all(record["train_loss"] > 0 for record in history)
    assert metrics["test"]["examples"] == 16
    card = (output / "model_card.md").read_text()
    assert "truncation head+tail, layer-wise lr decay 0.8, R-Drop alpha 1.0, FGM epsilon 1.0" in card
