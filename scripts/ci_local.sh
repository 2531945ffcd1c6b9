#!/usr/bin/env bash
# Run CI (.ci/run) on a clean clone of this repository's committed HEAD, as the real CI does, and
# remove the clone afterwards: each clone grows to about 5 GB (.venv, .venv-tf, .venv-clients), and
# clones left behind once filled the disk that a later CI run needed.
#
#   bash scripts/ci_local.sh [LOG]      # LOG defaults to ci-local.log in the current folder
# Exit status: that of .ci/run. The log keeps everything it printed; its last line is the exit status.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG=$(realpath -m "${1:-ci-local.log}")
CLONE=$(mktemp -d)
trap 'rm -rf "$CLONE"' EXIT
git clone --quiet "$REPO" "$CLONE/repo" || { echo "error: could not clone $REPO" >&2; exit 1; }
echo "CI on $(git -C "$CLONE/repo" rev-parse --short HEAD) in $CLONE/repo; log: $LOG"
status=0
(cd "$CLONE/repo" && .ci/run) > "$LOG" 2>&1 || status=$?
echo "rc=$status" >> "$LOG"
tail -n 3 "$LOG"
exit "$status"
