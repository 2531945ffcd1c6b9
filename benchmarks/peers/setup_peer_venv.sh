#!/usr/bin/env bash
# Create the isolated venv used only by `bertserve bench --peers ray,litserve`: Ray Serve (its own
# dynamic batching, @serve.batch) and LitServe (its own batching loop), plus the same engines as
# bertserve (OpenVINO, ONNX Runtime, same versions) and the Rust tokenizer, so both peers serve the
# *same* export as bertserve with the same engine (benchmarks/peers/peer_engine.py): the comparison
# then measures serving overhead and batching, not model speed. No torch here: the peers never need it.
#
#   bash benchmarks/peers/setup_peer_venv.sh          # -> .bench/venv at the repository root (git-ignored)
#   BENCH_VENV=/elsewhere/venv bash benchmarks/peers/setup_peer_venv.sh
#
# Kept out of the project's .venv because Ray and LitServe pin their own versions of pydantic,
# protobuf, fastapi, ...
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${BENCH_VENV:-$PWD/.bench/venv}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
version() { .venv/bin/python -c "from importlib.metadata import version; print(version('$1'))"; }
# Versions pinned so the benchmark numbers in docs/benchmarks.md can be reproduced.
"$VENV/bin/pip" install --quiet "ray[serve]==2.60.0" "litserve==0.2.19" \
  "onnxruntime==$(version onnxruntime)" "openvino==$(version openvino)" "tokenizers==$(version tokenizers)" numpy
"$VENV/bin/python" -c "import ray, ray.serve, litserve, onnxruntime, openvino, tokenizers; print('peer venv ok: ray', ray.__version__, 'litserve', litserve.__version__, 'openvino', openvino.__version__)"
