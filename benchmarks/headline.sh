#!/usr/bin/env bash
# The summary run of docs/benchmarks.md: the default export of a fine-tuned m3e-small served with
# the defaults, against the engine in-process and the naive peer, then the median review at 1 client.
#
#   bash benchmarks/headline.sh [DATA] [WORK] [RUN]
#
# DATA: ChnSentiCorp folder (default ../shared/data/chnsenticorp beside the repository, else the
# built-in texts of `bertserve bench`). WORK: where the export, logs and JSON go (default: a new
# `mktemp -d` folder). RUN: the m3e-small run folder (default runs/chnsenticorp-a); its int8 export
# is made in WORK/models/m3e-int8/1 unless it exists (benchmarks/run_serving_benchmarks.sh makes it too).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/chnsenticorp}"
WORK="${2:-$(mktemp -d)}"
RUN="${3:-runs/chnsenticorp-a}"
BS=.venv/bin/bertserve
M="$WORK/models/m3e-int8"
DATA_FLAG=(); [ -e "$DATA" ] && DATA_FLAG=(--data "$DATA")
mkdir -p "$WORK/results"
echo "work folder: $WORK"
[ -d "$M/1" ] || $BS export --run "$RUN" --base-path "$M" --version 1
PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uptime
$BS serve --model_name m3e --model_base_path "$M" --rest_api_port "$PORT" --port 0 --access_log off > "$WORK/headline-server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
$BS bench --url "http://127.0.0.1:$PORT" --server-pid $PID --model m3e "${DATA_FLAG[@]}" --concurrency 1,8,32,64 --duration 10 \
  --engine-dir "$M/1" --run "$RUN" --peers naive --json "$WORK/results/headline-m3e.json"
$BS bench --url "http://127.0.0.1:$PORT" --server-pid $PID --model m3e "${DATA_FLAG[@]}" --texts median --concurrency 1 --duration 10 \
  --engine-dir "$M/1" --json "$WORK/results/headline-m3e-median.json"
kill $PID; wait $PID || true
uptime
