#!/usr/bin/env bash
# Issue 10's side-by-side run, one command (details: the docstring of benchmarks/issue10.py):
# raw OpenVINO (best of default/fp32/bf16) vs `bertserve serve` defaults at 1 and 32 clients (p50,
# server CPU per request vs engine CPU per call, throughput vs the raw engine in batches of 32),
# row cap vs token budget, then the peers (naive, Ray Serve, LitServe); prints a table with the
# CPU model/flags (AMX or not) and load averages, and writes WORK/issue10.json. ~15 min on 2 cores.
#
#   bash benchmarks/peers/setup_peer_venv.sh              # once, for the ray and litserve peers
#   bash benchmarks/issue10.sh [DATA] [WORK] [SOURCE]
#
# DATA: ChnSentiCorp folder (default ../shared/data/chnsenticorp beside the repository).
# WORK: work folder (default: a new `mktemp -d` folder). SOURCE: an export version folder, a base
# folder of versions, or a run folder; none: a briefly fine-tuned m3e-small is trained and
# exported in WORK first (~3-5 min). Extra settings through the environment: DURATION (seconds
# per level, default 5), ROUNDS (default 3), MAX_BATCH_TOKENS (default 1024), PEERS (default naive,ray,litserve; empty: none),
# BLOCKS (interleaved 1-client block pairs on the median text, default 15), ABLATIONS=1 (also serve with each change turned off: --inline_engine_calls never; fp32 pinned; ~+3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/chnsenticorp}"
WORK="${2:-$(mktemp -d)}"
SOURCE="${3:-}"
exec .venv/bin/python benchmarks/issue10.py --data "$DATA" --work "$WORK" ${SOURCE:+--source "$SOURCE"} \
  --duration "${DURATION:-5}" --rounds "${ROUNDS:-3}" --max-batch-tokens "${MAX_BATCH_TOKENS:-1024}" \
  --peers "${PEERS-naive,ray,litserve}" --blocks "${BLOCKS:-15}" ${ABLATIONS:+--ablations}
