#!/usr/bin/env bash
# run.sh CLUSTER PORT: concurrency tests with pgbench. Each scenario runs
# many clients at once, then checks the invariants in SQL.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$ROOT/tests/pgbench"
sock="${RUN_DIR}/${cluster}/sock"

bench() {  # bench SCRIPT CLIENTS TRANSACTIONS_PER_CLIENT
    "${PG_BIN}/pgbench" -n -h "$sock" -p "$port" -U postgres -c "$2" -j 2 -t "$3" -f "$here/$1" ut_test \
        > "${RUN_DIR}/pgbench-$1.log" 2>&1 || { cat "${RUN_DIR}/pgbench-$1.log"; die "pgbench $1 failed"; }
    grep -q "number of failed transactions: 0" "${RUN_DIR}/pgbench-$1.log" \
        || grep -q "^number of transactions actually processed: $(( $2 * $3 ))/$(( $2 * $3 ))" "${RUN_DIR}/pgbench-$1.log" \
        || { cat "${RUN_DIR}/pgbench-$1.log"; die "pgbench $1 had failed transactions"; }
}

check() {  # check DESCRIPTION SQL-returning-a-boolean
    local got
    got=$(cpsql "$cluster" "$port" -d ut_test -At -c "$2")
    if [ "$got" = t ]; then echo "ok - $1"; else echo "not ok - $1"; cpsql "$cluster" "$port" -d ut_test -c "$3" || true; exit 1; fi
}

cpsql "$cluster" "$port" -d ut_test -c "DELETE FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'pgb-%' OR session_id LIKE 'pgb-%'" \
    -c "DELETE FROM usage_tracker_private.ai_usage_idempotency WHERE idempotency_key LIKE 'pgb-%'"

bench idempotent_retries.sql 16 250
check "4,000 concurrent calls over 200 idempotency keys log each key exactly once" \
    "SELECT count(*) = count(DISTINCT idempotency_key) AND count(*) <= 200 AND count(*) >= 150
       FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'pgb-%'" \
    "SELECT idempotency_key, count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'pgb-%' GROUP BY 1 HAVING count(*) > 1"
check "every key points at its logged row" \
    "SELECT count(*) = (SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'pgb-%')
       FROM usage_tracker_private.ai_usage_idempotency k
       JOIN usage_tracker.ai_usage_log l ON l.id = k.log_id AND l.org_id = k.org_id
      WHERE k.idempotency_key LIKE 'pgb-%'" \
    "SELECT 1"

bench backfill_new_months.sql 8 50
check "400 concurrent backfills into 12 new months: all logged, one partition per month" \
    "SELECT (SELECT count(*) FROM usage_tracker.ai_usage_log WHERE session_id = 'pgb-backfill') = 400
        AND (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'usage_tracker.ai_usage_log'::regclass AND c.relname LIKE 'ai_usage_log_y2017m%') = 12" \
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_tracker.ai_usage_log'::regclass"
