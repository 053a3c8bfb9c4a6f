#!/usr/bin/env bash
# Benchmark: sustained batch ingestion. 4 clients send log_ai_usage_batch
# calls of 1,000 requests for DURATION seconds (synchronous_commit off)
# while run_maintenance() runs every 5 seconds. Before each pass the lag is
# read (rollup_lag: rows waiting, age of the oldest unfolded row); after it
# the 30-day dashboard is timed. Goals: the lag stays under 30 s
# throughout, verify_rollups is clean at the end, and the dashboard during
# the run stays within 2x of its time on the idle machine (same data
# before the run: 1,000,000 requests over 30 days, folded).
#
#   bench/sustained.sh [--pg MAJOR] [duration-seconds] [clients]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
DURATION=${1:-300}
CLIENTS=${2:-4}
PORT=55486
DB=sustained

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy sustained
cluster_start sustained "$PORT" "max_wal_size = 16GB"
q() { cpsql sustained "$PORT" -d "$DB" "$@"; }
cpsql sustained "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
q -q -o /dev/null -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()"

log "loading 1,000,000 requests over 30 days and folding them"
# The months' partitions first (logging creates them), then the rows.
q -q -o /dev/null -c "SELECT usage_tracker.log_ai_usage('00000000-0000-4000-8000-000000000001', p_occurred_at => now() - make_interval(days => d))
                        FROM generate_series(0, 35, 5) d" -c "DELETE FROM usage_tracker.ai_usage_log"
q -q <<'SQL'
INSERT INTO usage_tracker.ai_usage_log (org_id, user_id, created_at, customer_id, input_tokens, output_tokens, total_tokens,
    latency_ms, price_id, status, request_type, provider, model_used, input_cost_usd, output_cost_usd, total_cost_usd,
    potential_cost_usd, user_email, customer_name)
SELECT u, u, t, c, 1200, 350, 1550, 2100, 1, 'success', 'report', 'anthropic', 'claude-sonnet-4-20250514',
       0.0036, 0.00525, 0.00885, 0.00885, 'user@example.com', 'Customer'
  FROM (SELECT ('00000000-0000-4000-8000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid AS u, 1 + (i * 7) % 500 AS c,
               now() - make_interval(secs => 2592000 - i * 2.592) AS t
          FROM generate_series(1, 1000000) i) r ORDER BY t;
VACUUM ANALYZE usage_tracker.ai_usage_log;
SQL
q -q -o /dev/null -c "SELECT usage_tracker.run_maintenance()"

dash_ms() { q -At -c "\\timing on" -c "SELECT length(usage_tracker.get_ai_usage_dashboard(30)::text)" | awk '/^Time:/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
idle=(); for _ in 1 2 3 4 5; do idle+=("$(dash_ms)"); done
idle_ms=$(median "${idle[@]}")

q -At -c "SELECT 'SELECT usage_tracker.log_ai_usage_batch(' || quote_literal(jsonb_agg(jsonb_build_object(
        'user_id', ('00000000-0000-4000-8000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid, 'user_email', 'user@example.com',
        'customer_id', 1 + (i * 7) % 500, 'customer_name', 'Customer', 'session_id', 'session', 'input_tokens', 1200,
        'output_tokens', 350, 'latency_ms', 2100, 'tool_turns', 1))::text) || ');' FROM generate_series(1, 1000) i" \
    > "${RUN_DIR}/sustained-batch.sql"
before=$(q -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")

log "${CLIENTS} clients sending batches of 1,000 for ${DURATION}s; maintenance every 5 s"
"${PG_BIN}/pgbench" -n -h "${RUN_DIR}/sustained/sock" -p "$PORT" -U postgres -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" \
    -f "${RUN_DIR}/sustained-batch.sql" "$DB" > "${RUN_DIR}/sustained-pgbench.log" 2>&1 &
writers=$!
: > "${RUN_DIR}/sustained-passes.log"
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do
    tick=$(date +%s.%N)
    lag=$(q -tAc "SELECT usage_tracker.rollup_lag()")
    pass=$(q -tAc "SELECT usage_tracker.run_maintenance() -> 'rollups'")
    d=$(dash_ms)
    echo "$(date +%T) before: ${lag} pass: ${pass} dashboard_ms: ${d}" >> "${RUN_DIR}/sustained-passes.log"
    sleep "$(echo "5 - ($(date +%s.%N) - $tick)" | bc | awk '{print ($1 > 0) ? $1 : 0}')"
done
wait "$writers" || { cat "${RUN_DIR}/sustained-pgbench.log"; die "writers failed"; }
q -q -o /dev/null -c "SELECT usage_tracker.run_maintenance()"
after=$(q -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")
clean=$(q -tAc "SELECT (usage_tracker.verify_rollups(current_date - 31, current_date) -> 'differences') = '[]'::jsonb")
max_lag=$(sed -n 's/.*before: \({[^}]*}\).*/\1/p' "${RUN_DIR}/sustained-passes.log" \
    | sed -n 's/.*"lag_seconds": \([0-9.]*\).*/\1/p' | sort -n | tail -1)
max_wait=$(sed -n 's/.*before: \({[^}]*}\).*/\1/p' "${RUN_DIR}/sustained-passes.log" \
    | sed -n 's/.*"rows_waiting": \([0-9]*\).*/\1/p' | sort -n | tail -1)
passes=$(wc -l < "${RUN_DIR}/sustained-passes.log")
mapfile -t during < <(sed -n 's/.*dashboard_ms: \([0-9.]*\).*/\1/p' "${RUN_DIR}/sustained-passes.log")
during_ms=$(median "${during[@]}")
during_max=$(printf '%s\n' "${during[@]}" | sort -n | tail -1)
rate=$(awk -v a="$after" -v b="$before" -v d="$DURATION" 'BEGIN {printf "%d", (a - b) / d}')
{
    echo "| ${CLIENTS} clients x batches of 1,000 for ${DURATION} s, run_maintenance every 5 s | |"
    echo "|---|---:|"
    echo "| requests logged | $((after - before)) (${rate}/s) |"
    echo "| maintenance passes | ${passes} |"
    echo "| largest lag before a pass (age of the oldest unfolded row, at most) | ${max_lag} s |"
    echo "| most rows waiting before a pass | ${max_wait} |"
    echo "| get_ai_usage_dashboard(30), idle (median of 5) | ${idle_ms} ms |"
    echo "| get_ai_usage_dashboard(30), during the run (median / max of ${#during[@]}) | ${during_ms} / ${during_max} ms |"
    echo "| dashboard during / idle (median) | $(awk -v a="$during_ms" -v b="$idle_ms" 'BEGIN {printf "%.2f", a / b}')x |"
    echo "| verify_rollups clean at the end | ${clean} |"
} | tee "${RUN_DIR}/bench-sustained.md"
cluster_stop sustained
