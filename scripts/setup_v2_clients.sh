#!/usr/bin/env bash
# Create .venv-clients/ beside .venv/: the Open Inference Protocol (KServe V2) clients that
# tests/serving/v2/test_v2_live.py runs against our server: tritonclient[http,grpc] and the kserve
# SDK. Kept out of .venv because both pin protobuf 6 (the serving stack runs protobuf 7) and the
# kserve SDK pulls kubernetes, pandas and more. Safe to re-run: a working .venv-clients is reused;
# a failed install leaves no marker, so those tests skip with a reason and the next run tries again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK="${TMPDIR:-/tmp}/bertserve-venv-clients.lock"
exec 9>"$LOCK"
flock 9
if [ -f .venv-clients/.installed ]; then
  exit 0
fi
rm -rf .venv-clients
"$PYTHON" -m venv .venv-clients
.venv-clients/bin/python -m pip install --quiet --upgrade pip
.venv-clients/bin/python -m pip install --quiet "tritonclient[http,grpc]==2.73.0" "kserve==0.21.0"
# Two processes: tritonclient.grpc and kserve both register the inference.* protobuf messages.
.venv-clients/bin/python -c "import tritonclient.http, tritonclient.grpc"
.venv-clients/bin/python -c "import kserve"
touch .venv-clients/.installed
