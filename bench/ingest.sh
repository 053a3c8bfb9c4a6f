#!/usr/bin/env bash
# Benchmark: ingest throughput of log_ai_usage against seed 001's own
# PL/pgSQL log_ai_usage and a bare INSERT into seed 001's table with its
# indexes (loaded from ../shared/seeds), pgbench with 4 clients, same
# settings, side by side in one run, with prepared statements (as PostgREST
# and most drivers use them) and with the simple query protocol (psql,
# poolers in transaction mode): ROUNDS rounds, each measuring the three in
# a rotating order, and the median of each (this machine's run-to-run noise
# is about 10%).
#
#   bench/ingest.sh [--pg MAJOR] [seconds-per-measurement] [rounds]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SECS=${1:-15}
ROUNDS=${2:-3}
PORT=55491
OURS=ingest_ours
SEED=ingest_seed001

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy ingest
cluster_start ingest "$PORT"
q() { cpsql ingest "$PORT" "$@"; }
q -d postgres -c "CREATE DATABASE ${OURS}"
q -d "$OURS" -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()" >/dev/null
set +e
bash "$ROOT/scripts/load_seed.sh" 001 ingest "$PORT" "$SEED"
rc=$?
set -e
if [ $rc -eq 2 ]; then echo "SKIP: ../shared/seeds/001_*.txt is absent; no baseline" >&2; exit 0; fi
[ $rc -eq 0 ] || die "loading seed 001 failed"

# The same request in all three: a user, customer context, tokens, latency;
# both functions called with named arguments (as PostgREST calls them).
cat > "${RUN_DIR}/ingest-ours.sql" <<'SQL'
\set u random(1, 50)
\set c random(1, 500)
SELECT usage_tracker.log_ai_usage(p_user_id => ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid,
    p_user_email => 'user@example.com', p_customer_id => :c, p_customer_name => 'Customer', p_request_type => 'report',
    p_session_id => 'session', p_input_tokens => 1200, p_output_tokens => 350, p_model_used => 'claude-sonnet-4-20250514',
    p_latency_ms => 2100, p_tool_turns => 1, p_status => 'success', p_error_message => NULL);
SQL
cat > "${RUN_DIR}/ingest-seed.sql" <<'SQL'
\set u random(1, 50)
\set c random(1, 500)
SELECT log_ai_usage(p_user_id => ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid,
    p_user_email => 'user@example.com', p_customer_id => :c, p_customer_name => 'Customer', p_request_type => 'report',
    p_session_id => 'session', p_input_tokens => 1200, p_output_tokens => 350, p_model_used => 'claude-sonnet-4-20250514',
    p_latency_ms => 2100, p_tool_turns => 1, p_status => 'success', p_error_message => NULL);
SQL
cat > "${RUN_DIR}/ingest-bare.sql" <<'SQL'
\set u random(1, 50)
\set c random(1, 500)
INSERT INTO ai_usage_log (user_id, user_email, customer_id, customer_name, request_type, session_id, input_tokens,
    output_tokens, model_used, latency_ms, tool_turns, status, error_message)
VALUES (('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, 'user@example.com', :c, 'Customer', 'report',
    'session', 1200, 350, 'claude-sonnet-4-20250514', 2100, 1, 'success', NULL);
SQL

tps() {  # tps DB SCRIPT PROTOCOL
    "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/ingest/sock" -p "$PORT" -U postgres -M "$3" -c 4 -j 2 -T "$SECS" -f "$2" "$1" 2>&1 \
        | awk '/^tps/ {print $3}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
: > "${RUN_DIR}/bench-ingest.md"
for proto in prepared simple; do
    T_OURS=(); T_SEED=(); T_BARE=()
    for r in $(seq 1 "$ROUNDS"); do
        for k in 0 1 2; do
            case $(( (r + k) % 3 )) in
                0) T_OURS+=("$(tps "$OURS" "${RUN_DIR}/ingest-ours.sql" "$proto")") ;;
                1) T_SEED+=("$(tps "$SEED" "${RUN_DIR}/ingest-seed.sql" "$proto")") ;;
                2) T_BARE+=("$(tps "$SEED" "${RUN_DIR}/ingest-bare.sql" "$proto")") ;;
            esac
        done
    done
    ours=$(median "${T_OURS[@]}"); seed=$(median "${T_SEED[@]}"); bare=$(median "${T_BARE[@]}")
    log "${proto}: ours ${T_OURS[*]}; seed ${T_SEED[*]}; bare ${T_BARE[*]}"
    {
        echo "| ${proto} protocol, 4 clients, ${SECS}s each, median of ${ROUNDS} rounds | requests/s |"
        echo "|---|---:|"
        echo "| usage_tracker.log_ai_usage | ${ours%.*} |"
        echo "| seed 001's log_ai_usage (PL/pgSQL) | ${seed%.*} |"
        echo "| bare INSERT into seed 001's table | ${bare%.*} |"
        echo
        echo "${proto}: ours / seed function: $(ratio "$ours" "$seed")x; ours / bare INSERT: $(ratio "$ours" "$bare")x"
        echo
    } | tee -a "${RUN_DIR}/bench-ingest.md"
done
cluster_stop ingest
