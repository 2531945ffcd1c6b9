"""Which texts `bertserve bench` replays: TSV text_a (quoting off), plain lines, dataset folders,
the median-length text, and one-line errors."""

from __future__ import annotations

import pytest

from bertserve.bench.texts import BUILTIN_TEXTS, load_texts, select
from bertserve.errors import DataError


def test_tsv_text_a_column_with_bare_quotes(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text('label\ttext_a\n1\t"好"的酒店\n0\t差\n1\t\n', encoding="utf-8")
    assert load_texts(path) == ['"好"的酒店', "差"]


def test_dataset_folder_uses_dev_then_test(tmp_path):
    (tmp_path / "test.tsv").write_text("label\ttext_a\n1\t测试\n", encoding="utf-8")
    assert load_texts(tmp_path) == ["测试"]
    (tmp_path / "dev.tsv").write_text("label\ttext_a\n1\t开发\n", encoding="utf-8")
    assert load_texts(tmp_path) == ["开发"]


def test_text_file_one_per_line_and_builtins(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("一\n\n  二  \n", encoding="utf-8")
    assert load_texts(path) == ["一", "二"]
    assert load_texts(None) == list(BUILTIN_TEXTS)


def test_median_is_the_middle_length():
    assert select(["aaaa", "a", "aaa", "aa", "aaaaa"], "median") == ["aaa"]
    assert select(["b", "a"], "all") == ["b", "a"]


@pytest.mark.parametrize("content, message", [("", "no texts found"), ("label\ttext_a\n", "no texts found")])
def test_empty_files(tmp_path, content, message):
    path = tmp_path / "x.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_texts(path)


def test_folder_without_splits_and_binary_file(tmp_path):
    with pytest.raises(DataError, match="holds no dev.tsv"):
        load_texts(tmp_path)
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="not UTF-8"):
        load_texts(path)
