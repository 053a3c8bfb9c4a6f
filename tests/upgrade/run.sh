#!/usr/bin/env bash
# Upgrade test: installs release 0.1.0 from its kept install script
# (sql/releases/), writes data, runs ALTER EXTENSION usage_tracker UPDATE,
# and checks that the data is intact, that it works, and that the upgraded
# catalog (functions, tables, columns, indexes, constraints, triggers,
# policies, privileges, pg_dump registration, extension members) is exactly
# a fresh install's.
#
#   tests/upgrade/run.sh CLUSTER PORT
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$(cd "$(dirname "$0")" && pwd)"
q() { cpsql "$cluster" "$port" "$@"; }
extdir="$("$PG_CONFIG" --sharedir)/extension"
current=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)

# Every kept release script, so that CREATE EXTENSION ... VERSION finds it.
for f in "$ROOT"/sql/releases/usage_tracker--*.sql; do
    cmp -s "$f" "${extdir}/$(basename "$f")" || cp "$f" "${extdir}/"
done

q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_upgrade WITH (FORCE)" \
  -c "DROP DATABASE IF EXISTS ut_fresh WITH (FORCE)" -c "CREATE DATABASE ut_upgrade" -c "CREATE DATABASE ut_fresh"
# Log partitions exist in both (the privilege snapshot covers them).
q -d ut_fresh -c "CREATE EXTENSION usage_tracker" -c "SELECT usage_tracker.run_maintenance()" >/dev/null

pass=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
fail() { echo "not ok - $1"; exit 1; }

for from in $(cd "$ROOT/sql/releases" && ls usage_tracker--*.sql | sed 's/usage_tracker--\(.*\)\.sql/\1/' | sort -V); do
    q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_upgrade WITH (FORCE)" -c "CREATE DATABASE ut_upgrade"
    q -d ut_upgrade -q <<SQL
\o /dev/null
SET client_min_messages = warning;
CREATE EXTENSION usage_tracker VERSION '${from}';
SELECT usage_tracker.set_org_member('0a0a0a0a-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 'admin');
SELECT usage_tracker.create_project('0a0a0a0a-0000-4000-8000-000000000001', 'Upgraded', '0a0a0a0a-0000-4000-8000-0000000000e1');
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 100 + i, p_output_tokens => i,
           p_occurred_at => now() - make_interval(hours => i * 7), p_idempotency_key => 'up-' || i,
           p_org_id => '0a0a0a0a-0000-4000-8000-000000000001', p_customer_id => i % 3,
           p_project_id => '0a0a0a0a-0000-4000-8000-0000000000e1', p_cached => i % 4 = 0)
  FROM generate_series(1, 60) i;
SELECT usage_tracker.track_usage_event('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message', 3);
SELECT usage_tracker.set_budget('0a0a0a0a-0000-4000-8000-000000000001', 100);
SELECT usage_tracker.run_maintenance();
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 5, p_org_id => '0a0a0a0a-0000-4000-8000-000000000001');
SQL
    reads="SELECT usage_tracker.get_ai_usage_dashboard(30, '0a0a0a0a-0000-4000-8000-000000000001')::text,
                  (SELECT jsonb_agg(s ORDER BY date) FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000e1', 30) s)::text,
                  (SELECT count(*) || ' ' || sum(total_cost_usd) FROM usage_tracker.ai_usage_log),
                  (SELECT current FROM usage_tracker.check_usage_limit('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message')),
                  (SELECT last_value FROM usage_tracker_private.ai_usage_log_ingest_seq)"
    before=$(q -d ut_upgrade -tA -c "$reads")
    q -d ut_upgrade -q -c "ALTER EXTENSION usage_tracker UPDATE"
    version=$(q -d ut_upgrade -tA -c "SELECT extversion FROM pg_extension WHERE extname = 'usage_tracker'")
    [ "$version" = "$current" ] && ok "${from} -> ${current}: ALTER EXTENSION usage_tracker UPDATE" || fail "${from}: version ${version} after UPDATE"
    after=$(q -d ut_upgrade -tA -c "$reads")
    [ "$before" = "$after" ] && ok "${from} -> ${current}: data and every read unchanged" || {
        diff <(echo "$before") <(echo "$after"); fail "${from}: reads changed by the upgrade"; }
    works=$(q -d ut_upgrade -tA <<'SQL'
SELECT usage_tracker.set_model_price('anthropic', 'claude-sonnet-4-20250514', now() - interval '1 hour', 6, 30) > 0;
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1000000,
                                  p_org_id => '0a0a0a0a-0000-4000-8000-000000000001') IS NOT NULL;
SELECT concat_ws(' ',
    (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int >= 1,
    (usage_tracker.verify_rollups(current_date - 30, current_date) -> 'differences') = '[]'::jsonb,
    usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_idempotency_key => 'up-1',
                               p_org_id => '0a0a0a0a-0000-4000-8000-000000000001')
      = (SELECT id FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'up-1'));
SQL
)
    cost=$(q -d ut_upgrade -tA -c "SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE input_tokens = 1000000")
    [ "$(echo "$works" | tr '\n' ' ')" = "t t t t t " ] && [ "$cost" = 6 ] \
        && ok "${from} -> ${current}: logging (with a price set after the upgrade), folding and idempotency work" \
        || fail "${from}: after the upgrade: ${works} / cost ${cost}"
    q -d ut_upgrade -tA -f "$here/catalog.sql" > "${RUN_DIR}/catalog-upgraded.txt"
    q -d ut_fresh -tA -f "$here/catalog.sql" > "${RUN_DIR}/catalog-fresh.txt"
    q -d ut_upgrade -tA -f "$ROOT/tests/privileges/snapshot.sql" > "${RUN_DIR}/privileges-upgraded.txt"
    q -d ut_fresh -tA -f "$ROOT/tests/privileges/snapshot.sql" > "${RUN_DIR}/privileges-fresh.txt"
    if diff -u "${RUN_DIR}/catalog-fresh.txt" "${RUN_DIR}/catalog-upgraded.txt" \
       && diff -u "${RUN_DIR}/privileges-fresh.txt" "${RUN_DIR}/privileges-upgraded.txt"; then
        ok "${from} -> ${current}: the upgraded catalog and privileges are exactly a fresh install's ($(wc -l < "${RUN_DIR}/catalog-fresh.txt") items)"
    else
        fail "${from}: the upgraded catalog differs from a fresh ${current} install"
    fi
done
# One session that logs, reinstalls the extension and logs again: its
# per-backend copies (partitions known to exist, prices, budgets) follow.
again=$(q -d ut_fresh -tA -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1000000) IS NOT NULL" \
    -c "DROP EXTENSION usage_tracker" -c "CREATE EXTENSION usage_tracker" \
    -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1000000) IS NOT NULL" \
    -c "SELECT count(*) || ' ' || sum(total_cost_usd) FROM usage_tracker.ai_usage_log" 2>&1 | tr '\n' ' ')
[ "$again" = "t t 1 3 " ] && ok "DROP and CREATE EXTENSION in one session: logging keeps working" \
    || fail "logging after reinstalling in the same session: ${again}"
q -d postgres -c "DROP DATABASE ut_upgrade WITH (FORCE)" -c "DROP DATABASE ut_fresh WITH (FORCE)"
