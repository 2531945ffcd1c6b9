#!/usr/bin/env bash
# The full fuzzing run of issue 5: >= 10,000 generated requests against one real in-process server
# (tests/scenarios/test_fuzz.py with raised example counts and random seeds); zero 5xx allowed.
#   bash scripts/reliability/fuzz.sh                 # 8,000 raw + 2,000 schemathesis requests
#   RAW=20000 SCHEMA=5000 bash scripts/reliability/fuzz.sh
# Takes ~10 minutes on 2 busy cores. Results go into docs/reliability.md by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
export BERTSERVE_FUZZ_EXAMPLES=${RAW:-8000} BERTSERVE_FUZZ_SCHEMA_EXAMPLES=${SCHEMA:-2000}
uptime
time .venv/bin/python -m pytest tests/scenarios/test_fuzz.py -q -s -p no:cacheprovider "$@"
uptime
