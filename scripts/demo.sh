#!/usr/bin/env bash
# Sets everything up and shows usage_tracker working: installs what is
# missing, builds and installs the extension, starts a throwaway cluster
# (socket in .run/demo/sock, no TCP), loads a demo data set once and prints
# the dashboards as different callers. Safe to run again.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PORT=55433
DB=usage_demo

bash "$ROOT/scripts/setup.sh"
install_extension
log "starting the demo cluster"
cluster_start demo "$PORT"
q() { cpsql demo "$PORT" -d "$DB" "$@"; }

cpsql demo "$PORT" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${DB}'" | grep -q 1 \
    || cpsql demo "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS usage_tracker" -c "ALTER EXTENSION usage_tracker UPDATE"
if [ "$(q -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")" = 0 ]; then
    log "loading the demo data set (two orgs, five users, 30 days of requests)"
    q -f "$ROOT/demo/demo_data.sql"
fi
q -c "SELECT usage_tracker.run_maintenance()" >/dev/null

show() { printf '\n\033[1m-- %s\033[0m\n' "$1"; shift; q -P pager=off "$@"; }

show "Cost summary, all organizations (as service_role)" <<'SQL'
BEGIN; SET LOCAL ROLE service_role;
SELECT key, value FROM jsonb_each(usage_tracker.get_ai_cost_summary()) ORDER BY key;
COMMIT;
SQL

show "Acme's dashboard, last 30 days (as alice, Acme's admin, through the JWT)" <<'SQL'
BEGIN; SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}', true) \g /dev/null
SELECT jsonb_pretty(d->'summary') AS summary, jsonb_pretty(d->'costs') AS costs
  FROM usage_tracker.get_ai_usage_dashboard(30, 'ac000000-0000-4000-8000-000000000001') d;
SELECT u->>'user_email' AS user_email, u->>'request_count' AS requests, u->>'total_tokens' AS tokens,
       u->>'total_cost' AS cost_usd
  FROM jsonb_array_elements(usage_tracker.get_ai_usage_dashboard(30, 'ac000000-0000-4000-8000-000000000001')->'by_user') u;
SELECT r->>'request_type' AS request_type, r->>'count' AS requests, r->>'cost' AS cost_usd, r->>'avg_latency' AS avg_latency_ms
  FROM jsonb_array_elements(usage_tracker.get_ai_usage_dashboard(30, 'ac000000-0000-4000-8000-000000000001')->'by_request_type') r;
COMMIT;
SQL

show "Bob's own usage, last 7 days (as bob, an Acme member)" <<'SQL'
BEGIN; SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}', true) \g /dev/null
SELECT jsonb_pretty(usage_tracker.get_user_ai_usage('22222222-2222-4222-8222-222222222222', 7)->'summary') AS summary;
SELECT d->>'date' AS date, d->>'requests' AS requests, d->>'tokens' AS tokens, d->>'cost' AS cost_usd
  FROM jsonb_array_elements(usage_tracker.get_user_ai_usage('22222222-2222-4222-8222-222222222222', 7)->'daily_usage') d;
COMMIT;
SQL

show "Bob asks for Globex's dashboard: refused with SQLSTATE 42501" <<'SQL'
\set ON_ERROR_STOP off
BEGIN; SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}', true) \g /dev/null
SELECT usage_tracker.get_ai_usage_dashboard(30, '91000000-0000-4000-8000-000000000002');
ROLLBACK;
SQL

show "Acme's plan limits this billing period, and a quota check-and-consume (as bob)" <<'SQL'
BEGIN; SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}', true) \g /dev/null
SELECT key AS limit_name, value->>'current' AS current, value->>'limit' AS "limit", value->>'within_limit' AS within_limit
  FROM jsonb_each(usage_tracker.get_usage_limits('ac000000-0000-4000-8000-000000000001')->'limits') ORDER BY key;
SELECT usage_tracker.get_quota_status('ac000000-0000-4000-8000-000000000001') AS quota_status;
SELECT usage_tracker.consume_quota('ac000000-0000-4000-8000-000000000001', 'csv_upload') - 'event_id' AS consume_quota;
COMMIT;
SQL

show "Globex's counters this week (seed 000; Globex is on New York time)" <<'SQL'
SELECT usage_tracker.get_usage_counts('91000000-0000-4000-8000-000000000002', 'week') AS this_week,
       usage_tracker.get_message_count('91000000-0000-4000-8000-000000000002', 'month') AS messages_this_month;
SQL

show "Budget alerts waiting for an edge function to deliver them" <<'SQL'
SELECT threshold_pct, spent_usd, amount_usd, coalesce(user_id::text, 'whole org') AS budget_for, created_at
  FROM usage_tracker.budget_alerts ORDER BY created_at, threshold_pct;
SQL

show "Acme assistant project: cache savings per day, last 7 days (seed 003, as alice)" <<'SQL'
BEGIN; SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}', true) \g /dev/null
SELECT date, total_requests, cached_requests, cache_hit_rate, round(total_cost_usd, 4) AS cost_usd,
       round(total_savings_usd, 4) AS savings_usd, avg_latency_ms, requests_by_provider
  FROM usage_tracker.get_dashboard_stats('ac000000-0000-4000-8000-0000000000a1', 7);
COMMIT;
SQL

show "Models logged without a price (zero cost until priced)" <<'SQL'
SELECT * FROM usage_tracker.list_unknown_models();
SQL

cat <<EOF2

The demo cluster is running. Connect with:
    psql -h ${RUN_DIR}/demo/sock -p ${PORT} -U postgres ${DB}
Stop it with:
    runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${RUN_DIR}/demo/data stop
EOF2
