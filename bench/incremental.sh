#!/usr/bin/env bash
# Benchmark: the cost of a maintenance pass over the same number of new rows
# with 1,000,000 rows already rolled up, and again with 10,000,000 (the goal:
# at most 1.2x). New rows are K requests in a fresh hour, as they arrive;
# each phase times three passes (median) and reports rows folded per second
# (the goal: at least 300,000 on an idle machine).
#
#   bench/incremental.sh [--pg MAJOR] [small] [large] [new-rows-per-pass]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SMALL=${1:-1000000}
LARGE=${2:-10000000}
K=${3:-200000}
PORT=55493
DB=incr

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy incr
cluster_start incr "$PORT" "max_wal_size = 8GB" "work_mem = 64MB" "maintenance_work_mem = 1GB"
q() { cpsql incr "$PORT" -d "$DB" "$@"; }
cpsql incr "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
q -c "CREATE EXTENSION usage_tracker" >/dev/null
q -q -o /dev/null -c "SELECT usage_tracker.log_ai_usage('00000000-0000-4000-8000-000000000001', p_occurred_at => now() - make_interval(days => d))
           FROM generate_series(0, 62, 20) d" -c "DELETE FROM usage_tracker.ai_usage_log"

# load FROM TO OLDEST_SECS NEWEST_SECS: rows FROM..TO spread over that age
# range (seconds before now), time-ordered.
load() {
    local from=$1 to=$2 old=$3 new=$4
    q -q -c "INSERT INTO usage_tracker.ai_usage_log (org_id, user_id, created_at, customer_id, input_tokens, output_tokens,
        total_tokens, latency_ms, price_id, status, request_type, provider, model_used, input_cost_usd, output_cost_usd,
        total_cost_usd, potential_cost_usd, user_email, customer_name)
      SELECT u, u, created_at, c, it, ot, it + ot, 300, 1, CASE WHEN i % 20 = 0 THEN 'error' ELSE 'success' END,
             (ARRAY['report','insight','scheduled','widget'])[1 + i % 4], 'anthropic', 'claude-sonnet-4-20250514',
             it * 0.000003, ot * 0.000015, it * 0.000003 + ot * 0.000015, it * 0.000003 + ot * 0.000015,
             'user' || (abs(hashint4(i::int)) % 60) || '@example.com', 'Customer ' || c
        FROM (SELECT i, ('00000000-0000-4000-8000-' || lpad((abs(hashint4(i::int)) % 60)::text, 12, '0'))::uuid AS u,
                     CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + (abs(hashint4(i::int)) % 60 + (i % 2) * 7) % 20 END AS c,
                     100 + abs(hashint4(i::int + 3)) % 8000 AS it, 50 + abs(hashint4(i::int + 4)) % 2000 AS ot,
                     now() - make_interval(secs => ${old} - (${old} - ${new}) * (i - ${from})::float8 / (${to} - ${from} + 1)) AS created_at
                FROM generate_series(${from}::bigint, ${to}::bigint) i) r ORDER BY created_at"
}
# One pass folds at most usage_tracker.fold_batch_rows (2,000,000): after a
# bulk load, pass until nothing waits.
fold() {
    local waiting
    while :; do
        waiting=$(q -tAc "SELECT usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_waiting'")
        [ "$waiting" = 0 ] && break
    done
}
timed_fold() {
    local s e
    s=$(date +%s.%N); fold; e=$(date +%s.%N)
    echo "$e - $s" | bc
}
# phase HOURS_AGO_BASE: three passes, each over K new rows in its own fresh hour.
phase() {
    local base=$1 times=() h from
    for n in 1 2 3; do
        h=$((base - n))
        from=$((900000000 + base * 10 + n * K))
        load "$from" $((from + K - 1)) $((h * 3600 + 3599)) $((h * 3600))
        q -q -c "VACUUM ANALYZE usage_tracker.ai_usage_log" >/dev/null
        times+=("$(timed_fold)")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}

DAY=86400
log "loading ${SMALL} rows (61 days, ending 2 days ago) and folding them"
load 1 "$SMALL" $((63 * DAY)) $((2 * DAY)); fold
small_ms=$(phase 40)
log "loading $((LARGE - SMALL)) more rows and folding them"
load $((SMALL + 1)) "$LARGE" $((63 * DAY)) $((2 * DAY)); fold
large_ms=$(phase 30)
rolled=$(q -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")
clean=$(q -tAc "SELECT (usage_tracker.verify_rollups(current_date - 70, current_date) -> 'differences') = '[]'::jsonb")
{
    echo "| maintenance pass over ${K} new rows (median of 3) | seconds |"
    echo "|---|---:|"
    echo "| with ${SMALL} rows already rolled up | ${small_ms} |"
    echo "| with ${LARGE} rows already rolled up | ${large_ms} |"
    echo
    echo "ratio: $(awk -v a="$large_ms" -v b="$small_ms" 'BEGIN {printf "%.2f", a / b}')x (goal: at most 1.2x); rows in the log: ${rolled}; verify_rollups clean: ${clean}"
    echo "rows folded per second: $(awk -v k="$K" -v a="$small_ms" 'BEGIN {printf "%d", k / a}') (${SMALL} rolled up), $(awk -v k="$K" -v a="$large_ms" 'BEGIN {printf "%d", k / a}') (${LARGE} rolled up); goal: at least 300,000"
} | tee "${RUN_DIR}/bench-incremental.md"
cluster_stop incr
