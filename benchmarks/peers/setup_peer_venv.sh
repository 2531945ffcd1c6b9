#!/usr/bin/env bash
# Create the isolated venv used only by `bertserve bench --peers ray`: Ray Serve (a real serving
# framework with its own dynamic batching, @serve.batch) plus ONNX Runtime and the Rust tokenizer,
# so the Ray peer serves the *same* ONNX export as bertserve (same engine, same graph, same
# threads): the comparison then measures serving overhead and batching, not model speed.
# No torch here: the peer never needs it.
#
#   bash benchmarks/peers/setup_peer_venv.sh          # -> /work/main/.bench/venv (git-ignored)
#
# Kept out of the project's .venv because Ray pins its own versions of pydantic, protobuf, ...
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${BENCH_VENV:-$PWD/.bench/venv}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
# Versions pinned so the benchmark numbers in docs/benchmarks.md can be reproduced.
"$VENV/bin/pip" install --quiet "ray[serve]==2.60.0" "onnxruntime==$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')" \
  "tokenizers==$(.venv/bin/python -c 'import tokenizers; print(tokenizers.__version__)')" numpy
"$VENV/bin/python" -c "import ray, ray.serve, onnxruntime, tokenizers; print('peer venv ok: ray', ray.__version__, 'onnxruntime', onnxruntime.__version__)"
