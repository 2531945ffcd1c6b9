"""The texts a benchmark replays: every text of a file (or a dataset folder's dev split), or the
one of median length.

    texts = load_texts("../shared/data/chnsenticorp")             # dev.tsv's text_a column
    texts = load_texts("reviews.txt")                              # one text per line
    [median] = select(texts, "median")                             # the ~75-character review

A `.tsv` file is read with quoting disabled (ChnSentiCorp has bare quotes) and its `text_a`
column (or its last column) is used; any other file is one text per line. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from bertserve.errors import DataError

# A handful of built-in reviews so `bertserve bench` works without any data file.
BUILTIN_TEXTS = (
    "这家酒店的位置很好,离地铁站很近,房间干净,服务员态度也不错,早餐种类比较多,下次还会再来住。",
    "房间太小了,隔音很差,晚上一直听到走廊的声音,空调也不太制冷,性价比不高,不推荐。",
    "书的内容很精彩,印刷质量也好,当当送货很快,包装完整,值得购买。",
    "电脑用了一个星期就死机好几次,客服也不理人,非常失望。",
    "屏幕清晰,键盘手感不错,电池能用五个小时左右,对得起这个价格。",
    "服务一般,早餐难吃,不会再住了。",
)


def load_texts(source: str | Path | None) -> list[str]:
    """Texts from a file or a dataset folder (its dev.tsv, else test.tsv); built-ins for None."""
    if source is None:
        return list(BUILTIN_TEXTS)
    path = Path(source).expanduser()
    if path.is_dir():
        for name in ("dev.tsv", "test.tsv", "train.tsv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise DataError(f"{path}: folder holds no dev.tsv, test.tsv or train.tsv; give --data a file of texts")
    if not path.is_file():
        raise DataError(f"--data {path} does not exist; give a TSV with a text_a column, a text file, or a dataset folder")
    try:
        texts = _read_tsv(path) if path.suffix.lower() == ".tsv" else _read_lines(path)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not texts:
        raise DataError(f"{path}: no texts found; the file is empty or has only a header")
    return texts


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def _read_tsv(path: Path) -> list[str]:
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        return []
    header = rows[0]
    if "text_a" in header:
        column, body = header.index("text_a"), rows[1:]
    else:
        column, body = -1, rows
    return [row[column].strip() for row in body if row and len(row) > max(column, 0) and row[column].strip()]


def select(texts: list[str], mode: str) -> list[str]:
    """`all`: every text in file order; `median`: only the text of median length (in characters)."""
    if mode == "all":
        return list(texts)
    if mode == "median":
        ordered = sorted(texts, key=len)
        return [ordered[len(ordered) // 2]]
    raise DataError(f"unknown text selection {mode!r}; use 'all' or 'median'")
