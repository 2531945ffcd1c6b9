#!/usr/bin/env bash
# Every serving benchmark of docs/benchmarks.md in one run, with the exact commands:
# `bertserve bench` for m3e-small (all ChnSentiCorp dev texts at 1/8/32/64 clients, against the
# engine in-process, the naive HF pipeline peer and the Ray Serve peer; the median review at 1
# client, with the default 1 ms batch timeout and with 0), BERT-base-shaped exports (median
# review and a 128-token review at 1 client, ONNX Runtime int8 and OpenVINO int8), then cold
# start and RSS. Run it on an otherwise idle machine; it prints `uptime` before and after.
#
#   bash benchmarks/peers/setup_peer_venv.sh                      # once: the Ray Serve/LitServe peers' venv
#   M3E_RUN=runs/chnsenticorp-a bash benchmarks/run_serving_benchmarks.sh [WORK] [DATA]
#
# M3E_RUN: an m3e-small run folder (default runs/chnsenticorp-a). WORK (first argument): where
# exports, the BERT-base run folder, JSON results and logs go (default: a new `mktemp -d` folder;
# pass the same one again to reuse its exports). DATA (second argument): the ChnSentiCorp folder
# (default ../shared/data/chnsenticorp beside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
DATA="${2:-../shared/data/chnsenticorp}"
M3E_RUN="${M3E_RUN:-runs/chnsenticorp-a}"
DURATION="${DURATION:-10}"  # seconds per level; DURATION=1 checks the script quickly
echo "work folder: $WORK"
BS=.venv/bin/bertserve
PY=.venv/bin/python
mkdir -p "$WORK/results"
uptime

[ -d "$WORK/models/m3e-int8/1" ] || $BS export --run "$M3E_RUN" --base-path "$WORK/models/m3e-int8" --version 1 --quantize int8
[ -d "$WORK/bert-base-run" ] || $PY benchmarks/make_bert_base_run.py --output "$WORK/bert-base-run"
[ -d "$WORK/models/bert-base-int8/1" ] || $BS export --run "$WORK/bert-base-run" --base-path "$WORK/models/bert-base-int8" --version 1 --quantize int8
[ -d "$WORK/models/bert-base-ov8/1" ] || $BS export --run "$WORK/bert-base-run" --base-path "$WORK/models/bert-base-ov8" \
  --version 1 --format openvino --quantize int8 --calibration-data "$DATA/dev.tsv" --calibration-size 100
# A dev review that fills all 128 tokens (the first one, 176 characters).
$PY - "$WORK/long128.txt" "$DATA" <<'PY'
import sys
from bertserve.bench.texts import load_texts
from bertserve.tokenizer import BertTokenizer
tokenizer = BertTokenizer.load(sys.argv[1].rsplit("/", 1)[0] + "/models/m3e-int8/1/tokenizer")
text = next(t for t in load_texts(sys.argv[2]) if len(tokenizer.token_ids([t])[0]) >= 128)
open(sys.argv[1], "w", encoding="utf-8").write(text + "\n")
PY

PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server() {  # start_server NAME BASE [serve flags...]; sets SERVER_PID
  local name=$1 base=$2; shift 2
  $BS serve --model_name "$name" --model_base_path "$base" --rest_api_port $PORT --port 0 --access_log off "$@" \
    > "$WORK/results/server-$name.log" 2>&1 &
  SERVER_PID=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null; do sleep 0.2; done
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; }
trap '[ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID"' EXIT
# A failed request makes bench exit 1: say so and go on with the other measurements.
bench() { $BS bench --url "http://127.0.0.1:$PORT" --server-pid "$SERVER_PID" "$@" || echo "!! bench reported failed requests"; }

echo "== m3e-small int8: all dev texts, engine / bertserve / naive / ray"
start_server m3e "$WORK/models/m3e-int8"
bench --model m3e --data "$DATA" --concurrency 1,8,32,64 --duration $DURATION --engine-dir "$WORK/models/m3e-int8/1" \
  --run "$M3E_RUN" --peers naive,ray,litserve --json "$WORK/results/m3e-all.json"
echo "== m3e-small int8: median review, 1 client (default --batch_timeout_micros 1000)"
bench --model m3e --data "$DATA" --texts median --concurrency 1 --duration $DURATION --engine-dir "$WORK/models/m3e-int8/1" \
  --json "$WORK/results/m3e-median.json"
stop_server
echo "== m3e-small int8: median review, 1 client, --batch_timeout_micros 0"
start_server m3e "$WORK/models/m3e-int8" --batch_timeout_micros 0
bench --model m3e --data "$DATA" --texts median --concurrency 1 --duration $DURATION --engine-dir "$WORK/models/m3e-int8/1" \
  --json "$WORK/results/m3e-median-timeout0.json"
stop_server

for variant in bert-base-int8 bert-base-ov8; do
  echo "== $variant: median review and a 128-token review, 1 client, --batch_timeout_micros 0"
  start_server bb "$WORK/models/$variant" --batch_timeout_micros 0
  bench --model bb --data "$DATA" --texts median --concurrency 1 --duration $DURATION --engine-dir "$WORK/models/$variant/1" \
    --p50-budget-ms 15 --json "$WORK/results/$variant-median.json"
  bench --model bb --data "$WORK/long128.txt" --concurrency 1 --duration $DURATION --engine-dir "$WORK/models/$variant/1" \
    --json "$WORK/results/$variant-128.json"
  stop_server
done

echo "== cold start and RSS"
$PY benchmarks/cold_start.py m3e-small-int8="$WORK/models/m3e-int8" bert-base-int8="$WORK/models/bert-base-int8" \
  bert-base-ov-int8="$WORK/models/bert-base-ov8" --repeats 3 --json "$WORK/results/cold-start.json"
uptime
