#!/usr/bin/env bash
# The demo's last act, as in 2019: serve an export, send the 2019 demo's request (a sentence tokenized
# on the client into 128 zero-padded token ids) and a sentence as raw text, print both answers in the
# demo's line format (`bertserve online`), then stop the server with SIGTERM (drained, exit status 0).
#
#   bash scripts/demo_serve.sh MODEL_BASE_PATH [MODEL_NAME]      # MODEL_NAME defaults to "demo"
#   KEEP_SERVING=1 bash scripts/demo_serve.sh models/demo        # leave the server running at the end
#
# The server listens on a free 127.0.0.1 port; its log goes to a file (the path is printed: SERVE_LOG,
# default serve.log in a new temporary folder, kept for reading afterwards). If
# anything fails, the trap stops the server, so none is left behind. PYTHON picks the interpreter
# (default: the repository's .venv/bin/python); READY_SECONDS bounds the wait for /readyz.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BASE=${1:?usage: bash scripts/demo_serve.sh MODEL_BASE_PATH [MODEL_NAME]}
MODEL=${2:-demo}
READY_SECONDS=${READY_SECONDS:-120}
KEEP_SERVING=${KEEP_SERVING:-}
VERSION=$(ls "$BASE" 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1 || true)
if [ -z "$VERSION" ]; then
  echo "demo_serve.sh: no version folder in $BASE; export one with \`bertserve export --base-path $BASE\`" >&2
  exit 2
fi
# The 2019 demo's sentence (sent as token ids, as its predict_online.py did) and one sent as text.
DEMO_SENTENCE="这个宾馆比较陈旧了，特价的房间也很一般。总体来说一般"
TEXT_SENTENCE="这家酒店很干净，服务也很好，下次还来。"

# Two free loopback ports, REST and gRPC (bound at the same time, so they differ).
read -r PORT GRPC_PORT < <("$PYTHON" -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
URL="http://127.0.0.1:$PORT"
LOG=${SERVE_LOG:-$(mktemp -d)/serve.log}
SERVER_PID=
stop_server() {  # SIGTERM drains; a server that hangs past 60 s is killed. Sets SERVER_STATUS.
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  SERVER_STATUS=0; wait "$SERVER_PID" || SERVER_STATUS=$?
  SERVER_PID=
}
cleanup() { if [ -n "$SERVER_PID" ]; then stop_server; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== serve $BASE (version $VERSION) as model \"$MODEL\" on $URL, gRPC on 127.0.0.1:$GRPC_PORT (server log: $LOG)"
"$PYTHON" -m bertserve serve --model_name "$MODEL" --model_base_path "$BASE" --rest_api_port "$PORT" --port "$GRPC_PORT" \
  >"$LOG" 2>&1 &
SERVER_PID=$!
# Wait for GET /readyz to answer 200 (every model AVAILABLE), at most READY_SECONDS; give up at once
# when the server exits or the version failed to load (state END in GET /v1/models/MODEL).
if ! "$PYTHON" - "$URL" "$MODEL" "$READY_SECONDS" "$SERVER_PID" <<'EOF'
import json, os, sys, time, urllib.error, urllib.request
url, model, seconds, pid = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
started = time.monotonic()
while time.monotonic() - started < seconds:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("demo_serve.sh: the server exited before it was ready")
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2):
            print(f"   ready in {time.monotonic() - started:.1f} s")
            sys.exit(0)
    except urllib.error.HTTPError:  # 503 while loading: did the load fail?
        try:
            with urllib.request.urlopen(f"{url}/v1/models/{model}", timeout=2) as answer:
                versions = json.load(answer)["model_version_status"]
        except (OSError, ValueError, KeyError):
            versions = []
        if versions and all(version["state"] == "END" for version in versions):
            sys.exit(f"demo_serve.sh: the model did not load: {versions[0]['status'].get('error_message', '')}")
    except OSError:  # not listening yet
        pass
    time.sleep(0.2)
sys.exit(f"demo_serve.sh: the server was not ready within {seconds:.0f} s")
EOF
then
  echo "== server log (last lines):" >&2; tail -n 20 "$LOG" >&2
  exit 1
fi

echo "== try it yourself (raw text in; the server tokenizes):"
echo "   curl -s -d '{\"instances\": [\"$TEXT_SENTENCE\"]}' $URL/v1/models/$MODEL:predict"
echo "== the 2019 demo's request: \"$DEMO_SENTENCE\" tokenized here, sent as {\"inputs\": {\"input_ids\": [[101, ..., 102, 0, ...]]}} (128 ids)"
printf '%s\n' "$DEMO_SENTENCE" | "$PYTHON" -m bertserve online --url "$URL" --model "$MODEL" --tokenizer "$BASE/$VERSION"
echo "== raw text: \"$TEXT_SENTENCE\" sent as {\"instances\": [\"...\"]}"
printf '%s\n' "$TEXT_SENTENCE" | "$PYTHON" -m bertserve online --url "$URL" --model "$MODEL"

if [ -n "$KEEP_SERVING" ]; then
  echo "== still serving at $URL: the demo page is $URL/ ; stop it with: kill $SERVER_PID  (SIGTERM drains)"
  SERVER_PID=  # leave it running
  exit 0
fi
stop_server
if [ "$SERVER_STATUS" -ne 0 ]; then
  echo "== the server did not shut down cleanly: exit status $SERVER_STATUS; log: $LOG" >&2
  tail -n 20 "$LOG" >&2
  exit 1
fi
echo "== server stopped cleanly (SIGTERM: drained, exit status 0)"
