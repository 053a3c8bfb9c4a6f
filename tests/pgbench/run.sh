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
    grep -q "^number of transactions actually processed: $(( $2 * $3 ))/$(( $2 * $3 ))" "${RUN_DIR}/pgbench-$1.log" \
        || { cat "${RUN_DIR}/pgbench-$1.log"; die "pgbench $1 had failed transactions"; }
}

check() {  # check DESCRIPTION SQL-returning-a-boolean
    local got
    got=$(cpsql "$cluster" "$port" -d ut_test -At -c "$2")
    if [ "$got" = t ]; then echo "ok - $1"; else echo "not ok - $1"; cpsql "$cluster" "$port" -d ut_test -c "$3" || true; exit 1; fi
}

# Leaves the test database as it found it, so the SQL suites can run again.
cleanup() {
    cpsql "$cluster" "$port" -d ut_test -q <<'SQL'
DELETE FROM usage_tracker.ai_usage_log WHERE idempotency_key LIKE 'pgb-%' OR session_id LIKE 'pgb-%' OR org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.ai_usage_log WHERE user_id::text LIKE 'dddddddd-%';
DELETE FROM usage_tracker_private.ai_usage_idempotency WHERE idempotency_key LIKE 'pgb-%';
DELETE FROM usage_tracker.usage_events WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.organization_usage WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker_private.quota_usage WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.quota_reservations WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.organizations WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.org_members WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.plans WHERE plan = 'race';
DELETE FROM usage_tracker.budget_alerts WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker_private.budget_spend WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.budgets WHERE org_id::text LIKE '0c0c0c0c-%';
DELETE FROM usage_tracker.report_runs WHERE user_id = 'cccccccc-0000-4000-8000-00000000000c';
DROP TABLE IF EXISTS public.pgb_consumes;
TRUNCATE usage_tracker.ai_usage_hourly, usage_tracker.ai_usage_daily, usage_tracker.ai_usage_user_hourly,
         usage_tracker.ai_usage_user_daily, usage_tracker.ai_usage_customer_hourly,
         usage_tracker.ai_usage_customer_daily, usage_tracker.ai_usage_customer_users;
UPDATE usage_tracker_private.rollup_progress SET folded_through = 0;
SQL
}
cleanup

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
check "400 concurrent backfills into 9 new months: all logged, one partition per month" \
    "SELECT (SELECT count(*) FROM usage_tracker.ai_usage_log WHERE session_id = 'pgb-backfill') = 400
        AND (SELECT count(DISTINCT tableoid) FROM usage_tracker.ai_usage_log WHERE session_id = 'pgb-backfill') = 9
        AND (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'usage_tracker.ai_usage_log'::regclass
                AND c.relname IN (SELECT 'ai_usage_log_' || to_char(date_trunc('month', now()) - make_interval(months => m), '\"y\"YYYY\"m\"MM')
                                    FROM generate_series(3, 11) m)) = 9" \
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_tracker.ai_usage_log'::regclass"

# Counters and quotas: org_c1 counter, org_c2 quota race, org_c3 reservations.
cpsql "$cluster" "$port" -d ut_test -q <<'SQL'
\o /dev/null
SELECT usage_tracker.set_org_member(('0c0c0c0c-0000-4000-8000-00000000000' || n)::uuid, 'aaaaaaaa-0000-4000-8000-00000000000a', 'member')
  FROM generate_series(1, 4) n;
SELECT usage_tracker.set_budget('0c0c0c0c-0000-4000-8000-000000000004', 1.00, NULL, '{10,20,30,40,50,60,70,80,90,100}');
SELECT usage_tracker.create_plan('race', 'concurrency test plan', '{"csv_uploads": 100}');
SELECT usage_tracker.set_org_plan(('0c0c0c0c-0000-4000-8000-00000000000' || n)::uuid, 'race') FROM generate_series(2, 3) n;
SQL

bench counter_increment.sql 8 500
check "8 clients x 500 increments of one counter: exactly 4,000, no lost update" \
    "SELECT count = 4000 AND events = 4000 FROM usage_tracker.organization_usage
      WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000001' AND type = 'message'" \
    "SELECT * FROM usage_tracker.organization_usage WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000001'"

bench consume_race.sql 16 25
check "16 clients race consume_quota for 100 uploads (400 attempts): exactly 100 get through" \
    "SELECT (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000002') = 100
        AND (SELECT count = 100 FROM usage_tracker.organization_usage WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000002')" \
    "SELECT count(*), sum(quantity) FROM usage_tracker.usage_events WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000002'"
check "and check_usage_limit agrees: current 100 of 100, not within the limit" \
    "SELECT NOT within_limit AND current = 100 AND \"limit\" = 100
       FROM usage_tracker.check_usage_limit('0c0c0c0c-0000-4000-8000-000000000002', 'csv_upload')" \
    "SELECT * FROM usage_tracker.check_usage_limit('0c0c0c0c-0000-4000-8000-000000000002', 'csv_upload')"

bench reserve_race.sql 16 25
check "16 clients mixing reservations and consumes never exceed 100 uploads" \
    "SELECT (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000003') = 100
        AND (SELECT count(*) FROM usage_tracker.quota_reservations WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000003' AND status = 'open') = 0" \
    "SELECT status, count(*), sum(quantity), sum(committed_quantity) FROM usage_tracker.quota_reservations WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000003' GROUP BY 1"
# A session listening on the alert channel, as an edge function's worker would.
fifo="${RUN_DIR}/listener.fifo"
rm -f "$fifo" && mkfifo "$fifo"
"${PG_BIN}/psql" -X -h "$sock" -p "$port" -U postgres -d ut_test < "$fifo" > "${RUN_DIR}/listener.log" 2>&1 &
listener=$!
exec 9>"$fifo"
echo "LISTEN usage_tracker_budget_alerts; SELECT 'listening';" >&9
sleep 1
bench budget_alerts.sql 16 50
echo "SELECT 'done';" >&9
exec 9>&-
wait "$listener"
notified=$(grep -c 'Asynchronous notification "usage_tracker_budget_alerts"' "${RUN_DIR}/listener.log" || true)
if [ "$notified" = 10 ]; then echo "ok - a listener received each alert once through pg_notify"; else
    echo "not ok - a listener received ${notified} notifications, expected 10"; cat "${RUN_DIR}/listener.log"; exit 1; fi
# Any login may LISTEN: a notification names only the alert, which the
# RLS-protected outbox (get_pending_alerts, service_role) holds.
payloads=$(sed -n 's/.* with payload "\(.*\)" received from server process.*/\1/p' "${RUN_DIR}/listener.log" | sort -u)
if [ -n "$payloads" ] && ! echo "$payloads" | grep -qv '^{"alert_id": "[0-9a-f-]\{36\}"}$'; then
    echo "ok - each notification carries only the alert id (no org, user or spend)"
else
    echo "not ok - notification payloads carry more than the alert id:"; echo "$payloads"; exit 1
fi
check "16 clients spend \$2.40 against a \$1 budget: each of 10 thresholds alerts exactly once" \
    "SELECT count(*) = 10 AND count(DISTINCT threshold_pct) = 10 FROM usage_tracker.budget_alerts
      WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000004'" \
    "SELECT threshold_pct, count(*) FROM usage_tracker.budget_alerts WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000004' GROUP BY 1 ORDER BY 1"
check "and the budget's spend is exactly the logged cost" \
    "SELECT sum(s.spent_usd) = 2.4 AND sum(s.spent_usd) = (SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log
                                                   WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000004')
       FROM usage_tracker_private.budget_spend s WHERE s.org_id = '0c0c0c0c-0000-4000-8000-000000000004'" \
    "SELECT * FROM usage_tracker_private.budget_spend WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000004'"

# Batches: keys retried across concurrent batches, budgets fed by batches
# and single calls at once, batches racing quota decisions.
cpsql "$cluster" "$port" -d ut_test -q <<'SQL'
\o /dev/null
SELECT usage_tracker.set_org_member(('0c0c0c0c-0000-4000-8000-00000000000' || n)::uuid, 'aaaaaaaa-0000-4000-8000-00000000000a', 'member')
  FROM generate_series(5, 7) n;
SELECT usage_tracker.set_budget('0c0c0c0c-0000-4000-8000-000000000006', 1.00, NULL, '{10,20,30,40,50,60,70,80,90,100}');
SELECT usage_tracker.set_org_plan('0c0c0c0c-0000-4000-8000-000000000007', 'race');
CREATE TABLE public.pgb_consumes (j jsonb);
GRANT INSERT ON public.pgb_consumes TO authenticated;
SQL
bench batch_retries.sql 8 40
check "8 clients x 40 batches of 20 keyed requests over 300 keys: each key logged exactly once" \
    "SELECT count(*) = count(DISTINCT idempotency_key) AND count(*) BETWEEN 250 AND 300
        AND bool_and(input_tokens = 5 * split_part(idempotency_key, '-', 3)::int)
       FROM usage_tracker.ai_usage_log WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000005'" \
    "SELECT idempotency_key, count(*) FROM usage_tracker.ai_usage_log WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000005' GROUP BY 1 HAVING count(*) > 1"
check "and every key points at its row" \
    "SELECT count(*) = (SELECT count(*) FROM usage_tracker.ai_usage_log WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000005')
       FROM usage_tracker_private.ai_usage_idempotency k
       JOIN usage_tracker.ai_usage_log l ON l.id = k.log_id AND l.org_id = k.org_id AND l.idempotency_key = k.idempotency_key
      WHERE k.org_id = '0c0c0c0c-0000-4000-8000-000000000005'" \
    "SELECT 1"

bench batch_budget.sql 16 30
check "16 clients sending batches and single requests against a \$1 budget: each threshold alerts exactly once" \
    "SELECT count(*) = 10 AND count(DISTINCT threshold_pct) = 10 FROM usage_tracker.budget_alerts
      WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000006'" \
    "SELECT threshold_pct, count(*) FROM usage_tracker.budget_alerts WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000006' GROUP BY 1 ORDER BY 1"
check "and the spend is exactly the logged cost" \
    "SELECT sum(s.spent_usd) = (SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log
                                 WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000006')
        AND sum(s.spent_usd) > 1
       FROM usage_tracker_private.budget_spend s WHERE s.org_id = '0c0c0c0c-0000-4000-8000-000000000006'" \
    "SELECT * FROM usage_tracker_private.budget_spend WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000006'"

bench batch_quota_race.sql 16 25
check "16 clients: batches of events racing consume_quota on a limit of 100: no consume approved past the limit" \
    "SELECT coalesce(max((j ->> 'current')::int), 0) <= 100 AND count(*) = count(DISTINCT j ->> 'current')
       FROM public.pgb_consumes WHERE (j ->> 'allowed')::boolean" \
    "SELECT j FROM public.pgb_consumes ORDER BY (j ->> 'current')::int"
check "and the period rows, the counter and the events agree exactly" \
    "SELECT (SELECT sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000007'
               AND limit_key = 'csv_uploads')
          = (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000007')
        AND (SELECT sum(count) FROM usage_tracker.organization_usage WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000007')
          = (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000007')
        AND (SELECT count(*) FROM public.pgb_consumes WHERE (j ->> 'allowed')::boolean) > 0" \
    "SELECT limit_key, sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = '0c0c0c0c-0000-4000-8000-000000000007' GROUP BY 1"

bench report_run_starts.sql 16 10
check "16 schedulers x 10 starts for one user with a limit of 10: exactly 10 runs start" \
    "SELECT count(*) = 10 FROM usage_tracker.report_runs WHERE user_id = 'cccccccc-0000-4000-8000-00000000000c'" \
    "SELECT status, count(*) FROM usage_tracker.report_runs WHERE user_id = 'cccccccc-0000-4000-8000-00000000000c' GROUP BY 1"

# Exactness: writers log while maintenance folds, concurrently.
"${PG_BIN}/pgbench" -n -h "$sock" -p "$port" -U postgres -c 2 -T 12 -f "$here/fold.sql" ut_test > "${RUN_DIR}/pgbench-fold.log" 2>&1 &
folder=$!
bench log_while_folding.sql 8 300
wait "$folder" || { cat "${RUN_DIR}/pgbench-fold.log"; die "run_maintenance failed while writers were logging"; }
cpsql "$cluster" "$port" -d ut_test -q -c "SELECT usage_tracker.run_maintenance()" >/dev/null
check "8 writers x 300 requests while two sessions run run_maintenance without pause: the rollups equal the log" \
    "SELECT (usage_tracker.verify_rollups(current_date - 4, current_date) -> 'differences') = '[]'::jsonb
        AND (SELECT sum(requests) FROM usage_tracker.ai_usage_user_daily WHERE user_id::text LIKE 'dddddddd-%') = 2400" \
    "SELECT usage_tracker.verify_rollups(current_date - 4, current_date)"

cleanup
