#!/usr/bin/env bash
# Compares every privilege on usage_tracker's objects with the snapshot kept
# in tests/privileges/expected.txt: in the test database, and in a database
# whose default privileges grant everything to every API role before
# CREATE EXTENSION (the extension must revoke what its design does not
# grant, also on log partitions created later). After an intended change,
# review the diff and accept it with:
#   cp .run/privileges.txt tests/privileges/expected.txt
# A major whose catalog truly differs has its own snapshot,
# expected-pgNN.txt (17 added the MAINTAIN table privilege; see README).
#
#   tests/privileges/run.sh CLUSTER PORT
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$(cd "$(dirname "$0")" && pwd)"
expected="$here/expected.txt"
[ -f "$here/expected-pg${PG_MAJOR}.txt" ] && expected="$here/expected-pg${PG_MAJOR}.txt"
q() { cpsql "$cluster" "$port" "$@"; }

# Log partitions exist in both databases before the snapshot.
make_partitions() {
    q -d "$1" -q -o /dev/null -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1)" \
        -c "SELECT usage_tracker.run_maintenance()"
}

make_partitions ut_test
q -d ut_test -tA -f "$here/snapshot.sql" > "${RUN_DIR}/privileges.txt"
if diff -u "$expected" "${RUN_DIR}/privileges.txt"; then
    echo "ok - privileges match the snapshot ($(wc -l < "${RUN_DIR}/privileges.txt") lines)"
else
    echo "not ok - privileges differ from ${expected#"$ROOT"/} (review; accept with: cp ${RUN_DIR}/privileges.txt ${expected})"
    exit 1
fi

q -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_defprivs WITH (FORCE)" -c "CREATE DATABASE ut_defprivs"
q -d ut_defprivs -q <<'SQL'
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO PUBLIC, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON FUNCTIONS TO PUBLIC, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO PUBLIC, anon, authenticated, service_role;
CREATE EXTENSION usage_tracker;
SQL
make_partitions ut_defprivs
q -d ut_defprivs -tA -f "$here/snapshot.sql" > "${RUN_DIR}/privileges-defprivs.txt"
if diff -u "$expected" "${RUN_DIR}/privileges-defprivs.txt"; then
    echo "ok - with default privileges granting everything to every API role: the same privileges, partitions included"
else
    echo "not ok - default privileges leak into usage_tracker's objects (diff above)"
    exit 1
fi
q -d ut_defprivs -tA -c "SET ROLE authenticated" -c "TRUNCATE usage_tracker.ai_usage_log" >/dev/null 2>&1 \
    && { echo "not ok - authenticated could TRUNCATE the log"; exit 1; } \
    || echo "ok - authenticated cannot TRUNCATE the log there"
# 17 added the MAINTAIN table privilege (VACUUM, ANALYZE, CLUSTER, REINDEX,
# REFRESH MATERIALIZED VIEW, LOCK TABLE) and GRANT ALL includes it: the
# snapshot would list it; this says so outright where it exists.
if [ "$(q -d ut_defprivs -tA -c "SELECT current_setting('server_version_num')::int >= 170000")" = t ]; then
    maintain=$(q -d ut_defprivs -tA -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
        unnest(ARRAY['anon', 'authenticated', 'service_role']) r
        WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND c.relkind IN ('r', 'p', 'v', 'm')
          AND (has_table_privilege(r, c.oid, 'MAINTAIN') OR has_table_privilege('public', c.oid, 'MAINTAIN'))")
    [ "$maintain" = 0 ] && echo "ok - PostgreSQL 17+: no API role (nor PUBLIC) holds MAINTAIN on any relation, partitions included" \
        || { echo "not ok - ${maintain} MAINTAIN grants on usage_tracker relations"; exit 1; }
fi
q -d postgres -q -c "DROP DATABASE ut_defprivs WITH (FORCE)"
