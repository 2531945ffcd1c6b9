"""Golden tokenization tests: exact tokens and ids with Google's Chinese BERT vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

from bertserve.errors import PretrainedError
from bertserve.tokenizer import BertTokenizer, UnigramTokenizer, load_saved_tokenizer

GOLDEN = [
    # (text, tokens, ids incl. [CLS]=101 ... [SEP]=102)
    ("这家酒店很好！", ["这", "家", "酒", "店", "很", "好", "！"], [101, 6821, 2157, 6983, 2421, 2523, 1962, 8013, 102]),
    # Full-width punctuation is in the vocabulary; curly quotes are not ([UNK] = 100).
    (
        "房间（很）干净：服务一般；价格？“不错”",
        ["房", "间", "（", "很", "）", "干", "净", "：", "服", "务", "一", "般", "；", "价", "格", "？", "[UNK]", "不", "错", "[UNK]"],
        [101, 2791, 7313, 8020, 2523, 8021, 2397, 1112, 8038, 3302, 1218, 671, 5663, 8039, 817, 3419, 8043, 100, 679, 7231, 100, 102],
    ),
    # Mixed Latin and digits: lower-cased, WordPiece continuation pieces.
    (
        "iPhone12很好用，USB-C接口",
        ["iphone", "##12", "很", "好", "用", "，", "usb", "-", "c", "接", "口"],
        [101, 8210, 8455, 2523, 1962, 4500, 8024, 8335, 118, 145, 2970, 1366, 102],
    ),
    ("😀👍 emoji", ["[UNK]", "em", "##o", "##ji"], [101, 100, 13152, 8167, 9343, 102]),
    ("ÉCOLE café", ["eco", "##le", "cafe"], [101, 12791, 8268, 8377, 102]),  # accents stripped with lower-casing
    ("𠀀", ["[UNK]"], [101, 100, 102]),  # CJK extension B: not in the vocabulary
    ("\t\n 好 \u200b", ["好"], [101, 1962, 102]),  # whitespace and zero-width characters cleaned
    ("", [], [101, 102]),
]


@pytest.mark.parametrize("text, tokens, ids", GOLDEN)
def test_golden_tokens_and_ids(chinese_tokenizer, text, tokens, ids):
    assert chinese_tokenizer.tokenize(text) == tokens
    assert chinese_tokenizer.token_ids([text]) == [ids]


def test_case_is_kept_without_lowercasing(chinese_vocab):
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab, lowercase=False)
    # The Chinese vocabulary has no upper-case pieces, so cased Latin becomes [UNK].
    assert tokenizer.token_ids(["iPhone12很好用"]) == [[101, 100, 2523, 1962, 4500, 102]]


def test_over_length_is_truncated_like_the_demo(chinese_tokenizer):
    # The demo: [CLS] + tokens[:126] + [SEP] at max length 128.
    ids = chinese_tokenizer.token_ids(["好" * 300])[0]
    assert len(ids) == 128
    assert ids[0] == 101 and ids[-1] == 102 and set(ids[1:-1]) == {1962}


# 一二三四五六七八九十 = ids 671 753 676 1724 758 1063 673 1061 736 1282, one token per character.
NUMERALS = "一二三四五六七八九十"


def test_head_and_tail_truncation_keeps_a_quarter_from_the_start_and_the_rest_from_the_end(chinese_vocab):
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab, max_seq_length=8, truncation="head+tail")
    # 6 places between [CLS] and [SEP]: 1 from the head (一), 5 from the tail (六七八九十).
    assert tokenizer.token_ids([NUMERALS]) == [[101, 671, 1063, 673, 1061, 736, 1282, 102]]
    # Exactly 6 tokens fit: nothing is cut; 7 tokens: the second (二) goes.
    assert tokenizer.token_ids([NUMERALS[:6], NUMERALS[:7]]) == [
        [101, 671, 753, 676, 1724, 758, 1063, 102], [101, 671, 676, 1724, 758, 1063, 673, 102]]
    assert tokenizer.token_ids([""]) == [[101, 102]]


def test_head_truncation_is_the_default(chinese_vocab):
    tokenizer = BertTokenizer.from_vocab_file(chinese_vocab, max_seq_length=8)
    assert tokenizer.truncation == "head"
    assert tokenizer.token_ids([NUMERALS]) == [[101, 671, 753, 676, 1724, 758, 1063, 102]]


def test_truncation_is_saved_with_the_tokenizer(chinese_vocab, tmp_path):
    import json

    BertTokenizer.from_vocab_file(chinese_vocab, max_seq_length=8, truncation="head+tail").save(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_settings.json").read_text())
    assert settings == {"kind": "wordpiece", "lowercase": True, "max_seq_length": 8, "truncation": "head+tail", "vocab_size": 21128}
    loaded = load_saved_tokenizer(tmp_path)
    assert loaded.truncation == "head+tail"
    assert loaded.token_ids([NUMERALS]) == [[101, 671, 1063, 673, 1061, 736, 1282, 102]]


def test_a_tokenizer_folder_from_before_truncation_settings_loads_as_head(chinese_vocab, tmp_path):
    import json

    BertTokenizer.from_vocab_file(chinese_vocab, max_seq_length=8).save(tmp_path)
    settings = json.loads((tmp_path / "tokenizer_settings.json").read_text())
    del settings["truncation"], settings["kind"]
    (tmp_path / "tokenizer_settings.json").write_text(json.dumps(settings))
    assert load_saved_tokenizer(tmp_path).truncation == "head"


def test_unknown_truncation_is_refused(chinese_vocab):
    with pytest.raises(ValueError, match="truncation must be one of"):
        BertTokenizer.from_vocab_file(chinese_vocab, truncation="tail")


def test_encode_pads_dynamically_and_to_a_fixed_length(chinese_tokenizer):
    encoded = chinese_tokenizer.encode(["好", "很好很好"])
    np.testing.assert_array_equal(encoded.input_ids, [[101, 1962, 102, 0, 0, 0], [101, 2523, 1962, 2523, 1962, 102]])
    np.testing.assert_array_equal(encoded.attention_mask, [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(encoded.token_type_ids, np.zeros((2, 6)))
    assert encoded.input_ids.dtype == np.int64
    assert chinese_tokenizer.encode(["好"], pad_to=128).input_ids.shape == (1, 128)


def test_save_and_load_round_trip(chinese_tokenizer, tmp_path):
    chinese_tokenizer.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_settings.json", "vocab.txt"]
    loaded = load_saved_tokenizer(tmp_path)
    texts = [text for text, _, _ in GOLDEN]
    assert loaded.token_ids(texts) == chinese_tokenizer.token_ids(texts)
    assert (loaded.lowercase, loaded.max_seq_length, loaded.vocab_size) == (True, 128, 21128)


def test_the_saved_rust_pipeline_gives_the_same_ids(chinese_tokenizer, tmp_path):
    # tokenizer.json alone (e.g. loaded by another program) must agree with ours.
    from tokenizers import Tokenizer

    chinese_tokenizer.save(tmp_path)
    rust = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text, _, ids in GOLDEN:
        assert rust.encode(text).ids == ids


def test_vocab_without_special_tokens_is_refused(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(PretrainedError, match=r"lacks the special tokens"):
        BertTokenizer.from_vocab_file(tmp_path / "vocab.txt")


def test_load_from_a_folder_that_is_not_a_tokenizer(tmp_path):
    with pytest.raises(PretrainedError, match="not a bertserve tokenizer folder"):
        load_saved_tokenizer(tmp_path)


# ---- the unigram kind (XLM-RoBERTa's SentencePiece model, as multilingual-e5-small uses) ----------

UNIGRAM_PIECES = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("很", -5.0), ("好", -5.0),
                  ("很好", -3.0), ("▁很好", -2.5), (",", -2.0), ("房", -5.0), ("间", -5.0), ("房间", -4.0), ("▁ok", -3.0)]
UNIGRAM_SPECIAL = {"bos": 0, "eos": 2, "pad": 1, "unk": 3}


@pytest.fixture
def unigram():
    return UnigramTokenizer(UNIGRAM_PIECES, {"，": ",", "\x01": ""}, UNIGRAM_SPECIAL, max_seq_length=8)


@pytest.mark.parametrize("text, tokens", [
    ("很好", ["▁很好"]),                           # a leading space is added, and the word with it is the likeliest split
    ("房间很好", ["▁", "房间", "很好"]),
    ("房间，很好", ["▁", "房间", ",", "很好"]),      # full-width comma mapped to ","
    ("房\x01间", ["▁", "房间"]),                   # the control character is dropped before splitting
    ("ok   很好", ["▁ok", "▁很好"]),                # runs of spaces are one space
    ("猫", ["▁", "猫"]),                            # unknown character: its own token, id <unk>
    ("", []),
])
def test_unigram_golden_tokens(unigram, text, tokens):
    assert unigram.tokenize(text) == tokens


def test_unigram_ids_start_and_end_with_s_and_pad_with_pad(unigram):
    assert unigram.token_ids(["猫很好"]) == [[0, 4, 3, 7, 2]]
    encoded = unigram.encode(["很好", "房间很好"])
    np.testing.assert_array_equal(encoded.input_ids, [[0, 8, 2, 1, 1], [0, 4, 12, 7, 2]])
    np.testing.assert_array_equal(encoded.attention_mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def test_unigram_truncation_head_and_head_tail(unigram):
    text = "房间很好" * 4  # 1 + 8 pieces: "▁" then 房间 很好 x4
    assert unigram.token_ids([text]) == [[0, 4, 12, 7, 12, 7, 12, 7, 2][:7] + [2]]
    head_tail = UnigramTokenizer(UNIGRAM_PIECES, {}, UNIGRAM_SPECIAL, max_seq_length=8, truncation="head+tail")
    assert head_tail.token_ids([text]) == [[0, 4, 7, 12, 7, 12, 7, 2]]  # "▁" from the head, the last 5 pieces


def test_unigram_save_and_load_round_trip(unigram, tmp_path):
    unigram.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normalization.json", "tokenizer.json", "tokenizer_settings.json"]
    loaded = load_saved_tokenizer(tmp_path)
    assert isinstance(loaded, UnigramTokenizer) and loaded.identity() == unigram.identity()
    texts = ["房间，很好", "房\x01间", "ok   很好", "猫"]
    assert loaded.token_ids(texts) == unigram.token_ids(texts)


def test_tokenizers_of_different_kinds_or_maps_differ(unigram, chinese_tokenizer):
    other_map = UnigramTokenizer(UNIGRAM_PIECES, {"，": ","}, UNIGRAM_SPECIAL, max_seq_length=8)
    assert unigram.identity() != other_map.identity()
    rescored = [(piece, score - 1.0 if piece == "很好" else score) for piece, score in UNIGRAM_PIECES]
    assert unigram.identity() != UnigramTokenizer(rescored, {"，": ",", "\x01": ""}, UNIGRAM_SPECIAL, max_seq_length=8).identity()
    assert unigram.identity()[0] != chinese_tokenizer.identity()[0]


@pytest.mark.parametrize("damage, message", [
    ("kind", "unknown tokenizer kind 'bpe'"),
    ("normalization", "unreadable tokenizer folder"),
    ("model", "not a unigram tokenizer"),
])
def test_damaged_unigram_folders_are_one_line_errors(unigram, tmp_path, damage, message):
    import json

    unigram.save(tmp_path)
    if damage == "kind":
        settings = json.loads((tmp_path / "tokenizer_settings.json").read_text())
        (tmp_path / "tokenizer_settings.json").write_text(json.dumps({**settings, "kind": "bpe"}))
    elif damage == "normalization":
        (tmp_path / "normalization.json").unlink()
    else:
        document = json.loads((tmp_path / "tokenizer.json").read_text())
        document["model"]["type"] = "BPE"
        (tmp_path / "tokenizer.json").write_text(json.dumps(document))
    with pytest.raises(PretrainedError, match=message):
        load_saved_tokenizer(tmp_path)
