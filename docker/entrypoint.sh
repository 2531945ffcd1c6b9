#!/bin/sh
# The image's entrypoint, shaped like TF Serving's (tf_serving_entrypoint.sh):
#   tensorflow_model_server --port=8500 --rest_api_port=8501 \
#     --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"
# so the demo's `docker run -p 8501:8501 -v <model_dir>:/models/chnsenticorp -e MODEL_NAME=chnsenticorp`
# works unchanged. Inside a container the server must bind 0.0.0.0 (the CLI default is 127.0.0.1).
# Arguments given to `docker run IMAGE ...` come last; argparse keeps the last value of a repeated
# flag, so `--rest_api_port=9000` or `--host=127.0.0.1` there override the defaults here, and
# `--model_config_file=...` replaces the MODEL_NAME/MODEL_BASE_PATH pair (they cannot be combined).
# gRPC (TF Serving's PredictionService/ModelService) is served on 8500 (`--port=0` turns it off). `exec` makes the server PID 1's process, so SIGTERM reaches it and
# drains in-flight requests.
set -eu

MODEL_NAME="${MODEL_NAME:-model}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-/models}"

for argument in "$@"; do
  case "$argument" in
    --model_config_file|--model_config_file=*)
      exec bertserve serve --host=0.0.0.0 --port=8500 --rest_api_port=8501 "$@" ;;
  esac
done

exec bertserve serve --host=0.0.0.0 --port=8500 --rest_api_port=8501 \
  "--model_name=${MODEL_NAME}" "--model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
