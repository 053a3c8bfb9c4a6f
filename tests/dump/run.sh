#!/usr/bin/env bash
# run.sh CLUSTER PORT: pg_dump / pg_restore keeps every row and sequence
# position of the extension's tables, and the restored database works.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
sock="${RUN_DIR}/${cluster}/sock"
q() { cpsql "$cluster" "$port" "$@"; }

q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_dump" -c "DROP DATABASE IF EXISTS ut_restore" -c "CREATE DATABASE ut_dump"
q -d ut_dump -q <<'SQL'
\o /dev/null
SET client_min_messages = warning;
CREATE EXTENSION usage_tracker;
SELECT usage_tracker.set_org_member('0a0a0a0a-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 'admin');
SELECT usage_tracker.add_request_type('translation', 'Translations');
SELECT usage_tracker.set_model_price('mistral', 'mistral-large', '2024-01-01', 2, 6);
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 100 + i,
           p_occurred_at => now() - make_interval(days => i * 9), p_idempotency_key => 'dump-' || i,
           p_model_used => CASE WHEN i % 2 = 0 THEN 'mistral-large' ELSE 'gpt-4o-mini' END,
           p_request_type => CASE WHEN i % 3 = 0 THEN 'translation' ELSE 'chat' END,
           p_org_id => CASE WHEN i % 2 = 0 THEN '0a0a0a0a-0000-4000-8000-000000000001'::uuid END)
  FROM generate_series(1, 40) i;
SELECT usage_tracker.increment_organization_usage('0a0a0a0a-0000-4000-8000-000000000001', 'message', 3);
SELECT usage_tracker.create_plan('dumped', 'custom plan', '{"chat_messages": 7}');
SELECT usage_tracker.set_org_plan('0a0a0a0a-0000-4000-8000-000000000001', 'dumped');
SELECT usage_tracker.consume_quota('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message', 2);
SELECT usage_tracker.reserve_quota('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message', 1);
SELECT usage_tracker.set_budget('0a0a0a0a-0000-4000-8000-000000000001', 0.0001);
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_org_id => '0a0a0a0a-0000-4000-8000-000000000001', p_input_tokens => 1000);
SELECT usage_tracker.mark_run_success(usage_tracker.start_report_run('aaaaaaaa-0000-4000-8000-00000000000a'), p_tokens_used => 10);
SELECT usage_tracker.create_project('0a0a0a0a-0000-4000-8000-000000000001', 'Dumped', '0a0a0a0a-0000-4000-8000-0000000000d1');
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_org_id => '0a0a0a0a-0000-4000-8000-000000000001',
           p_project_id => '0a0a0a0a-0000-4000-8000-0000000000d1', p_customer_id => 5, p_cached => true, p_input_tokens => 10);
SELECT usage_tracker.run_maintenance();
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 3);
SQL

snapshot() {
    q -d "$1" -At <<'SQL'
SELECT 'log', count(*), sum(total_cost_usd), sum(input_tokens) FROM usage_tracker.ai_usage_log
UNION ALL SELECT 'members', count(*), NULL, NULL FROM usage_tracker.org_members
UNION ALL SELECT 'prices', count(*), sum(input_usd_per_mtok), max(price_id) FROM usage_tracker.model_prices
UNION ALL SELECT 'types', count(*), NULL, NULL FROM usage_tracker.request_types
UNION ALL SELECT 'keys', count(*), NULL, NULL FROM usage_tracker_private.ai_usage_idempotency
UNION ALL SELECT 'events', count(*), sum(quantity), NULL FROM usage_tracker.usage_events
UNION ALL SELECT 'counters', count(*), sum(count), NULL FROM usage_tracker.organization_usage
UNION ALL SELECT 'quota rows', count(*), sum(used), NULL FROM usage_tracker_private.quota_usage
UNION ALL SELECT 'reservations', count(*), sum(quantity), NULL FROM usage_tracker.quota_reservations
UNION ALL SELECT 'orgs', count(*), NULL, NULL FROM usage_tracker.organizations
UNION ALL SELECT 'plans', count(*), NULL, NULL FROM usage_tracker.plans
UNION ALL SELECT 'plan limits', count(*), sum(max_quantity), NULL FROM usage_tracker.plan_limits
UNION ALL SELECT 'budgets', count(*), sum(amount_usd), NULL FROM usage_tracker.budgets
UNION ALL SELECT 'budget spend', count(*), sum(spent_usd), NULL FROM usage_tracker_private.budget_spend
UNION ALL SELECT 'alerts', count(*), NULL, NULL FROM usage_tracker.budget_alerts
UNION ALL SELECT 'runs', count(*), sum(tokens_used), NULL FROM usage_tracker.report_runs
UNION ALL SELECT 'projects', count(*), NULL, NULL FROM usage_tracker.projects
UNION ALL SELECT 'progress', folded_through, NULL, NULL FROM usage_tracker_private.rollup_progress
UNION ALL SELECT 'hourly', count(*), sum(requests), sum(potential_cost_usd) FROM usage_tracker.ai_usage_hourly
UNION ALL SELECT 'daily', count(*), sum(requests), sum(total_cost_usd) FROM usage_tracker.ai_usage_daily
UNION ALL SELECT 'user daily', count(*), sum(requests), NULL FROM usage_tracker.ai_usage_user_daily
UNION ALL SELECT 'user hourly', count(*), sum(requests), NULL FROM usage_tracker.ai_usage_user_hourly
UNION ALL SELECT 'customer daily', count(*), sum(requests), NULL FROM usage_tracker.ai_usage_customer_daily
UNION ALL SELECT 'customer hourly', count(*), sum(requests), NULL FROM usage_tracker.ai_usage_customer_hourly
UNION ALL SELECT 'customer users', count(*), NULL, NULL FROM usage_tracker.ai_usage_customer_users
UNION ALL SELECT 'ingest_seq', last_value, NULL, NULL FROM usage_tracker_private.ai_usage_log_ingest_seq
UNION ALL SELECT 'price_seq', last_value, NULL, NULL FROM usage_tracker_private.model_prices_price_id_seq;
SQL
}

before=$(snapshot ut_dump)
"${PG_BIN}/pg_dump" -h "$sock" -p "$port" -U postgres -Fc -f "${RUN_DIR}/ut_dump.dump" ut_dump
q -d postgres -c "CREATE DATABASE ut_restore"
"${PG_BIN}/pg_restore" -h "$sock" -p "$port" -U postgres --exit-on-error -d ut_restore "${RUN_DIR}/ut_dump.dump"
after=$(snapshot ut_restore)
if [ "$before" != "$after" ]; then
    echo "not ok - pg_restore changed the data"; diff <(echo "$before") <(echo "$after"); exit 1
fi
echo "ok - pg_dump/pg_restore keeps every row and sequence position"

check=$(q -d ut_restore -At <<'SQL'
CREATE TEMP TABLE r AS
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 101,
                                  p_model_used => 'gpt-4o-mini', p_request_type => 'chat', p_idempotency_key => 'dump-1',
                                  p_occurred_at => (SELECT created_at FROM usage_tracker.ai_usage_log
                                                     WHERE idempotency_key = 'dump-1')) AS retried,
       usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_model_used => 'mistral-large',
                                  p_input_tokens => 1000000, p_request_type => 'translation') AS fresh,
       usage_tracker.set_model_price('mistral', 'mistral-small', now(), 1, 3) AS price_id;
SELECT concat_ws(' ',
           r.retried = (SELECT id FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'dump-1'),
           (SELECT count(*) FROM usage_tracker.ai_usage_log) = 45, -- 40 + 3 + the report run's tokens (model 'unknown') + fresh
           (SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE id = r.fresh) = 2,
           r.price_id = 1000001,
           (SELECT "limit" FROM usage_tracker.check_usage_limit('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message')) = 7
             AND (SELECT current FROM usage_tracker.check_usage_limit('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message')) = 2,
           (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded') = '2',
           (usage_tracker.verify_rollups(current_date - 400, current_date) -> 'differences') = '[]'::jsonb)
  FROM r;
SQL
)
[ "$check" = "t t t t t t t" ] || { echo "not ok - the restored database does not work ($check)"; exit 1; }
echo "ok - the restored database keeps working (idempotency keys, custom prices and types, sequences, rollups fold on)"
# Maintenance commands on the restored data: from 17 they run with a
# search_path of pg_catalog, pg_temp only, so an index expression, check or
# default evaluated there must not depend on the caller's search_path.
q -d ut_restore -q -c "SET search_path = pg_catalog" -c "VACUUM (ANALYZE)" -c "REINDEX SCHEMA usage_tracker" \
    -c "REINDEX SCHEMA usage_tracker_private" -c "CLUSTER usage_tracker.plans USING plans_pkey" \
    && echo "ok - VACUUM ANALYZE, REINDEX and CLUSTER of the restored data with search_path = pg_catalog" \
    || { echo "not ok - a maintenance command failed on the restored data"; exit 1; }
q -d postgres -c "DROP DATABASE ut_dump WITH (FORCE)" -c "DROP DATABASE ut_restore WITH (FORCE)"
