#!/usr/bin/env bash
# Issue 9's side-by-side in one run: one `bertserve serve` (defaults, gRPC on) on an export, and
# `bertserve bench` loading it over each protocol in turn (REST V1, TF Serving gRPC, V2 REST, V2 gRPC),
# level by level, in ROUNDS rounds, so the machine's drift hits every protocol alike. Prints each
# round and the medians (p50 at 1 client, requests/s at 32, server and client CPU per request) and
# writes WORK/protocols-summary.json. Run it on an otherwise idle machine (~7 min with the defaults).
#
#   bash benchmarks/protocols.sh MODEL_BASE [WORK] [DATA]
#
# MODEL_BASE: a base folder of versions (BASE/<n>/, e.g. one written by `bertserve export`).
# WORK: folder for the logs and JSON (default: a new `mktemp -d` folder). DATA: texts to replay
# (default ../shared/data/chnsenticorp beside the repository; without it, bench's built-in reviews).
# Settings through the environment: ROUNDS (3), DURATION (5 seconds per level), CLIENTS ("1 32"),
# PROTOCOLS ("rest grpc v2 v2grpc"), GRPC_CHANNELS (1: the gRPC clients share one channel, as gRPC
# clients are meant to; 0: one channel per client, like REST's one connection per client).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:?usage: bash benchmarks/protocols.sh MODEL_BASE [WORK] [DATA]}"
WORK="${2:-$(mktemp -d)}"
DATA="${3:-../shared/data/chnsenticorp}"
mkdir -p "$WORK"
read -r REST_PORT GRPC_PORT < <(.venv/bin/python -c "
import socket
def free():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]
print(free(), free())")
DATA_FLAG=(); [ -e "$DATA" ] && DATA_FLAG=(--data "$DATA")
echo "protocols: work folder $WORK; $(uptime)"
.venv/bin/bertserve serve --model_name m --model_base_path "$BASE" --rest_api_port "$REST_PORT" --port "$GRPC_PORT" \
  --access_log off > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$REST_PORT/readyz" > /dev/null && break
  kill -0 $SERVER_PID 2> /dev/null || { echo "server exited; see $WORK/serve.log"; exit 1; }
  sleep 0.5
done
for round in $(seq 1 "${ROUNDS:-3}"); do
  for clients in ${CLIENTS:-1 32}; do
    for protocol in ${PROTOCOLS:-rest grpc v2 v2grpc}; do
      .venv/bin/bertserve bench --url "http://127.0.0.1:$REST_PORT" --grpc-url "127.0.0.1:$GRPC_PORT" --model m \
        --protocols "$protocol" --concurrency "$clients" --duration "${DURATION:-5}" --warmup 0.5 "${DATA_FLAG[@]}" \
        --grpc-channels "${GRPC_CHANNELS:-1}" \
        --server-pid $SERVER_PID --json "$WORK/round-$round-$protocol-$clients.json" > "$WORK/round-$round-$protocol-$clients.log"
      .venv/bin/python -c "
import json, sys
row = json.load(open(sys.argv[1]))['results'][0]
print(f\"round $round  {row['target']:<16} c=$clients  p50 {row['p50_ms']:8.2f} ms  {row['throughput']:7.1f}/s  \"
      f\"server CPU {row['server_cpu_ms']:7.3f}  client CPU {row['client_cpu_ms']:6.3f} ms/req  errors {row['errors']}\")" \
        "$WORK/round-$round-$protocol-$clients.json"
    done
  done
done
echo "load after: $(uptime)"
.venv/bin/python benchmarks/protocols_summary.py "$WORK"
