"""bertserve.data.table_io: format detection, reading each format, atomic writes and exact errors."""

from __future__ import annotations

import json

import pytest

from bertserve.errors import DataError
from bertserve.data.table_io import detect_format, open_table_writer, read_table, texts_of


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.tsv", "tsv"), ("a.TXT", "tsv"), ("a.csv", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl")],
)
def test_format_from_extension(name, expected):
    assert detect_format(name) == expected


def test_unknown_extension_and_format_are_errors():
    with pytest.raises(DataError, match=r"cannot tell the format of data.xlsx .*pass --format tsv\|csv\|jsonl"):
        detect_format("data.xlsx")
    with pytest.raises(DataError, match="unknown format 'xml'"):
        detect_format("data.tsv", "xml")
    assert detect_format("data.xlsx", "csv") == "csv"


def test_tsv_has_no_quoting_and_defaults_to_text_a(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text('label\ttext_a\n1\t"好"的\n0\t差"\n\n', encoding="utf-8")
    table = read_table(path, "tsv")
    assert table.columns == ["label", "text_a"]
    assert table.rows == [{"label": "1", "text_a": '"好"的'}, {"label": "0", "text_a": '差"'}]
    assert texts_of(table, None, path) == ("text_a", ['"好"的', '差"'])


def test_csv_quoting_and_bom(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('\ufeffid,text\n1,"好,很好"\n2,"多\n行"\n', encoding="utf-8")
    table = read_table(path, "csv")
    assert table.columns == ["id", "text"]
    assert [row["text"] for row in table.rows] == ["好,很好", "多\n行"]


def test_jsonl_columns_in_first_seen_order(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "好", "id": 1}\n\n{"id": 2, "text": "差", "extra": true}\n', encoding="utf-8")
    table = read_table(path, "jsonl")
    assert table.columns == ["text", "id", "extra"]
    assert len(table.rows) == 2


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("tsv", "label\ttext_a\n1\ta\tb\n", r"line 2: 3 field\(s\), the header has 2; is it really tab-separated\?"),
        ("tsv", "", "empty file"),
        ("csv", "a,a\n1,2\n", "column 'a' appears twice"),
        ("jsonl", '{"text": "a"}\n{"text": \n', r"line 2: not JSON"),
        ("jsonl", '["a"]\n', "line 1: expected a JSON object, got list"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, fmt, content, message):
    path = tmp_path / f"bad.{fmt}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_table(path, fmt)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.tsv", "tsv")
    with pytest.raises(DataError, match="it is a folder"):
        read_table(tmp_path, "tsv")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(b"text\ncaf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(latin, "tsv")


def test_text_column_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"review": "a"}\n{"review": null}\n', encoding="utf-8")
    table = read_table(path, "jsonl")
    with pytest.raises(DataError, match=r"no 'text' or 'text_a' column \(columns: review\); name it with --text-column"):
        texts_of(table, None, path)
    with pytest.raises(DataError, match=r"no column 'body' \(columns: review\); fix --text-column"):
        texts_of(table, "body", path)
    with pytest.raises(DataError, match="row 2: 'review' must be a string, got null"):
        texts_of(table, "review", path)


def test_writer_is_atomic_and_formats_cells(tmp_path):
    out = tmp_path / "out.tsv"
    with open_table_writer(out, "tsv", ["text", "p"]) as writer:
        writer.write({"text": '"好"', "p": 0.5})
        assert not out.exists()  # only the temporary file exists until the block ends
    assert out.read_text(encoding="utf-8") == 'text\tp\n"好"\t0.500000\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "out.tsv"
    with pytest.raises(DataError, match="tab or line break"):
        with open_table_writer(out, "tsv", ["text"]) as writer:
            writer.write({"text": "a\tb"})
    assert list(tmp_path.iterdir()) == []


def test_jsonl_writer_keeps_unicode(tmp_path):
    out = tmp_path / "out.jsonl"
    with open_table_writer(out, "jsonl", ["text"]) as writer:
        writer.write({"text": "好", "p": 0.25})
    assert out.read_text(encoding="utf-8") == '{"text": "好", "p": 0.25}\n'
    assert json.loads(out.read_text(encoding="utf-8")) == {"text": "好", "p": 0.25}
