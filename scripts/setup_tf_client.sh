#!/usr/bin/env bash
# Create .venv-tf/ beside .venv/: TensorFlow (CPU) + the official `tensorflow-serving-api` stubs,
# used only by tests/serving/grpc/test_official_client.py to call our gRPC server exactly as a TF
# Serving client would. TensorFlow is kept out of .venv on purpose (large, and its protobuf/numpy
# pins conflict with the serving stack). Safe to re-run: a working .venv-tf is reused; a failed
# install leaves no marker, so the test skips with a reason and the next run tries again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# One install at a time (tests or CI runs started together): lock this script file itself.
exec 9<"scripts/setup_tf_client.sh"
flock 9
if [ -f .venv-tf/.installed ]; then
  exit 0
fi
rm -rf .venv-tf
"$PYTHON" -m venv .venv-tf
.venv-tf/bin/python -m pip install --quiet --upgrade pip
.venv-tf/bin/python -m pip install --quiet tensorflow-cpu tensorflow-serving-api
.venv-tf/bin/python -c "import tensorflow, tensorflow_serving.apis.prediction_service_pb2_grpc"
touch .venv-tf/.installed
