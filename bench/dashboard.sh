#!/usr/bin/env bash
# Benchmark: seed 001's three reads — get_ai_usage_dashboard(30),
# get_user_ai_usage(user, 30), get_ai_cost_summary() — against seed 001's
# own PL/pgSQL on the same N requests over 61 days (default 10,000,000),
# after one maintenance pass, side by side in one run. Rows are loaded in
# time order, as a log is written.
#
#   bench/dashboard.sh [--pg MAJOR] [rows] [runs]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
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

# The same rows in both (one anchor time, same ids), shaped like the seed 001
# data set DESIGN.md measured (~50 users and ~14 customers a day): 60 users,
# each working for 2 of 20 customers (10% of requests without one), 4
# request types, ~5% errors, spread over the 61 days before the anchor.
# Each user is their own organization (seed 001's single-tenant callers),
# so the trusted caller's dashboard spans 60 organizations.
# Ours gets them as log_ai_usage writes them (partitions, costs, ingest
# order), by bulk INSERT for speed.
ANCHOR=$(q -d postgres -tAc "SELECT now()")
ROWS="SELECT i, md5(i::text)::uuid AS id,
        ('00000000-0000-4000-8000-' || lpad((abs(hashint4(i)) % 60)::text, 12, '0'))::uuid AS user_id,
        'user' || (abs(hashint4(i)) % 60) || '@example.com' AS user_email,
        CASE WHEN abs(hashint4(i + 1)) % 10 = 0 THEN NULL
             ELSE 1 + (abs(hashint4(i)) % 60 + (abs(hashint4(i + 1)) % 2) * 7) % 20 END AS customer_id,
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
q -d "$SEED" -q -c "INSERT INTO ai_usage_log (id, user_id, user_email, customer_id, customer_name, request_type, input_tokens,
    output_tokens, latency_ms, status, created_at)
  SELECT id, user_id, user_email, customer_id, 'Customer ' || customer_id, request_type, input_tokens, output_tokens,
         latency_ms, status, created_at FROM (${ROWS}) r ORDER BY created_at" -c "VACUUM ANALYZE ai_usage_log"

log "loading ${N} rows into usage_tracker"
q -d "$OURS" -q -c "SELECT usage_tracker.log_ai_usage('00000000-0000-4000-8000-000000000001', p_occurred_at => now() - make_interval(days => d))
                      FROM generate_series(0, 62, 20) d" \
  -c "DELETE FROM usage_tracker.ai_usage_log WHERE total_tokens = 0" \
  -c "INSERT INTO usage_tracker.ai_usage_log (id, org_id, user_id, created_at, customer_id, input_tokens, output_tokens,
        total_tokens, latency_ms, price_id, status, request_type, provider, model_used, input_cost_usd, output_cost_usd,
        total_cost_usd, potential_cost_usd, user_email, customer_name)
      SELECT id, user_id, user_id, created_at, customer_id, input_tokens, output_tokens, input_tokens + output_tokens, latency_ms,
             1, status, request_type, 'anthropic', 'claude-sonnet-4-20250514', input_tokens * 0.000003, output_tokens * 0.000015,
             input_tokens * 0.000003 + output_tokens * 0.000015, input_tokens * 0.000003 + output_tokens * 0.000015,
             user_email, 'Customer ' || customer_id
        FROM (${ROWS}) r ORDER BY created_at" \
  -c "VACUUM ANALYZE usage_tracker.ai_usage_log"
log "one maintenance pass (folds the rollups)"
start=$(date +%s.%N)
q -d "$OURS" -q -c "SELECT usage_tracker.run_maintenance()" >/dev/null
fold_s=$(echo "$(date +%s.%N) - $start" | bc)
q -d "$OURS" -q -c "VACUUM ANALYZE"

USER1=00000000-0000-4000-8000-000000000007
same() {  # same OURS_SQL SEED_SQL -> t/f
    local ours seed
    ours=$(q -d "$OURS" -tAc "SELECT ($1)::text")
    seed=$(q -d "$SEED" -tAc "SELECT ($2)::text")
    q -d "$OURS" -tAc "SELECT '${ours}'::jsonb = '${seed}'::jsonb"
}
same_dash=$(same "usage_tracker.get_ai_usage_dashboard(30)" "get_ai_usage_dashboard(30)")
same_user=$(same "usage_tracker.get_user_ai_usage('${USER1}', 30)" "get_user_ai_usage('${USER1}', 30)")
same_cost=$(same "usage_tracker.get_ai_cost_summary()" "get_ai_cost_summary()")
log "same results as the seed: ${same_dash} ${same_user} ${same_cost}"

timeit() {  # timeit DB SQL -> best of RUNS in ms
    local best=999999999 t
    for _ in $(seq 1 "$RUNS"); do
        t=$(q -d "$1" -tA -c "\\timing on" -c "$2" 2>&1 | awk '/^Time:/ {print $2}')
        best=$(awk -v a="$best" -v b="$t" 'BEGIN {print (b < a ? b : a)}')
    done
    echo "$best"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", a / b}'; }
d_ours=$(timeit "$OURS" "SELECT usage_tracker.get_ai_usage_dashboard(30) IS NOT NULL")
# The seed's functions run with the server's default JIT setting (on) and
# with JIT off; the faster of the two is its time (ours has JIT off).
seedit() {
    local a b
    a=$(timeit "$SEED" "$1")
    b=$(timeit "$SEED" "SET jit = off; $1")
    awk -v a="$a" -v b="$b" 'BEGIN {print (a < b ? a : b)}'
}
d_seed=$(seedit "SELECT get_ai_usage_dashboard(30) IS NOT NULL")
u_ours=$(timeit "$OURS" "SELECT usage_tracker.get_user_ai_usage('${USER1}', 30) IS NOT NULL")
u_seed=$(seedit "SELECT get_user_ai_usage('${USER1}', 30) IS NOT NULL")
c_ours=$(timeit "$OURS" "SELECT usage_tracker.get_ai_cost_summary() IS NOT NULL")
c_seed=$(seedit "SELECT get_ai_cost_summary() IS NOT NULL")
# Storage per logged request: heap + indexes (+ TOAST) of the log.
seed_bytes=$(q -d "$SEED" -tAc "SELECT pg_total_relation_size('ai_usage_log')")
ours_bytes=$(q -d "$OURS" -tAc "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('usage_tracker.ai_usage_log') WHERE isleaf")
rollup_bytes=$(q -d "$OURS" -tAc "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
                                    WHERE c.relnamespace = 'usage_tracker'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'ai_usage_%'")
rows_seed=$(q -d "$SEED" -tAc "SELECT count(*) FROM ai_usage_log")
rows_ours=$(q -d "$OURS" -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")
sizes=$(q -d "$OURS" -tAc "SELECT string_agg(format('%s %s', c.relname, c.reltuples::bigint), ', ' ORDER BY c.relname)
                            FROM pg_class c WHERE c.relnamespace = 'usage_tracker'::regnamespace AND c.relkind = 'r'
                             AND c.relname LIKE 'ai_usage_%'")
{
    echo "| ${N} requests over 61 days, best of ${RUNS} | usage_tracker | seed 001's PL/pgSQL | speed-up | same JSON |"
    echo "|---|---:|---:|---:|---|"
    echo "| get_ai_usage_dashboard(30) | ${d_ours} ms | ${d_seed} ms | $(ratio "$d_seed" "$d_ours")x | ${same_dash} |"
    echo "| get_user_ai_usage(user, 30) | ${u_ours} ms | ${u_seed} ms | $(ratio "$u_seed" "$u_ours")x | ${same_user} |"
    echo "| get_ai_cost_summary() | ${c_ours} ms | ${c_seed} ms | $(ratio "$c_seed" "$c_ours")x | ${same_cost} |"
    echo
    echo "maintenance pass (first fold of all ${N} rows): ${fold_s}s; rollup rows: ${sizes}"
    echo
    echo "storage per logged request (heap + indexes): usage_tracker $((ours_bytes / rows_ours)) bytes" \
         "(plus $((rollup_bytes / rows_ours)) bytes of rollups), seed 001 $((seed_bytes / rows_seed)) bytes"
    echo
    echo "(the seed's time is the faster of JIT on, the server default, and JIT off; usage_tracker runs with JIT off)"
} | tee "${RUN_DIR}/bench-dashboard.md"
cluster_stop dash
