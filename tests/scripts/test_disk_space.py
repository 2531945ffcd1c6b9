"""scripts/disk_space.py: the one-line warning scripts/test.sh prints when a folder the tests write
to is nearly full (a full disk otherwise shows up as dozens of unrelated fixture errors)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "disk_space.py"


def load_script():
    spec = importlib.util.spec_from_file_location("disk_space", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_folder_below_the_threshold_gets_one_warning_naming_it_and_its_free_space(tmp_path: Path):
    disk_space = load_script()
    free_mib = shutil.disk_usage(tmp_path).free / 2**20
    (line,) = disk_space.low_space_warnings([str(tmp_path)], warn_below=shutil.disk_usage(tmp_path).free + 2**30)
    assert line.startswith("warning: only ")
    assert str(tmp_path) in line and "No space left on device" in line
    reported_mib = float(line.split("only ")[1].split(" MiB")[0].replace(",", ""))
    assert abs(reported_mib - free_mib) < 64  # other writers on the machine may move it a little


def test_enough_space_or_a_missing_folder_gives_no_warning(tmp_path: Path):
    disk_space = load_script()
    assert disk_space.low_space_warnings([str(tmp_path)], warn_below=0) == []
    assert disk_space.low_space_warnings([str(tmp_path / "not-there")], warn_below=1 << 62) == []


def test_the_command_warns_on_stderr_and_always_exits_zero(tmp_path: Path, monkeypatch, capsys):
    disk_space = load_script()
    monkeypatch.setattr(disk_space, "WARN_BELOW_BYTES", 1 << 62)  # every real disk is "nearly full"
    assert disk_space.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and str(tmp_path) in err
    ran = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "not-there")], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == "" and ran.stderr == ""
