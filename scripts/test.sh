#!/usr/bin/env bash
# The README's test command: set up .venv/ (scripts/setup.sh) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/test_tokenizer.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,ray bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
