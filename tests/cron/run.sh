#!/usr/bin/env bash
# run.sh CLUSTER PORT: run_maintenance() scheduled with pg_cron (as the
# README shows) really runs. pg_cron 1.4 schedules by the minute, so this
# waits for the next minute boundary.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
q() { cpsql "$cluster" "$port" -d ut_test "$@"; }

q -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
  -c "SELECT cron.schedule('usage-tracker-maintenance', '* * * * *', 'SELECT usage_tracker.run_maintenance()')" >/dev/null
result=""
for _ in $(seq 1 100); do
    result=$(q -tAc "SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details
                      WHERE command = 'SELECT usage_tracker.run_maintenance()' ORDER BY start_time DESC LIMIT 1")
    case "$result" in
        succeeded*|failed*) break ;;
    esac
    sleep 1
done
q -q -c "SELECT cron.unschedule('usage-tracker-maintenance')" >/dev/null
if [[ "$result" == succeeded* ]]; then
    echo "ok - pg_cron ran the scheduled run_maintenance() ($result)"
else
    echo "not ok - no successful scheduled run_maintenance() within 100 s (last: ${result:-none})"
    exit 1
fi
