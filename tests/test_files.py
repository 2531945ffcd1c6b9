"""bertserve.files: the one recipe for folders a reader must never see half of (write into a
temporary folder, sync, rename into place), and its crash recovery."""

from __future__ import annotations

import os

import pytest

import bertserve.files as files
from bertserve.files import recover_interrupted_swap, write_folder_atomically, write_text_atomic


def listing(folder):
    return sorted(path.name for path in folder.iterdir())


def test_folder_appears_complete_under_its_name(tmp_path):
    target = tmp_path / "base" / "7"
    with write_folder_atomically(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".7.tmp-")
        (temporary / "sub").mkdir()
        (temporary / "sub" / "a.txt").write_text("a", encoding="utf-8")
        assert not target.exists()  # nothing visible until the block ends
    assert listing(tmp_path / "base") == ["7"]
    assert (target / "sub" / "a.txt").read_text(encoding="utf-8") == "a"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700


def test_an_error_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"):
        with write_folder_atomically(target, replace=True) as temporary:
            (temporary / "new.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("disk full")
    assert listing(tmp_path) == ["checkpoint"] and listing(target) == ["old.txt"]


def test_existing_folder_needs_replace(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    with pytest.raises(FileExistsError):
        with write_folder_atomically(target) as temporary:
            (temporary / "x.json").write_text("{}", encoding="utf-8")
    assert listing(tmp_path) == ["1"] and listing(target) == []
    with write_folder_atomically(target, replace=True) as temporary:
        (temporary / "x.json").write_text("{}", encoding="utf-8")
    assert listing(tmp_path) == ["1"] and listing(target) == ["x.json"]


def test_recovery_after_a_crash_between_the_two_renames(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old", encoding="utf-8")
    real_rename = os.rename

    def crash_on_second_rename(source, destination):
        if str(destination) == str(target):
            raise KeyboardInterrupt("killed")  # as if the process died here
        real_rename(source, destination)

    monkeypatch.setattr(files.os, "rename", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with write_folder_atomically(target, replace=True) as temporary:
            (temporary / "weights").write_text("new", encoding="utf-8")
    monkeypatch.setattr(files.os, "rename", real_rename)
    assert listing(tmp_path) == [".model.old"]  # only the set-aside copy is left
    (tmp_path / ".model.tmp-stale").mkdir()  # a temporary folder a kill -9 left behind
    recover_interrupted_swap(target)
    assert listing(tmp_path) == ["model"] and (target / "weights").read_text(encoding="utf-8") == "old"


def test_write_text_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "a" / "metrics.json"
    write_text_atomic(path, "1")
    write_text_atomic(path, "2")
    assert path.read_text(encoding="utf-8") == "2" and listing(path.parent) == ["metrics.json"]
