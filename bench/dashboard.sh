#!/usr/bin/env bash
# Benchmark: get_ai_usage_dashboard(30) against seed 001's own PL/pgSQL on
# the same N requests over 61 days (default 10,000,000), after one
# maintenance pass, side by side in one run.
#
#   bench/dashboard.sh [rows] [runs]
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
N=${1:-10000000}
RUNS=${2:-5}
PORT=55492
OURS=dash_ours
SEED=dash_seed001

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy dash
cluster_start dash "$PORT" "max_wal_size = 8GB" "work_mem = 64MB" "maintenance_work_mem = 1GB"
q() { cpsql dash "$PORT" "$@"; }
q -d postgres -c "CREATE DATABASE ${OURS}"
q -d "$OURS" -c "CREATE EXTENSION usage_tracker" >/dev/null
set +e
bash "$ROOT/scripts/load_seed.sh" 001 dash "$PORT" "$SEED"
rc=$?
set -e
if [ $rc -eq 2 ]; then echo "SKIP: ../shared/seeds/001_*.txt is absent; no baseline" >&2; exit 0; fi
[ $rc -eq 0 ] || die "loading seed 001 failed"

# The same rows in both (one anchor time): 60 users, 300 customers, 4
# request types, ~5% errors, spread over the 61 days before the anchor.
# Ours gets them as log_ai_usage writes them (partitions, costs, ingest
# order), by bulk INSERT for speed.
ANCHOR=$(q -d postgres -tAc "SELECT now()")
ROWS="SELECT i,
        ('00000000-0000-4000-8000-' || lpad((abs(hashint4(i)) % 60)::text, 12, '0'))::uuid AS user_id,
        'user' || (abs(hashint4(i)) % 60) || '@example.com' AS user_email,
        1 + abs(hashint4(i + 1)) % 300 AS customer_id,
        (ARRAY['report','insight','scheduled','widget'])[1 + abs(hashint4(i + 2)) % 4] AS request_type,
        100 + abs(hashint4(i + 3)) % 8000 AS input_tokens, 50 + abs(hashint4(i + 4)) % 2000 AS output_tokens,
        200 + abs(hashint4(i + 5)) % 6000 AS latency_ms,
        CASE WHEN abs(hashint4(i + 6)) % 20 = 0 THEN 'error' ELSE 'success' END AS status,
        '${ANCHOR}'::timestamptz - make_interval(secs => (abs(hashint4(i + 7)) % (61 * 86400))::float8 + (i % 1000) / 1000.0) AS created_at
   FROM generate_series(1, ${N}) i"
# No rows within minutes of the 30-day window's edge: the two dashboards
# read now() a few seconds apart.
ROWS="SELECT * FROM (${ROWS}) x WHERE x.created_at NOT BETWEEN '${ANCHOR}'::timestamptz - interval '30 days 5 minutes'
                                                       AND '${ANCHOR}'::timestamptz - interval '30 days' + interval '30 minutes'"

log "loading ${N} rows into seed 001's table"
q -d "$SEED" -q -c "INSERT INTO ai_usage_log (user_id, user_email, customer_id, customer_name, request_type, input_tokens,
    output_tokens, latency_ms, status, created_at)
  SELECT user_id, user_email, customer_id, 'Customer ' || customer_id, request_type, input_tokens, output_tokens,
         latency_ms, status, created_at FROM (${ROWS}) r" -c "VACUUM ANALYZE ai_usage_log"

log "loading ${N} rows into usage_tracker"
q -d "$OURS" -q -c "SELECT usage_tracker.log_ai_usage('00000000-0000-4000-8000-000000000001', p_occurred_at => now() - make_interval(days => d))
                      FROM generate_series(0, 62, 20) d" \
  -c "DELETE FROM usage_tracker.ai_usage_log WHERE total_tokens = 0" \
  -c "INSERT INTO usage_tracker.ai_usage_log (org_id, user_id, created_at, customer_id, input_tokens, output_tokens,
        total_tokens, latency_ms, price_id, status, request_type, provider, model_used, input_cost_usd, output_cost_usd,
        total_cost_usd, potential_cost_usd, user_email, customer_name)
      SELECT user_id, user_id, created_at, customer_id, input_tokens, output_tokens, input_tokens + output_tokens, latency_ms,
             1, status, request_type, 'anthropic', 'claude-sonnet-4-20250514', input_tokens * 0.000003, output_tokens * 0.000015,
             input_tokens * 0.000003 + output_tokens * 0.000015, input_tokens * 0.000003 + output_tokens * 0.000015,
             user_email, 'Customer ' || customer_id
        FROM (${ROWS}) r" \
  -c "VACUUM ANALYZE usage_tracker.ai_usage_log"
log "one maintenance pass (folds the rollup)"
start=$(date +%s.%N)
q -d "$OURS" -q -c "SELECT usage_tracker.run_maintenance()" >/dev/null
fold_s=$(echo "$(date +%s.%N) - $start" | bc)
q -d "$OURS" -q -c "VACUUM ANALYZE usage_tracker.ai_usage_daily"

ours=$(q -d "$OURS" -tAc "SELECT usage_tracker.get_ai_usage_dashboard(30)::text")
seed=$(q -d "$SEED" -tAc "SELECT get_ai_usage_dashboard(30)::text")
same=$(q -d "$OURS" -tAc "SELECT '${ours}'::jsonb = '${seed}'::jsonb")
log "same result as the seed: ${same}"

timeit() {  # timeit DB SQL -> best of RUNS in ms
    local best=999999999 t
    for _ in $(seq 1 "$RUNS"); do
        t=$(q -d "$1" -tA -c "\\timing on" -c "$2" 2>&1 | awk '/^Time:/ {print $2}')
        best=$(awk -v a="$best" -v b="$t" 'BEGIN {print (b < a ? b : a)}')
    done
    echo "$best"
}
ours_ms=$(timeit "$OURS" "SELECT usage_tracker.get_ai_usage_dashboard(30) IS NOT NULL")
seed_ms=$(timeit "$SEED" "SELECT get_ai_usage_dashboard(30) IS NOT NULL")
rows=$(q -d "$OURS" -tAc "SELECT count(*) FROM usage_tracker.ai_usage_daily")
{
    echo "| ${N} requests over 61 days | get_ai_usage_dashboard(30), best of ${RUNS} |"
    echo "|---|---:|"
    echo "| usage_tracker (daily rollup: ${rows} rows) | ${ours_ms} ms |"
    echo "| seed 001's PL/pgSQL | ${seed_ms} ms |"
    echo
    echo "speed-up: $(awk -v a="$seed_ms" -v b="$ours_ms" 'BEGIN {printf "%.1f", a / b}')x; maintenance pass: ${fold_s}s; same result as the seed: ${same}"
} | tee "${RUN_DIR}/bench-dashboard.md"
cluster_stop dash
