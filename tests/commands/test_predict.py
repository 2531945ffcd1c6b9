"""`bertserve predict`: in-process (--model-dir) on a tiny exported model, each format, exact row and
column layout, and one-line errors with exit code 2. The --url path is covered in test_online.py."""

from __future__ import annotations

import csv
import json
import math

import pytest

from bertserve.cli import main

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def tiny_export(tiny_run, tmp_path_factory):
    from bertserve.export.version import ExportSettings, export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("models") / "tiny", ExportSettings(version=1)).path


@pytest.fixture(scope="module")
def expected(tiny_export):
    """What the model says for the texts used below, computed directly."""
    from bertserve.inference.model import ExportedModel

    model = ExportedModel.load(tiny_export)
    texts = ['这家酒店"很"干净', "太差了", "", "好" * 300]
    return dict(zip(texts, model.predict_texts(texts).tolist()))


def check_row(row: dict, expected: dict, text_column: str) -> None:
    probabilities = expected[row[text_column]]
    got = [float(row["p_negative"]), float(row["p_positive"])]
    assert got == pytest.approx(probabilities, abs=1e-6)
    assert row["predicted_label"] == LABELS[probabilities.index(max(probabilities))]
    assert math.isclose(sum(got), 1.0, abs_tol=1e-5)


def test_tsv_like_chnsenticorp(tmp_path, tiny_export, expected, capsys):
    source = tmp_path / "test.tsv"
    # Quotes are ordinary characters in these files; an empty text and an over-long one still get rows.
    source.write_text('label\ttext_a\n1\t这家酒店"很"干净\n0\t太差了\n1\t\n0\t' + "好" * 300 + "\n", encoding="utf-8")
    output = tmp_path / "out" / "predictions.tsv"
    assert main(["predict", "--input", str(source), "--output", str(output), "--model-dir", str(tiny_export), "--batch-size", "3"]) == 0
    assert capsys.readouterr().out == f"wrote 4 row(s) to {output}\n"
    lines = output.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "label\ttext_a\tp_negative\tp_positive\tpredicted_label"
    assert len(lines) == 5
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [row["label"] for row in rows] == ["1", "0", "1", "0"]
    assert rows[0]["text_a"] == '这家酒店"很"干净'
    for row in rows:
        check_row(row, expected, "text_a")
    assert sorted(path.name for path in output.parent.iterdir()) == ["predictions.tsv"]


def test_csv_with_named_column(tmp_path, tiny_export, expected):
    source = tmp_path / "reviews.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "comment"])
        writer.writerow(["a", "太差了"])
        writer.writerow(["b", '这家酒店"很"干净'])
    output = tmp_path / "scored.csv"
    assert main(["predict", "--input", str(source), "--output", str(output), "--model-dir", str(tiny_export), "--text-column", "comment"]) == 0
    with open(output, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "comment", "p_negative", "p_positive", "predicted_label"]
    assert [row["id"] for row in rows] == ["a", "b"]
    for row in rows:
        check_row(row, expected, "comment")


def test_jsonl_keeps_every_field_and_relabelling_replaces_columns(tmp_path, tiny_export, expected):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "太差了", "meta": {"stars": 1}}\n\n{"text": "", "id": 7}\n', encoding="utf-8"
    )
    output = tmp_path / "out.jsonl"
    assert main(["predict", "--input", str(source), "--output", str(output), "--model-dir", str(tiny_export)]) == 0
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2
    assert rows[0]["meta"] == {"stars": 1}
    assert rows[1]["id"] == 7
    assert list(rows[0]) == ["text", "meta", "p_negative", "p_positive", "predicted_label"]
    for row in rows:
        check_row(row, expected, "text")
    # Running predict on its own output overwrites the prediction columns instead of adding more.
    again = tmp_path / "again.jsonl"
    assert main(["predict", "--input", str(output), "--output", str(again), "--model-dir", str(tiny_export)]) == 0
    assert again.read_text(encoding="utf-8") == output.read_text(encoding="utf-8")


def test_format_flag_overrides_extension(tmp_path, tiny_export):
    source = tmp_path / "export.dat"
    source.write_text("text\n太差了\n", encoding="utf-8")
    output = tmp_path / "out.dat"
    assert main(["predict", "--input", str(source), "--output", str(output), "--format", "tsv", "--model-dir", str(tiny_export)]) == 0
    assert output.read_text(encoding="utf-8").splitlines()[0] == "text\tp_negative\tp_positive\tpredicted_label"


@pytest.mark.parametrize(
    ("content", "name", "extra", "message"),
    [
        ("review\n好\n", "a.tsv", [], "no 'text' or 'text_a' column (columns: review); name it with --text-column"),
        ("text\n好\n", "a.tsv", ["--text-column", "body"], "no column 'body' (columns: text); fix --text-column"),
        ("text\n好\n", "a.xlsx", [], "cannot tell the format of"),
        ("label\ttext_a\n1\ta\tb\n", "a.tsv", [], "line 2: 3 field(s), the header has 2"),
        ("text\n好\n", "a.tsv", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_export, capsys, content, name, extra, message):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "out.tsv"
    code = main(["predict", "--input", str(source), "--output", str(output), "--model-dir", str(tiny_export), *extra])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("bertserve: error: ") and message in error
    assert error.count("\n") == 1
    assert not output.exists()


def test_missing_input_and_model_choice_errors(tmp_path, tiny_export, capsys):
    output = str(tmp_path / "out.tsv")
    assert main(["predict", "--input", str(tmp_path / "nope.tsv"), "--output", output, "--model-dir", str(tiny_export)]) == 2
    assert "cannot read" in capsys.readouterr().err
    source = tmp_path / "a.tsv"
    source.write_text("text\n好\n", encoding="utf-8")
    assert main(["predict", "--input", str(source), "--output", output]) == 2
    assert "--model-dir VERSION_DIR, or --url URL --model NAME" in capsys.readouterr().err
    assert main(["predict", "--input", str(source), "--output", output, "--model-dir", str(tiny_export), "--url", "http://127.0.0.1:1"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["predict", "--input", str(source), "--output", output, "--model-dir", str(tmp_path / "missing" / "1")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", "--input", str(source), "--output", output, "--model-dir", str(tiny_export.parent)]) == 2
    assert f"holds versions [1]; pass one version folder, e.g. --model-dir {tiny_export}" in capsys.readouterr().err
