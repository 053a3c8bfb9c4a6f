#!/usr/bin/env bash
# Benchmark: one busy tenant. 32 pgbench clients write usage for ONE
# organization, then for 32 organizations (one each), side by side in one
# run, synchronous_commit off, prepared statements:
#   - track_usage_event for an organization on a plan limiting the event type;
#   - log_ai_usage for an organization with a USD budget (thresholds that the
#     run crosses, so alerts are raised while clients write).
# Goal: the one-organization case keeps at least 0.5x the 32-organization
# throughput, with totals and alerts exact (checked after the run).
#
#   bench/hot_tenant.sh [--pg MAJOR] [seconds-per-measurement] [rounds]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
PORT=55488
DB=hot
HOT=0e0e0e0e-0000-4000-8000-0000000000ff

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy hot
cluster_start hot "$PORT"
q() { cpsql hot "$PORT" -d "$DB" "$@"; }
cpsql hot "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
q -q -o /dev/null <<SQL
CREATE EXTENSION usage_tracker;
SELECT usage_tracker.run_maintenance();
SELECT usage_tracker.create_plan('hot', 'benchmark plan', '{"chat_messages": 1000000000}', p_base_plan => 'pilot');
-- 32 organizations (one per client) and the hot one; each with a budget of
-- \$50 alerting at every 10% (the one-organization run crosses them all).
SELECT usage_tracker.set_org_plan(o, 'hot'), usage_tracker.set_budget(o, 50, NULL, '{10,20,30,40,50,60,70,80,90,100}')
  FROM (SELECT ('0e0e0e0e-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid AS o FROM generate_series(0, 31) n
        UNION ALL SELECT '${HOT}'::uuid) x;
SQL

w() { printf '%s\n' "$2" > "${RUN_DIR}/hot-$1.sql"; }
w track-one "SELECT usage_tracker.track_usage_event('${HOT}', 'chat_message', 1);"
w track-many "SELECT usage_tracker.track_usage_event(('0e0e0e0e-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, 'chat_message', 1);"
w log-one "SELECT usage_tracker.log_ai_usage(p_user_id => ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, p_org_id => '${HOT}', p_input_tokens => 1000, p_output_tokens => 100);"
w log-many "SELECT usage_tracker.log_ai_usage(p_user_id => ('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, p_org_id => ('0e0e0e0e-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid, p_input_tokens => 1000, p_output_tokens => 100);"

tps() {  # tps SCRIPT
    "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/hot/sock" -p "$PORT" -U postgres -M prepared -c 32 -j 2 -T "$SECS" \
        -f "${RUN_DIR}/hot-$1.sql" "$DB" > "${RUN_DIR}/hot-$1.log" 2>&1 || { cat "${RUN_DIR}/hot-$1.log"; die "pgbench $1 failed"; }
    grep -q "number of failed transactions: 0" "${RUN_DIR}/hot-$1.log" || { cat "${RUN_DIR}/hot-$1.log"; die "pgbench $1 had failures"; }
    awk '/^tps/ {print $3}' "${RUN_DIR}/hot-$1.log"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
declare -a TO TM LO LM
names=(track-one track-many log-one log-many)
for r in $(seq 1 "$ROUNDS"); do
    for k in 0 1 2 3; do
        case ${names[$(( (r + k) % 4 ))]} in
            track-one) TO+=("$(tps track-one)") ;;
            track-many) TM+=("$(tps track-many)") ;;
            log-one) LO+=("$(tps log-one)") ;;
            log-many) LM+=("$(tps log-many)") ;;
        esac
    done
done
to=$(median "${TO[@]}"); tm=$(median "${TM[@]}"); lo=$(median "${LO[@]}"); lm=$(median "${LM[@]}")
log "rounds: track one ${TO[*]}; track 32 ${TM[*]}; log one ${LO[*]}; log 32 ${LM[*]}"

# Exact after all that: period rows = events = counters; budget spend = the
# logged cost; each threshold of each budget alerted at most once, and all
# of them for the hot organization.
exact=$(q -tA <<SQL
SELECT (SELECT sum(used) FROM usage_tracker_private.quota_usage WHERE limit_key = 'chat_messages')
         = (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE event_type = 'chat_message')
   AND (SELECT sum(count) FROM usage_tracker.organization_usage WHERE type = 'chat_message')
         = (SELECT sum(quantity) FROM usage_tracker.usage_events WHERE event_type = 'chat_message')
   AND (SELECT sum(spent_usd) FROM usage_tracker_private.budget_spend)
         = (SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log)
   AND NOT EXISTS (SELECT 1 FROM usage_tracker.budget_alerts GROUP BY budget_id, period_start, threshold_pct HAVING count(*) > 1)
   AND (SELECT count(*) FROM usage_tracker.budget_alerts WHERE org_id = '${HOT}') = 10;
SQL
)
{
    echo "| 32 clients, ${SECS}s each, median of ${ROUNDS} rounds | one organization | 32 organizations | one / 32 |"
    echo "|---|---:|---:|---:|"
    echo "| track_usage_event (plan limit on the type) | ${to%.*}/s | ${tm%.*}/s | $(ratio "$to" "$tm")x |"
    echo "| log_ai_usage (organization with a USD budget) | ${lo%.*}/s | ${lm%.*}/s | $(ratio "$lo" "$lm")x |"
    echo
    echo "totals, budgets and alerts exact after the run: ${exact}"
} | tee "${RUN_DIR}/bench-hot-tenant.md"
cluster_stop hot
