"""Tables for batch prediction: read TSV/CSV/JSONL rows, write them back with extra columns.

Used by `bertserve predict`, and by `bertserve.data.datasets` for training and evaluation files, so that
every tabular input follows the same rules. Three formats, chosen from the file extension unless given:

    tsv    .tsv .txt       tab-separated, header line, quoting DISABLED: a `"` is an ordinary
                           character, as in ChnSentiCorp's `label<TAB>text_a` files
    csv    .csv            comma-separated with standard double-quote quoting (Excel, pandas)
    jsonl  .jsonl .ndjson  one JSON object per line; blank lines are skipped

Rows are dicts of column -> value, in file order; every input row comes back as one output row.
Writes go to a temporary file beside the target which is renamed into place only when complete,
so a crash or Ctrl-C never leaves a half-written output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from bertserve.errors import DataError

FORMATS = ("tsv", "csv", "jsonl")
EXTENSIONS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, Any]]
    line_numbers: list[int] = field(default_factory=list)  # the file line of each row, for error messages


def detect_format(path: Path | str, given: str | None = None) -> str:
    """`given` if set (checked), else the format the extension names."""
    if given is not None:
        if given not in FORMATS:
            raise DataError(f"unknown format {given!r}; use one of {', '.join(FORMATS)}")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(
            f"cannot tell the format of {path} from its extension {suffix or '(none)'!r}; "
            f"pass --format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[suffix]


def read_table(path: Path | str, fmt: str) -> Table:
    """All rows of `path`. Raises DataError naming the file and line for any problem."""
    path = Path(path)
    try:
        # utf-8-sig: spreadsheets often prefix a byte-order mark that would end up in the header.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"cannot read {path}: it is a folder, not a file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"cannot read {path}: not UTF-8 text (byte {error.start}); re-save it as UTF-8") from None
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if fmt == "jsonl":
        return _read_jsonl(text, path)
    return _read_delimited(text, path, fmt)


def _read_delimited(text: str, path: Path, fmt: str) -> Table:
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or header == []:
            raise DataError(f"{path}: empty file; the first line must name the columns")
        if len(set(header)) != len(header):
            duplicate = next(name for name in header if header.count(name) > 1)
            raise DataError(f"{path}: line 1: column {duplicate!r} appears twice in the header")
        rows, line_numbers = [], []
        for fields in reader:
            if not fields:
                continue  # a blank line (often the file's last) is not a row
            if len(fields) != len(header):
                raise DataError(
                    f"{path}: line {reader.line_num}: {len(fields)} field(s), the header has {len(header)}"
                    + ("; is it really tab-separated?" if fmt == "tsv" else "")
                )
            rows.append(dict(zip(header, fields)))
            line_numbers.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"{path}: line {reader.line_num}: {error}") from None
    return Table(list(header), rows, line_numbers)


def _read_jsonl(text: str, path: Path) -> Table:
    columns: dict[str, None] = {}  # insertion-ordered set: columns in order of first appearance
    rows, line_numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
        columns.update(dict.fromkeys(row))
        rows.append(row)
        line_numbers.append(number)
    return Table(list(columns), rows, line_numbers)


def texts_of(table: Table, column: str | None, path: Path | str) -> tuple[str, list[str]]:
    """The text column's name and values. With no column given, `text`, else `text_a` (the
    ChnSentiCorp/BERT demo name). Every value must be a string."""
    if column is None:
        column = next((name for name in ("text", "text_a") if name in table.columns), None)
        if column is None:
            raise DataError(
                f"{path}: no 'text' or 'text_a' column (columns: {', '.join(table.columns) or 'none'}); "
                f"name it with --text-column"
            )
    elif column not in table.columns:
        raise DataError(
            f"{path}: no column {column!r} (columns: {', '.join(table.columns) or 'none'}); fix --text-column"
        )
    texts = []
    for index, row in enumerate(table.rows, start=1):
        value = row.get(column)
        if not isinstance(value, str):
            raise DataError(f"{path}: row {index}: {column!r} must be a string, got {json.dumps(value)}")
        texts.append(value)
    return column, texts


class TableWriter:
    """Writes rows in one format to an open text handle; used through `open_table_writer`."""

    def __init__(self, handle: Any, fmt: str, columns: list[str]):
        self.fmt = fmt
        self.columns = columns
        self._handle = handle
        self.rows_written = 0
        if fmt == "jsonl":
            self._writer = None
        else:
            if fmt == "tsv":
                # No quoting, as on input; a tab or newline in a value cannot be written then.
                self._writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
            else:
                self._writer = csv.writer(handle, lineterminator="\n")
            self._writer.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            values = ["" if row.get(name) is None else _cell(row.get(name)) for name in self.columns]
            try:
                self._writer.writerow(values)
            except csv.Error:
                raise DataError(
                    f"row {self.rows_written + 1} has a tab or line break in a value, which TSV without "
                    f"quoting cannot hold; use --format csv or jsonl"
                ) from None
        self.rows_written += 1


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@contextmanager
def open_table_writer(path: Path | str, fmt: str, columns: list[str]) -> Iterator[TableWriter]:
    """A TableWriter on a temporary file beside `path`, renamed to `path` when the block ends
    without error and removed otherwise."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield TableWriter(handle, fmt, columns)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give the output the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
