"""BERT WordPiece tokenization: one tokenizer for training, export and serving.

Built on the Rust `tokenizers` library with Google BERT's rules: clean control characters,
put spaces around every CJK character (so each Chinese character is its own token), optional
lower-casing (which also strips accents, as BERT's `do_lower_case` does), split on whitespace and
punctuation, then greedy longest-match WordPiece with `##` continuations and `[UNK]` for the rest.
Sequences are `[CLS] tokens [SEP]`, at most `max_seq_length` long. Truncation `head` (the default)
keeps the first tokens (the demo's `[CLS] + tokens[:126] + [SEP]` at 128); `head+tail` keeps the
first quarter and the last three quarters of the budget, so the verdict that often closes a long
review survives (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification": head 128 +
tail 382 at 512 beat head-only).

A tokenizer is saved as three files in a folder (every run folder and export has one):
`vocab.txt` (one token per line), `tokenizer.json` (the full Rust pipeline) and
`tokenizer_settings.json` (lower-casing, max length and truncation). `BertTokenizer.load(folder)` restores it
exactly, which is what the parity test between training, export and serving relies on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders

from bertserve.errors import PretrainedError
from bertserve.layout import TOKENIZER_JSON_FILE, TOKENIZER_SETTINGS_FILE as SETTINGS_FILE, VOCAB_FILE

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TRUNCATIONS = ("head", "head+tail")  # which tokens of an over-long text are kept


def head_tail_split(budget: int) -> tuple[int, int]:
    """How many tokens `head+tail` keeps from the start and from the end: a quarter and the rest."""
    head = budget // 4
    return head, budget - head


@dataclass(frozen=True)
class Encoded:
    """A batch of token ids ready for the model: int64 arrays of shape (batch, length)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }


def read_vocab(path: Path) -> dict[str, int]:
    """Read a BERT `vocab.txt` (token per line, id = line number)."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            token = line.rstrip("\n")
            if token and token not in vocab:
                vocab[token] = index
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise PretrainedError(f"{path}: vocabulary lacks the special tokens {missing}; is this a BERT vocab.txt?")
    return vocab


class BertTokenizer:
    """Text -> `Encoded` ids, with Google BERT's tokenization rules."""

    def __init__(self, vocab: dict[str, int], lowercase: bool = True, max_seq_length: int = 128, truncation: str = "head"):
        if max_seq_length < 2:
            raise ValueError("max_seq_length must be at least 2 ([CLS] and [SEP])")
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, not {truncation!r}")
        self.truncation = truncation
        self.vocab = vocab
        self.lowercase = lowercase
        self.max_seq_length = max_seq_length
        self.pad_id = vocab["[PAD]"]
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.unk_id = vocab["[UNK]"]

        rust = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        rust.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
        )
        rust.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        rust.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)],
        )
        rust.decoder = decoders.WordPiece(prefix="##")
        if truncation == "head":  # head+tail cuts in token_ids (the Rust library only cuts one end)
            rust.enable_truncation(max_length=max_seq_length)
        self._rust = rust

    # ---- construction and persistence -------------------------------------------------------

    @classmethod
    def from_vocab_file(cls, path: Path | str, lowercase: bool = True, max_seq_length: int = 128,
                        truncation: str = "head") -> "BertTokenizer":
        return cls(read_vocab(Path(path)), lowercase=lowercase, max_seq_length=max_seq_length, truncation=truncation)

    @classmethod
    def load(cls, folder: Path | str) -> "BertTokenizer":
        """Load a tokenizer saved by `save` (needs `vocab.txt` and `tokenizer_settings.json`)."""
        folder = Path(folder)
        settings_path = folder / SETTINGS_FILE
        if not settings_path.is_file() or not (folder / VOCAB_FILE).is_file():
            raise PretrainedError(f"{folder}: not a bertserve tokenizer folder (needs vocab.txt and {SETTINGS_FILE})")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        return cls.from_vocab_file(
            folder / VOCAB_FILE, lowercase=bool(settings["lowercase"]), max_seq_length=int(settings["max_seq_length"]),
            truncation=settings.get("truncation", "head"),  # folders written before head+tail existed
        )

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        by_id = sorted(self.vocab.items(), key=lambda item: item[1])
        (folder / VOCAB_FILE).write_text("".join(token + "\n" for token, _ in by_id), encoding="utf-8")
        self._rust.save(str(folder / TOKENIZER_JSON_FILE))
        settings = {"lowercase": self.lowercase, "max_seq_length": self.max_seq_length, "truncation": self.truncation,
                    "vocab_size": len(self.vocab)}
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    # ---- encoding ----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of `text`, without [CLS]/[SEP] and without truncation."""
        return self._rust.encode(text, add_special_tokens=False).tokens

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Unpadded ids (`[CLS] ... [SEP]`, truncated to max_seq_length) for each text."""
        if self.truncation == "head":
            return [encoding.ids for encoding in self._rust.encode_batch(list(texts))]
        budget = self.max_seq_length - 2
        head, tail = head_tail_split(budget)
        result = []
        for encoding in self._rust.encode_batch(list(texts), add_special_tokens=False):
            ids = encoding.ids
            if len(ids) > budget:
                ids = ids[:head] + ids[len(ids) - tail:]
            result.append([self.cls_id, *ids, self.sep_id])
        return result

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> Encoded:
        """Encode a batch, padded to its longest sequence (dynamic padding) or to `pad_to`."""
        return self.pad(self.token_ids(texts), pad_to=pad_to)

    def pad(self, id_lists: Sequence[Sequence[int]], pad_to: int | None = None) -> Encoded:
        """Right-pad id lists with [PAD] into an `Encoded` batch."""
        length = max((len(ids) for ids in id_lists), default=0)
        if pad_to is not None:
            length = max(length, pad_to)
        input_ids = np.full((len(id_lists), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(id_lists), length), dtype=np.int64)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return Encoded(input_ids, attention_mask, np.zeros_like(input_ids))
