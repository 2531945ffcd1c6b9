#!/usr/bin/env bash
# The summary run of docs/benchmarks.md: the default export of a fine-tuned m3e-small served with
# the defaults, against the engine in-process and the naive peer, then the median review at 1 client.
# Expects /tmp/bench/models/m3e-int8/1 (made by benchmarks/run_serving_benchmarks.sh) and runs/chnsenticorp-a.
cd /work/main
BS=.venv/bin/bertserve; PORT=8572; M=/tmp/bench/models/m3e-int8
uptime
$BS serve --model_name m3e --model_base_path $M --rest_api_port $PORT --access_log off > /tmp/headline-server.log 2>&1 &
PID=$!
until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.2; done
$BS bench --url http://127.0.0.1:$PORT --server-pid $PID --model m3e --data /work/shared/data/chnsenticorp --concurrency 1,8,32,64 --duration 10 \
  --engine-dir $M/1 --run runs/chnsenticorp-a --peers naive --json .bench/headline-m3e.json
$BS bench --url http://127.0.0.1:$PORT --server-pid $PID --model m3e --data /work/shared/data/chnsenticorp --texts median --concurrency 1 --duration 10 \
  --engine-dir $M/1 --json .bench/headline-m3e-median.json
kill $PID; wait $PID
uptime
