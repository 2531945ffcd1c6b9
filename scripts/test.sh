#!/usr/bin/env bash
# The README's test command: set up .venv/ (scripts/setup.sh) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/test_tokenizer.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,ray bash scripts/setup.sh
# .venv-tf/: TensorFlow + tensorflow-serving-api for the official TF Serving client test (kept out of
# .venv). If it cannot be installed, that one test skips with the reason; the suite still runs.
bash scripts/setup_tf_client.sh || echo "scripts/setup_tf_client.sh failed: the official TF Serving client test will skip" >&2
# .venv-clients/: tritonclient + the kserve SDK for the V2 protocol tests (same idea, same fallback).
bash scripts/setup_v2_clients.sh || echo "scripts/setup_v2_clients.sh failed: the tritonclient/kserve tests will skip" >&2
# A full disk shows up as a hundred unrelated errors: say so before the run and again under its summary.
.venv/bin/python scripts/disk_space.py
status=0
.venv/bin/python -m pytest "$@" || status=$?
.venv/bin/python scripts/disk_space.py
exit "$status"
