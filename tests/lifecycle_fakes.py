"""Fakes for the lifecycle tests: a model that answers with its own version number."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertserve.errors import ExportError


class FakeTokenizer:
    pad_id = 0
    vocab_size = 100

    def token_ids(self, texts):
        return [[1, 2, 3] for _ in texts]


class FakeModel:
    """Answers [version, 0] for each row, so a test sees which version served it."""

    def __init__(self, version: int):
        self.version = version
        self.labels = ["negative", "positive"]
        self.tokenizer = FakeTokenizer()
        self.max_seq_length = 8

    def predict_encoded(self, encoded):
        return np.tile(np.array([self.version, 0], dtype=np.float32), (len(encoded.input_ids), 1))


def fake_loader(path: Path) -> FakeModel:
    if (path / "BROKEN").exists():
        raise ExportError(f"{path}: model.onnx is not a valid ONNX model; re-export the model")
    return FakeModel(int(path.name))


def make_versions(base: Path, *versions: int) -> None:
    for version in versions:
        (base / str(version)).mkdir(parents=True, exist_ok=True)
