"""Small file helpers that make writes atomic and hashing uniform.

One recipe for every write a reader must never see half of: write into a temporary name beside
the target, fsync, rename into place. `write_text_atomic` does it for one file;
`write_folder_atomically` for a whole folder (an export version, a training checkpoint, the kept
weights of a run):

    with write_folder_atomically(run_dir / "checkpoint", replace=True) as folder:
        model.save_pretrained(folder)       # fill the temporary folder; nothing is visible yet
    # now run_dir/checkpoint is the new folder, complete and on disk

Temporary and set-aside folders are dot-prefixed (`.NAME.tmp-XXXX`, `.NAME.old`), so a server
polling a base path for numbered versions never mistakes one for a version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it into place, so a
    reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (names created or renamed in it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_tree(folder: Path) -> None:
    """Give every file and folder under `folder` the usual permissions (mkdtemp makes 0700
    folders, and a server may run as another user) and flush it all to disk, so that a rename
    publishes complete files."""
    mask = _umask()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_dir():
            path.chmod(0o777 & ~mask)
            fsync_directory(path)
            continue
        path.chmod(0o666 & ~mask)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    Path(folder).chmod(0o777 & ~mask)
    fsync_directory(folder)


def set_aside_path(final: Path) -> Path:
    """Where `write_folder_atomically(final, replace=True)` keeps the old folder during the swap."""
    return final.with_name(f".{final.name}.old")


@contextlib.contextmanager
def write_folder_atomically(final: Path | str, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; when the block ends without an error, sync
    it and rename it to `final`. On an error the temporary folder is removed and `final` is
    untouched. An existing `final` raises FileExistsError unless `replace`: then it is renamed
    aside first (a folder cannot be replaced in one rename), so it is briefly absent, never
    half-written; `recover_interrupted_swap` undoes a crash in that moment."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield temporary
        sync_tree(temporary)
        swap_into_place(temporary, final, replace)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def swap_into_place(temporary: Path, final: Path, replace: bool) -> None:
    """Rename the finished `temporary` folder to `final` (the last step of `write_folder_atomically`)."""
    aside = set_aside_path(final)
    if final.exists():
        if not replace:
            raise FileExistsError(f"{final} already exists")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
    os.rename(temporary, final)
    fsync_directory(final.parent)
    shutil.rmtree(aside, ignore_errors=True)


def recover_interrupted_swap(final: Path) -> None:
    """After a crash: if `final` is missing but its set-aside copy exists (killed between the two
    renames of `swap_into_place`), put the copy back; remove unfinished temporary folders."""
    final, aside = Path(final), set_aside_path(Path(final))
    if not final.exists() and aside.exists():
        os.rename(aside, final)
    for temporary in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(temporary, ignore_errors=True)


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
