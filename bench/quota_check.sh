#!/usr/bin/env bash
# Benchmark: check_usage_limit (and consume_quota) against seed 002's way —
# SUM over the month's raw usage_events with the seed's own table and
# indexes, loaded from ../shared/seeds — at 10,000 and 1,000,000 events
# for one organization this month, side by side in one run.
#
#   bench/quota_check.sh [--pg MAJOR] [seconds-per-measurement]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SECS=${1:-10}
PORT=55490
OURS=bench_ours
SEED=bench_seed002
ORG=0b0b0b0b-0000-4000-8000-000000000001

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy bench
cluster_start bench "$PORT"
q() { cpsql bench "$PORT" "$@"; }

q -d postgres -c "CREATE DATABASE ${OURS}"
q -d "$OURS" -c "CREATE EXTENSION usage_tracker"
set +e
bash "$ROOT/scripts/load_seed.sh" 002 bench "$PORT" "$SEED"
rc=$?
set -e
if [ $rc -eq 2 ]; then
    echo "SKIP: ../shared/seeds/002_*.txt is absent; no baseline to compare with" >&2
    exit 0
elif [ $rc -ne 0 ]; then
    die "loading seed 002 failed"
fi

# Load N events for one org, spread over this month up to now, into both.
# Ours: the raw events plus the daily counters exactly as track_usage_event
# builds them (one transaction per event through the API would take minutes
# for a million; tests/sql/11_quotas.sql and tests/pgbench check that the
# API keeps these in step). The quota period row is rebuilt on first use.
load() {
    local n=$1
    q -d "$OURS" -q <<SQL
\\o /dev/null
TRUNCATE usage_tracker.usage_events, usage_tracker.organization_usage, usage_tracker_private.quota_usage;
INSERT INTO usage_tracker.usage_events (org_id, occurred_at, quantity, event_type, source)
SELECT '${ORG}', date_trunc('month', now()) + (now() - date_trunc('month', now())) * (i::float8 / ${n}), 1,
       CASE WHEN i % 10 = 0 THEN 'csv_upload' ELSE 'chat_message' END, 'event'
  FROM generate_series(1, ${n}) i;
INSERT INTO usage_tracker.organization_usage (org_id, type, date, count, events, first_at, last_at)
SELECT org_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date, sum(quantity), count(*), min(occurred_at), max(occurred_at)
  FROM usage_tracker.usage_events GROUP BY 1, 2, 3;
-- A plan whose limits the org stays under, so both calls take the limited path.
SELECT usage_tracker.create_plan('bench', NULL, '{"chat_messages": 100000000, "csv_uploads": 100000000}');
SELECT usage_tracker.set_org_plan('${ORG}', 'bench');
VACUUM ANALYZE usage_tracker.usage_events;
VACUUM ANALYZE usage_tracker.organization_usage;
SQL
    q -d "$SEED" -q <<SQL
\\o /dev/null
TRUNCATE usage_events;
INSERT INTO usage_events (org_id, event_type, quantity, created_at)
SELECT '${ORG}', CASE WHEN i % 10 = 0 THEN 'csv_upload' ELSE 'chat_message' END, 1,
       date_trunc('month', now()) + (now() - date_trunc('month', now())) * (i::float8 / ${n})
  FROM generate_series(1, ${n}) i;
VACUUM ANALYZE usage_events;
SQL
}

tps() {  # tps DB SQL -> transactions per second, one client
    echo "$2" > "${RUN_DIR}/bench.sql"
    "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/bench/sock" -p "$PORT" -U postgres -c 1 -T "$SECS" -f "${RUN_DIR}/bench.sql" "$1" 2>&1 \
        | awk '/^tps/ {print $3}'
}

OURS_CHECK="SELECT * FROM usage_tracker.check_usage_limit('${ORG}', 'chat_message');"
OURS_CONSUME="SELECT usage_tracker.consume_quota('${ORG}', 'csv_upload', 1);"
# Seed 002's check: the month's quantity of the event type, from the raw events.
SEED_CHECK="SELECT COALESCE(SUM(quantity), 0) FROM usage_events WHERE org_id = '${ORG}' AND event_type = 'chat_message' AND created_at >= date_trunc('month', now());"

declare -A R
for n in 10000 1000000; do
    log "loading ${n} events"
    load "$n"
    # Sanity: both sides agree on the count before we time anything.
    ours=$(q -d "$OURS" -tAc "SELECT current FROM usage_tracker.check_usage_limit('${ORG}', 'chat_message')")
    seed=$(q -d "$SEED" -tAc "${SEED_CHECK%;}")
    [ "$ours" = "$seed" ] || die "ours says ${ours}, the seed's query says ${seed}"
    log "timing (${SECS}s each)"
    R[ours_check_$n]=$(tps "$OURS" "$OURS_CHECK")
    R[seed_check_$n]=$(tps "$SEED" "$SEED_CHECK")
    R[ours_consume_$n]=$(tps "$OURS" "$OURS_CONSUME")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
ms() { awk -v t="$1" 'BEGIN {printf "%.3f", 1000 / t}'; }
{
    echo "| events this month | check_usage_limit (ours) | seed 002's SUM | speed-up | consume_quota (ours) |"
    echo "|---:|---:|---:|---:|---:|"
    for n in 10000 1000000; do
        printf '| %s | %s ms (%s/s) | %s ms (%s/s) | %sx | %s ms (%s/s) |\n' "$n" \
            "$(ms "${R[ours_check_$n]}")" "${R[ours_check_$n]%.*}" "$(ms "${R[seed_check_$n]}")" "${R[seed_check_$n]%.*}" \
            "$(ratio "${R[ours_check_$n]}" "${R[seed_check_$n]}")" "$(ms "${R[ours_consume_$n]}")" "${R[ours_consume_$n]%.*}"
    done
    echo
    echo "check_usage_limit at 1,000,000 vs 10,000 events: $(ratio "${R[ours_check_10000]}" "${R[ours_check_1000000]}")x the time (flat is 1.0x)"
    echo "seed 002 at 1,000,000 vs 10,000 events: $(ratio "${R[seed_check_10000]}" "${R[seed_check_1000000]}")x the time"
} | tee "${RUN_DIR}/bench-quota_check.md"
cluster_stop bench
