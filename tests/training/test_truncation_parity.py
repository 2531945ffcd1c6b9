"""Head+tail truncation is a tokenizer setting: a model trained with it is exported and served with
it. One long review gets identical ids in training, in the run folder, in the export and in the
server, and the server's answer is the model's answer on exactly those ids."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bertserve.training.config import build_config
from bertserve.training.loop import train

# 40 characters, one token each: far over the 16-token limit, with a different verdict at each end.
LONG_REVIEW = "开头说酒店位置很好交通方便" + "中间一大段流水账描述房间的样子" + "可是最后结论是太吵了再也不来"


@pytest.fixture(scope="module")
def head_tail_run(tmp_path_factory, tiny_pretrained, small_data):
    output = tmp_path_factory.mktemp("head_tail") / "run"
    config = build_config(flags=dict(data=str(small_data), pretrained=str(tiny_pretrained), output=str(output), epochs=1,
                                     batch_size=8, learning_rate=5e-3, max_seq_length=16, precision="fp32",
                                     truncation="head+tail", checkpoint_every_steps=0), environ={})
    train(config)
    return output


def test_training_export_and_serving_use_the_same_head_and_tail_ids(head_tail_run, tiny_pretrained, tmp_path):
    from inprocess_server import InProcessServer

    from bertserve.export.version import ExportSettings, export_run
    from bertserve.inference.model import ExportedModel
    from bertserve.pretrained.sources import load_tokenizer, resolve
    from bertserve.training.run_folder import load_run

    # Training: the tokenizer `train` builds from the config.
    training = load_tokenizer(resolve(str(tiny_pretrained)), 16, None, "head+tail").token_ids([LONG_REVIEW])[0]
    characters = [character for character in LONG_REVIEW]
    head_only = load_tokenizer(resolve(str(tiny_pretrained)), 16).token_ids([LONG_REVIEW])[0]
    assert len(training) == 16 and training != head_only
    # 14 places: the first 3 characters and the last 11.
    vocab = load_run(head_tail_run).tokenizer.vocab
    assert training == [101, *[vocab[c] for c in characters[:3] + characters[-11:]], 102]

    assert load_run(head_tail_run).tokenizer.token_ids([LONG_REVIEW])[0] == training  # the run folder
    version = export_run(head_tail_run, tmp_path / "models" / "tiny", ExportSettings(version=1)).path
    exported = ExportedModel.load(version)
    assert exported.tokenizer.truncation == "head+tail"
    assert exported.tokenizer.token_ids([LONG_REVIEW])[0] == training  # the export

    expected = exported.predict_encoded(exported.tokenizer.pad([training]))[0]
    head_only_answer = exported.predict_encoded(exported.tokenizer.pad([head_only]))[0]
    assert not np.allclose(expected, head_only_answer, atol=1e-6)  # the two truncations are told apart
    with InProcessServer(version.parent, "tiny") as server:  # the server
        served = httpx.post(f"{server.url}/v1/models/tiny:predict", json={"instances": [LONG_REVIEW]}, timeout=30).json()
        assert server.manager.servable("tiny").model.tokenizer.token_ids([LONG_REVIEW])[0] == training
    np.testing.assert_allclose(served["predictions"][0], expected, atol=1e-6)
