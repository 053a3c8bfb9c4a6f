#!/usr/bin/env bash
# Benchmark: batch ingestion, side by side in one run (synchronous_commit
# off, prepared statements, ROUNDS interleaved rounds, medians):
#   - log_ai_usage_batch with 100 and 1,000 events per call, 1 and 4 clients;
#   - (a) a bare multi-row INSERT of the same rows into seed 001's table with
#     its indexes (loaded from ../shared/seeds at run time);
#   - (b) our one-call-per-event path (log_ai_usage, one request per call).
# Goals: batch >= 0.5x the bare INSERT and >= 10x one call per event;
# >= 100,000 events/s.
# Then a backfill: 1,000,000 usage events through track_usage_events in
# batches of 1,000 (30 days, 10 organizations, 3 types), against 1,000 and
# 8,000 track_usage_event calls in one transaction.
#
#   bench/batch_ingest.sh [--pg MAJOR] [seconds-per-measurement] [rounds]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
PORT=55487
OURS=batch_ours
SEED=batch_seed001

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy batch
cluster_start batch "$PORT" "max_wal_size = 8GB"
q() { cpsql batch "$PORT" "$@"; }
q -d postgres -c "CREATE DATABASE ${OURS}"
q -d "$OURS" -q -o /dev/null -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()"
set +e
bash "$ROOT/scripts/load_seed.sh" 001 batch "$PORT" "$SEED"
rc=$?
set -e
if [ $rc -eq 2 ]; then echo "SKIP: ../shared/seeds/001_*.txt is absent; no baseline" >&2; exit 0; fi
[ $rc -eq 0 ] || die "loading seed 001 failed"

# The same requests everywhere: 50 users, 500 customers, as bench/ingest.sh.
ROWS="SELECT ('00000000-0000-4000-8000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid AS user_id, 'user@example.com' AS user_email,
             1 + (i * 7) % 500 AS customer_id, 'Customer' AS customer_name, 'report' AS request_type, 'session' AS session_id,
             1200 AS input_tokens, 350 AS output_tokens, 'claude-sonnet-4-20250514' AS model_used, 2100 AS latency_ms,
             1 AS tool_turns, 'success' AS status
        FROM generate_series(1, :n) i"
script() {  # script NAME N: writes the batch call and the bare INSERT of N rows
    local n=$2 rows=${ROWS//:n/$2}
    q -d "$OURS" -At -c "SELECT 'SELECT usage_tracker.log_ai_usage_batch(' || quote_literal(jsonb_agg(to_jsonb(r))::text) || ');'
                                     FROM (${rows}) r" > "${RUN_DIR}/batch-ours-${n}.sql"
    q -d "$OURS" -At -c "SELECT 'INSERT INTO ai_usage_log (user_id, user_email, customer_id, customer_name, request_type,
                                            session_id, input_tokens, output_tokens, model_used, latency_ms, tool_turns, status) VALUES '
                                     || string_agg(format('(%L, %L, %s, %L, %L, %L, %s, %s, %L, %s, %s, %L)', r.user_id, r.user_email,
                                            r.customer_id, r.customer_name, r.request_type, r.session_id, r.input_tokens,
                                            r.output_tokens, r.model_used, r.latency_ms, r.tool_turns, r.status), ', ') || ';'
                                     FROM (${rows}) r" > "${RUN_DIR}/batch-bare-${n}.sql"
}
script x 100
script x 1000
cat > "${RUN_DIR}/batch-single.sql" <<'SQL'
\set u random(1, 50)
\set c random(1, 500)
SELECT usage_tracker.log_ai_usage(p_user_id => ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid,
    p_user_email => 'user@example.com', p_customer_id => :c, p_customer_name => 'Customer', p_request_type => 'report',
    p_session_id => 'session', p_input_tokens => 1200, p_output_tokens => 350, p_model_used => 'claude-sonnet-4-20250514',
    p_latency_ms => 2100, p_tool_turns => 1, p_status => 'success');
SQL

tps() {  # tps DB SCRIPT CLIENTS
    "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/batch/sock" -p "$PORT" -U postgres -M prepared -c "$3" -j "$(( $3 < 2 ? 1 : 2 ))" \
        -T "$SECS" -f "$2" "$1" > "${RUN_DIR}/batch-pgbench.log" 2>&1 || { cat "${RUN_DIR}/batch-pgbench.log"; die "pgbench failed"; }
    awk '/^tps/ {print $3}' "${RUN_DIR}/batch-pgbench.log"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ev() { awk -v t="$1" -v n="$2" 'BEGIN {printf "%d", t * n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
out="${RUN_DIR}/bench-batch-ingest.md"
{
    echo "| events/s, median of ${ROUNDS} rounds of ${SECS}s | clients | log_ai_usage_batch | bare multi-row INSERT (seed 001's table) | batch / bare | one log_ai_usage call per event | batch / one call per event |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$out"
for c in 1 4; do
    declare -a B100=() B1000=() R100=() R1000=() S=()
    for r in $(seq 1 "$ROUNDS"); do
        for k in 0 1 2 3 4; do
            case $(( (r + k) % 5 )) in
                0) B100+=("$(ev "$(tps "$OURS" "${RUN_DIR}/batch-ours-100.sql" "$c")" 100)") ;;
                1) B1000+=("$(ev "$(tps "$OURS" "${RUN_DIR}/batch-ours-1000.sql" "$c")" 1000)") ;;
                2) R100+=("$(ev "$(tps "$SEED" "${RUN_DIR}/batch-bare-100.sql" "$c")" 100)") ;;
                3) R1000+=("$(ev "$(tps "$SEED" "${RUN_DIR}/batch-bare-1000.sql" "$c")" 1000)") ;;
                4) S+=("$(ev "$(tps "$OURS" "${RUN_DIR}/batch-single.sql" "$c")" 1)") ;;
            esac
        done
        # Keep the tables from growing without bound between rounds.
        q -d "$SEED" -q -c "TRUNCATE ai_usage_log" -c "VACUUM ANALYZE ai_usage_log"
        q -d "$OURS" -q -o /dev/null -c "TRUNCATE usage_tracker.ai_usage_log" -c "SELECT usage_tracker.run_maintenance()" \
            -c "VACUUM ANALYZE usage_tracker.ai_usage_log"
    done
    log "${c} client(s): batch100 ${B100[*]}; batch1000 ${B1000[*]}; bare100 ${R100[*]}; bare1000 ${R1000[*]}; single ${S[*]}"
    s=$(median "${S[@]}")
    for n in 100 1000; do
        if [ "$n" = 100 ]; then b=$(median "${B100[@]}"); bare=$(median "${R100[@]}"); else b=$(median "${B1000[@]}"); bare=$(median "${R1000[@]}"); fi
        echo "| batches of ${n} | ${c} | ${b} | ${bare} | $(ratio "$b" "$bare")x | ${s} | $(ratio "$b" "$s")x |" >> "$out"
    done
done

# Backfill: 1,000 batches of 1,000 usage events (service role: any time in
# the last 30 days), timed per batch; and the single-call baseline.
cat > "${RUN_DIR}/batch-backfill.sql" <<'SQL'
\set base random(0, 2590000)
SELECT usage_tracker.track_usage_events((
    SELECT jsonb_agg(jsonb_build_object('org_id', ('0e0e0e0e-0000-4000-8000-' || lpad((i % 10)::text, 12, '0'))::uuid,
                                        'event_type', (ARRAY['chat_message', 'csv_upload', 'ai_tokens_input'])[1 + i % 3],
                                        'quantity', 1 + i % 5,
                                        'occurred_at', now() - make_interval(secs => :base + i)))
      FROM generate_series(1, 1000) i));
SQL
rm -f "${RUN_DIR}"/pgbench_log.*
start=$(date +%s.%N)
(cd "$RUN_DIR" && "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/batch/sock" -p "$PORT" -U postgres -M prepared -c 1 -t 1000 -l \
    -f "${RUN_DIR}/batch-backfill.sql" "$OURS" > "${RUN_DIR}/batch-backfill.log" 2>&1) || { cat "${RUN_DIR}/batch-backfill.log"; die "backfill failed"; }
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc)
# Per-batch latency (µs) of the first and last 100 batches.
first=$(head -100 "${RUN_DIR}"/pgbench_log.* | awk '{s += $3} END {printf "%.3f", s / NR / 1000}')
last=$(tail -100 "${RUN_DIR}"/pgbench_log.* | awk '{s += $3} END {printf "%.3f", s / NR / 1000}')
loaded=$(q -d "$OURS" -tAc "SELECT count(*) FROM usage_tracker.usage_events")
exact=$(q -d "$OURS" -tAc "SELECT (SELECT sum(count) FROM usage_tracker.organization_usage) = (SELECT sum(quantity) FROM usage_tracker.usage_events)")
single() {  # single N: ms per event for N track_usage_event calls in one transaction
    q -d "$OURS" -At -c "\\timing on" -c "BEGIN" \
        -c "SELECT count(usage_tracker.track_usage_event(('0e0e0e0e-0000-4000-8000-' || lpad((i % 10)::text, 12, '0'))::uuid, 'chat_message', 1)) FROM generate_series(1, $1) i" \
        -c "COMMIT" | awk -v n="$1" '/^Time:/ && $2 > t {t = $2} END {printf "%.3f", t / n}'
}
s1000=$(single 1000); s8000=$(single 8000)
{
    echo
    echo "| backfill | events | time | per event |"
    echo "|---|---:|---:|---:|"
    echo "| track_usage_events, 1,000 batches of 1,000 (one client) | ${loaded} | ${secs%.*} s | $(awk -v s="$secs" -v n="$loaded" 'BEGIN {printf "%.4f ms", s * 1000 / n}') |"
    echo "| of which the first 100 batches | 100,000 | | $(awk -v m="$first" 'BEGIN {printf "%.4f ms", m / 1000}') |"
    echo "| of which the last 100 batches | 100,000 | | $(awk -v m="$last" 'BEGIN {printf "%.4f ms", m / 1000}') |"
    echo "| track_usage_event x 1,000 in one transaction | 1,000 | | ${s1000} ms |"
    echo "| track_usage_event x 8,000 in one transaction | 8,000 | | ${s8000} ms |"
    echo
    echo "counters exact after the backfill: ${exact}"
} >> "$out"
cat "$out"
cluster_stop batch
