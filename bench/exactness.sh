#!/usr/bin/env bash
# Exactness under load: 32 clients log AI usage (some late, some with
# customers, across 32 organizations) for S seconds (default 300) while
# run_maintenance() runs every second; then verify_rollups() must find zero
# differences and the rollups must hold every logged request.
#
#   bench/exactness.sh [--pg MAJOR] [seconds] [clients]
set -euo pipefail
# --pg MAJOR: the PostgreSQL major to run on (15, the default, or 16-18 from ../shared/pgkit).
if [ "${1:-}" = --pg ]; then export PG_MAJOR=$2; shift 2; fi
source "$(dirname "$0")/../scripts/common.sh"
SECS=${1:-300}
CLIENTS=${2:-32}
PORT=55494
DB=exact

bash "$ROOT/scripts/setup.sh"
install_extension
cluster_destroy exact
cluster_start exact "$PORT"
q() { cpsql exact "$PORT" -d "$DB" "$@"; }
cpsql exact "$PORT" -d postgres -c "CREATE DATABASE ${DB}"
q -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()" >/dev/null
cat > "${RUN_DIR}/exact-log.sql" <<'SQL'
\set u random(1, 32)
\set c random(0, 6)
\set t random(1, 5000)
\set back random(0, 48)
SELECT usage_tracker.log_ai_usage(('eeeeeeee-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, 'u' || :u || '@example.com',
    NULLIF(:c, 0), 'Customer ' || :c, 'report', NULL, :t, :t / 4, 'claude-sonnet-4-20250514', 100 + :t, 0, 'success', NULL,
    p_occurred_at => now() - make_interval(mins => CASE WHEN :back = 0 THEN 60 * :t / 100 ELSE 0 END),
    p_cached => :t % 5 = 0);
SQL
echo "SELECT usage_tracker.run_maintenance();" > "${RUN_DIR}/exact-fold.sql"
pgb() { "${PG_BIN}/pgbench" -n -h "${RUN_DIR}/exact/sock" -p "$PORT" -U postgres "$@" "$DB"; }
log "${CLIENTS} clients logging for ${SECS}s, run_maintenance() every second"
pgb -c 1 -R 1 -T "$SECS" -f "${RUN_DIR}/exact-fold.sql" > "${RUN_DIR}/exact-fold.log" 2>&1 &
folder=$!
pgb -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -f "${RUN_DIR}/exact-log.sql" > "${RUN_DIR}/exact-log.log" 2>&1
wait "$folder"
folds=$(awk '/number of transactions actually processed/ {print $6}' "${RUN_DIR}/exact-fold.log")
logged=$(awk '/number of transactions actually processed/ {print $6}' "${RUN_DIR}/exact-log.log")
failed=$(awk '/number of failed transactions/ {print $5}' "${RUN_DIR}/exact-log.log")
before=$(q -tAc "SELECT jsonb_array_length(usage_tracker.verify_rollups(current_date - 5, current_date) -> 'differences')")
q -q -c "SELECT usage_tracker.run_maintenance()" >/dev/null
diffs=$(q -tAc "SELECT jsonb_array_length(usage_tracker.verify_rollups(current_date - 5, current_date) -> 'differences')")
rows=$(q -tAc "SELECT count(*) FROM usage_tracker.ai_usage_log")
held=$(q -tAc "SELECT sum(requests) FROM usage_tracker.ai_usage_daily")
{
    echo "| ${CLIENTS} clients, ${SECS}s, run_maintenance() every second | |"
    echo "|---|---:|"
    echo "| requests logged (pgbench: ${failed:-0} failed) | ${logged} |"
    echo "| maintenance passes during the run | ${folds} |"
    echo "| rows in the log / requests in the daily rollup | ${rows} / ${held} |"
    echo "| verify_rollups differences (folded rows, before / after a final pass) | ${before} / ${diffs} |"
} | tee "${RUN_DIR}/bench-exactness.md"
cluster_stop exact
[ "$diffs" = 0 ] && [ "$before" = 0 ] && [ "$rows" = "$held" ] || die "rollups differ from the log"
