#!/usr/bin/env bash
# The first minute of README: scripts/demo.sh runs, and README's connect
# line, typed as written from the repository's root, reaches the demo.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cd "$ROOT"
bash scripts/demo.sh > "${RUN_DIR}/demo.log" 2>&1 || { tail -30 "${RUN_DIR}/demo.log"; echo "not ok - scripts/demo.sh failed"; exit 1; }
trap 'cluster_stop demo' EXIT
echo "ok - scripts/demo.sh runs (dashboards as different callers, a refused request)"
line=$(python3 tests/docs/readme.py line README.md 'psql -h "$PWD/.run/demo/sock"')
requests=$(bash -c "${line} -X -tA -c 'SELECT count(*) FROM usage_tracker.ai_usage_log'")
if [ "${requests:-0}" -gt 0 ]; then
    echo "ok - README's connect line reaches the demo (${requests} logged requests)"
else
    echo "not ok - README's connect line: ${line}"; exit 1
fi
