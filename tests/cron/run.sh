#!/usr/bin/env bash
# run_maintenance() scheduled with pg_cron exactly as README says: a server
# started with README's postgresql.conf lines, pg_cron in the postgres
# database, README's SQL block run there to schedule the maintenance of an
# app database; waits for a successful run. pg_cron schedules by the
# minute, so this waits for the next minute boundary.
#
#   tests/cron/run.sh
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
PORT=55496
readme="$ROOT/README.md"
q() { cpsql cron "$PORT" "$@"; }

mapfile -t settings < <(python3 "$ROOT/tests/docs/readme.py" fence "$readme" ini "Maintenance with pg_cron" | sed 's/ *#.*$//')
cluster_destroy cron
trap 'cluster_stop cron' EXIT
cluster_start cron "$PORT" "${settings[@]}"
q -d postgres -q -c "CREATE DATABASE ut_app"
q -d ut_app -q -c "CREATE EXTENSION usage_tracker"
python3 "$ROOT/tests/docs/readme.py" fence "$readme" sql "-- in the cron database" \
    | sed 's/<app_database>/ut_app/g' | q -d postgres -q -o /dev/null

result=""
for _ in $(seq 1 100); do
    result=$(q -d postgres -tAc "SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details
                                  WHERE command = 'SELECT usage_tracker.run_maintenance()' ORDER BY start_time DESC LIMIT 1")
    case "$result" in
        succeeded*|failed*) break ;;
    esac
    sleep 1
done
if [[ "$result" == succeeded* ]] && [ "$(q -d ut_app -tAc "SELECT count(*) > 0 FROM pg_inherits
                                                          WHERE inhparent = 'usage_tracker.ai_usage_log'::regclass")" = t ]; then
    echo "ok - pg_cron, set up as README says, ran run_maintenance() in the app database (partitions created)"
    # README: pg_cron keeps the command tag, not the JSON a job returned.
    if [ "$result" = "succeeded SELECT 1" ]; then echo "ok - its return_message is the command tag (SELECT 1)"; else
        echo "not ok - return_message was '${result}', README says pg_cron keeps only the command tag"; exit 1; fi
else
    echo "not ok - no successful scheduled run_maintenance() within 100 s (last: ${result:-none})"
    exit 1
fi
