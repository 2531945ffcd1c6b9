"""Warn, in one line per folder, when a folder the tests write to is nearly out of disk space.

A full disk does not fail one test with a clear message: it turns into dozens of unrelated fixture
errors (every `tmp_path` that cannot be created) and can crash pytest's own reporting. This says it
plainly instead. It only warns: the suite still runs, and its own result stands.

    python scripts/disk_space.py [FOLDER ...]     # default: the repository root and the temp folder
"""

import shutil
import sys
import tempfile
from pathlib import Path

WARN_BELOW_BYTES = 2 << 30  # a full run writes a few hundred MB of tiny models and logs; leave room


def low_space_warnings(folders: list[str], warn_below: int | None = None) -> list[str]:
    """One warning per folder with less than `warn_below` bytes free (default WARN_BELOW_BYTES); a
    folder that does not exist is skipped."""
    warn_below = WARN_BELOW_BYTES if warn_below is None else warn_below
    warnings = []
    for folder in folders:
        if not Path(folder).exists():
            continue
        free = shutil.disk_usage(folder).free
        if free < warn_below:
            warnings.append(f"warning: only {free / 2**20:,.0f} MiB free under {folder} (less than "
                            f"{warn_below / 2**30:.1f} GiB): tests that write files may fail with "
                            f"'No space left on device'")
    return warnings


def main(argv: list[str]) -> int:
    folders = argv or [str(Path(__file__).resolve().parent.parent), tempfile.gettempdir()]
    for line in low_space_warnings(folders):
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
