#!/usr/bin/env bash
# The README is tested: every ```sql block runs against a database holding
# the demo data (placeholders resolved as README's "Placeholders" section
# says), the API table equals the catalog (every public function, the same
# parameter names and defaults), and the reference tables (request types,
# event types, plans and limits, retention, limits) are what a fresh install
# ships. A block runs as the superuser inside a transaction that is rolled
# back, so blocks do not depend on each other; one that begins with
# "-- in a new database" runs in a new, empty database instead.
#
#   tests/docs/run.sh CLUSTER PORT [--print-reference]
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$(cd "$(dirname "$0")" && pwd)"
readme="$ROOT/README.md"
q() { cpsql "$cluster" "$port" "$@"; }

pass=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
fail() { echo "not ok - $1"; exit 1; }

q -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_docs WITH (FORCE)" \
  -c "DROP DATABASE IF EXISTS ut_docs_fresh WITH (FORCE)" -c "CREATE DATABASE ut_docs" -c "CREATE DATABASE ut_docs_fresh"
q -d ut_docs_fresh -q -c "CREATE EXTENSION usage_tracker"

# Reference tables: what a fresh install ships, exactly as README shows it.
q -d ut_docs_fresh -f "$here/reference.sql" > "${RUN_DIR}/reference.md"
if [ "${3:-}" = --print-reference ]; then cat "${RUN_DIR}/reference.md"; exit 0; fi
for table in "request types" "event types" "plans and limits" "retention" "limits"; do
    expected=$(awk -v t="@@ ${table}" '$0 == t {on = 1; next} /^@@ / {on = 0} on' "${RUN_DIR}/reference.md")
    if grep -qxF -- "$(echo "$expected" | head -1)" "$readme" && python3 - "$readme" "$expected" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
sys.exit(0 if sys.argv[2] in text else 1)
PY
    then ok "README's ${table} table is what a fresh install ships"
    else
        echo "$expected"; fail "README's ${table} table differs from the shipped data (print it: tests/docs/run.sh ${cluster} ${port} --print-reference)"
    fi
done

# The API table lists every public function with its parameters and defaults.
q -d ut_docs_fresh -tA -c "
SELECT p.proname || '(' || coalesce((
         SELECT string_agg(a.name || coalesce(' = ' || a.def, ''), ', ' ORDER BY a.n)
           FROM (SELECT n, (p.proargnames)[n] AS name,
                        CASE WHEN n > p.pronargs - p.pronargdefaults THEN
                             (regexp_split_to_array(pg_get_expr(p.proargdefaults, 0), ', (?=(?:[^'']*''[^'']*'')*[^'']*\$)'))
                               [n - (p.pronargs - p.pronargdefaults)] END AS def
                   FROM generate_series(1, p.pronargs) n) a), '') || ')'
  FROM pg_proc p WHERE p.pronamespace = 'usage_tracker'::regnamespace" \
  | sed -E "s/::(timestamp with time zone|[a-z_]+)(\[\])?//g" | sort -u > "${RUN_DIR}/api-catalog.txt"
python3 "$here/readme.py" api "$readme" > "${RUN_DIR}/api-readme.txt"
if diff -u "${RUN_DIR}/api-catalog.txt" "${RUN_DIR}/api-readme.txt"; then
    ok "README's API table lists all $(wc -l < "${RUN_DIR}/api-catalog.txt") public functions with their exact parameters and defaults"
else
    fail "README's API table and the catalog differ (- catalog, + README)"
fi

# Every SQL block runs against the demo data.
q -d ut_docs -q -c "CREATE EXTENSION usage_tracker"
q -d ut_docs -q -o /dev/null -f "$ROOT/demo/demo_data.sql"
q -d ut_docs -q -o /dev/null -c "SELECT usage_tracker.run_maintenance()"
fixtures=$(q -d ut_docs -tA -F ' ' <<'SQL'
SELECT (SELECT usage_tracker.start_report_run('22222222-2222-4222-8222-222222222222',
                                              p_org_id => 'ac000000-0000-4000-8000-000000000001')),
       (SELECT (usage_tracker.reserve_quota('ac000000-0000-4000-8000-000000000001', 'csv_upload', 1) ->> 'reservation_id')),
       (SELECT budget_id FROM usage_tracker.budgets WHERE org_id = 'ac000000-0000-4000-8000-000000000001' AND user_id IS NULL),
       (SELECT alert_id FROM usage_tracker.budget_alerts ORDER BY created_at LIMIT 1);
SQL
)
read -r run_id reservation_id budget_id alert_id <<< "$fixtures"
[ -n "$alert_id" ] || fail "demo fixtures: ${fixtures}"
placeholders=(
    "s/<org_id>/ac000000-0000-4000-8000-000000000001/g"
    "s/<other_org_id>/91000000-0000-4000-8000-000000000002/g"
    "s/<user_id>/22222222-2222-4222-8222-222222222222/g"
    "s/<admin_id>/11111111-1111-4111-8111-111111111111/g"
    "s/<project_id>/ac000000-0000-4000-8000-0000000000a1/g"
    "s/<run_id>/${run_id}/g"
    "s/<reservation_id>/${reservation_id}/g"
    "s/<budget_id>/${budget_id}/g"
    "s/<alert_id>/${alert_id}/g"
)
sed_args=(); for p in "${placeholders[@]}"; do sed_args+=(-e "$p"); done
dir="${RUN_DIR}/readme-blocks"; rm -rf "$dir"
n=$(python3 "$here/readme.py" blocks "$readme" "$dir")
for f in "$dir"/*.sql; do
    sed -i "${sed_args[@]}" "$f"
    where=$(head -1 "$f" | sed 's/^-- README: //')
    if grep -q '<[a-z_]*_id>' "$f"; then fail "README block $(basename "$f") (${where}) has an unknown placeholder"; fi
    directive=$(sed -n 2p "$f")
    if [ "$directive" = "-- in the cron database" ]; then
        continue   # tests/cron/run.sh runs it on a server set up as README says
    elif [ "$directive" = "-- once per cluster: the role PostgREST logs in as" ]; then
        postgrest_block="$f"
    fi
    if [ "$directive" = "-- in a new database" ]; then
        q -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_docs_new WITH (FORCE)" -c "CREATE DATABASE ut_docs_new"
        out=$(q -d ut_docs_new -f "$f" 2>&1) || { echo "$out"; cat "$f"; fail "README block $(basename "$f") (${where}) failed"; }
    else
        out=$({ echo "BEGIN;"; cat "$f"; echo; echo "ROLLBACK;"; } | q -d ut_docs 2>&1) \
            || { echo "$out"; cat "$f"; fail "README block $(basename "$f") (${where}) failed"; }
    fi
done
ok "all ${n} SQL blocks of README run as written (against the demo data; the cron block in tests/cron/run.sh)"

# Self-hosted PostgREST, the SQL side: the role README creates logs in and
# makes PostgREST's request sequence.
[ -n "${postgrest_block:-}" ] || fail "README has no PostgREST authenticator block"
q -d postgres -q -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS authenticator"
q -d ut_docs -q -f "$postgrest_block"
as_authenticator() { "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${RUN_DIR}/${cluster}/sock" -p "$port" -U authenticator -d ut_docs "$@"; }
requests=$(as_authenticator -tA 2>&1 <<'SQL'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}', true) \g /dev/null
SELECT (usage_tracker.get_ai_usage_dashboard(30, 'ac000000-0000-4000-8000-000000000001') -> 'summary' ->> 'total_requests')::int > 0;
ROLLBACK;
BEGIN;
SET LOCAL ROLE anon;
SELECT set_config('request.jwt.claims', '{"role":"anon"}', true) \g /dev/null
\set ON_ERROR_STOP off
SELECT usage_tracker.get_ai_usage_dashboard(30);
ROLLBACK;
SQL
) || true
q -d postgres -q -c "DROP ROLE authenticator"
if grep -qx t <<< "$requests" && grep -q "permission denied" <<< "$requests"; then
    ok "self-hosted PostgREST: authenticator (as README creates it) logs in and serves authenticated requests; anon gets 42501"
else
    echo "$requests"; fail "the PostgREST authenticator setup of README does not work"
fi

q -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ut_docs WITH (FORCE)" \
  -c "DROP DATABASE IF EXISTS ut_docs_fresh WITH (FORCE)" -c "DROP DATABASE IF EXISTS ut_docs_new WITH (FORCE)"
