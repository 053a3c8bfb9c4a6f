#!/usr/bin/env bash
# Crash test: clients log AI usage with idempotency keys, retrying every
# call until it is acknowledged, while maintenance folds; the server is
# killed (pg_ctl stop -m immediate) and restarted mid-run. Afterwards every
# acknowledged call is in the log exactly once and the rollups verify clean.
#
#   tests/crash/run.sh [clients] [calls-per-client]
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
CLIENTS=${1:-6}
CALLS=${2:-150}
PORT=55495
DB=crash
DIR="${RUN_DIR}/crash-clients"

cluster_destroy crash
cluster_start crash "$PORT" "synchronous_commit = on"
cpsql crash "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
cpsql crash "$PORT" -d "$DB" -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()" >/dev/null
rm -rf "$DIR" && mkdir -p "$DIR"

# One client: each call retried with the same key until the server answers.
client() {
    local c=$1 i out
    for i in $(seq 1 "$CALLS"); do
        until out=$("${PG_BIN}/psql" -X -qtA -h "${RUN_DIR}/crash/sock" -p "$PORT" -U postgres -d "$DB" -c \
            "SELECT usage_tracker.log_ai_usage('cccccccc-0000-4000-8000-$(printf '%012d' "$c")', p_input_tokens => ${i},
                 p_customer_id => $((i % 3 + 1)), p_idempotency_key => 'crash-${c}-${i}')" 2>>"${DIR}/errors-${c}"); do
            sleep 0.2
        done
        echo "crash-${c}-${i} ${out}" >> "${DIR}/acked-${c}"
    done
}
folder() {
    while [ ! -f "${DIR}/stop" ]; do
        "${PG_BIN}/psql" -X -qtA -h "${RUN_DIR}/crash/sock" -p "$PORT" -U postgres -d "$DB" \
            -c "SELECT usage_tracker.run_maintenance()" >/dev/null 2>&1 || true
        sleep 0.3
    done
}
pids=()
for c in $(seq 1 "$CLIENTS"); do client "$c" & pids+=($!); done
folder & fpid=$!
sleep 3
log "killing the server (pg_ctl stop -m immediate) with ${CLIENTS} clients writing"
as_postgres "${PG_BIN}/pg_ctl" -D "${RUN_DIR}/crash/data" -m immediate stop >/dev/null
sleep 2
cluster_start crash "$PORT"
for p in "${pids[@]}"; do wait "$p"; done
touch "${DIR}/stop"; wait "$fpid"

q() { cpsql crash "$PORT" -d "$DB" -tA "$@"; }
q -c "SELECT usage_tracker.run_maintenance()" >/dev/null
acked=$(cat "${DIR}"/acked-* | wc -l)
retried=$(cat "${DIR}"/errors-* 2>/dev/null | grep -ci 'error' || true)
cat "${DIR}"/acked-* | awk '{print $1 "\t" $2}' > "${DIR}/acked.tsv"
q -c "CREATE TEMP TABLE acked (key text, id uuid)" -c "\\copy acked FROM '${DIR}/acked.tsv'" \
  -c "SELECT count(*) FROM acked a WHERE (SELECT count(*) FROM usage_tracker.ai_usage_log l
                                          WHERE l.idempotency_key = a.key AND l.id = a.id) <> 1" > "${DIR}/missing"
missing=$(cat "${DIR}/missing" | tail -1)
rows=$(q -c "SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'crash-%'")
clean=$(q -c "SELECT (usage_tracker.verify_rollups(current_date - 1, current_date) -> 'differences') = '[]'::jsonb")
held=$(q -c "SELECT sum(requests) FROM usage_tracker.ai_usage_user_daily WHERE user_id::text LIKE 'cccccccc-%'")
cluster_stop crash
expected=$((CLIENTS * CALLS))
if [ "$acked" = "$expected" ] && [ "$missing" = 0 ] && [ "$rows" = "$expected" ] && [ "$clean" = t ] && [ "$held" = "$expected" ]; then
    echo "ok - crash: ${acked} acknowledged calls (${retried} failed attempts retried) are each in the log exactly once, rollups verify clean"
else
    echo "not ok - crash: acked=${acked} expected=${expected} missing-or-duplicated=${missing} rows=${rows} rollups-clean=${clean} rolled=${held}"
    exit 1
fi
