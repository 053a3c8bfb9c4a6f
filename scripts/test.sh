#!/usr/bin/env bash
# Runs every test: formatting and lints, #[pg_test] unit tests, SQL tests
# as the real roles (pgTAP), isolation tests and pgbench concurrency tests,
# each against a scratch cluster created for this run; on PostgreSQL 15
# (Debian; also the .deb installed with dpkg) and, from ../shared/pgkit, 17
# (everything but the lints) and 16 and 18 (#[pg_test], the package's files
# and the pgTAP files).
#
#   scripts/test.sh              everything, every major
#   scripts/test.sh sql          only the SQL/isolation/pgbench suites (extension already installed)
#   PG_MAJOR=17 scripts/test.sh major-full | major-core
#                                one other major: every suite | #[pg_test] and pgTAP
set -euo pipefail
source "$(dirname "$0")/common.sh"

TEST_PORT=55499
DB=ut_test
what=${1:-all}
PASSED=0
mkdir -p "$RUN_DIR"
# count N: adds N passed tests to the closing summary.
count() { PASSED=$((PASSED + $1)); }

bash "$ROOT/scripts/setup.sh"
cd "$ROOT"

if [ "$what" = major-full ] || [ "$what" = major-core ]; then
    log "PostgreSQL ${PG_MAJOR}: #[pg_test] unit tests"
    mkdir -p "$RUN_DIR" && chown postgres:postgres "$RUN_DIR"
    rm -rf "${RUN_DIR}/pgrx-test"
    cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "${RUN_DIR}/pgrx-test" 2>&1 | tee "${RUN_DIR}/pgrx-test.log"
    count "$(grep -Eo 'test result: ok\. [0-9]+ passed' "${RUN_DIR}/pgrx-test.log" | awk '{s+=$4} END {print s+0}')"
    install_extension debug
    log "PostgreSQL ${PG_MAJOR}: the Debian package's files in the kit's tree (the suites below run on them)"
    bash "$ROOT/tests/package/run.sh" "$PG_MAJOR" | tee "${RUN_DIR}/package.log"
    count "$(grep -c '^ok - ' "${RUN_DIR}/package.log")"
fi

if [ "$what" = all ]; then
    log "cargo fmt --check"
    cargo fmt --check
    log "cargo clippy -- -D warnings"
    cargo clippy --all-targets --features "pg15 pg_test" -- -D warnings
    log "#[pg_test] unit tests"
    mkdir -p "$RUN_DIR" && chown postgres:postgres "$RUN_DIR"
    rm -rf "${RUN_DIR}/pgrx-test"
    cargo pgrx test pg15 --runas postgres --pgdata "${RUN_DIR}/pgrx-test" 2>&1 | tee "${RUN_DIR}/pgrx-test.log"
    count "$(grep -Eo 'test result: ok\. [0-9]+ passed' "${RUN_DIR}/pgrx-test.log" | awk '{s+=$4} END {print s+0}')"
    install_extension
fi

log "scratch cluster for the SQL tests"
# The server runs with Rust backtraces on, as a developer's or the demo's
# might: no error a client sees may carry one (tests/sql/25_hardening.sql).
export RUST_BACKTRACE=1
cluster_destroy test
cluster_start test "$TEST_PORT"
cpsql test "$TEST_PORT" -d postgres -c "CREATE DATABASE ${DB}"
cpsql test "$TEST_PORT" -d "$DB" -c "CREATE EXTENSION usage_tracker" -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION dblink"
cpsql test "$TEST_PORT" -d "$DB" -tAc "SELECT 'PostgreSQL ' || current_setting('server_version')"
cpsql test "$TEST_PORT" -d "$DB" -f "$ROOT/tests/helpers/helpers.sql"

# Seed 001's own PL/pgSQL, loaded from ../shared/seeds into its own database,
# is the baseline the dashboard functions are compared with.
set +e
bash "$ROOT/scripts/load_seed.sh" 001 test "$TEST_PORT" seed001_baseline
rc=$?
set -e
case $rc in
    0) cpsql test "$TEST_PORT" -d "$DB" -c "INSERT INTO test_helpers.config VALUES
           ('seed001', 'host=${RUN_DIR}/test/sock port=${TEST_PORT} dbname=seed001_baseline user=postgres')" ;;
    2) log "SKIP: ../shared/seeds/001_*.txt is absent, so the seed-equivalence tests are skipped" ;;
    *) die "loading seed 001 failed" ;;
esac

log "SQL tests (pgTAP, as the real roles)"
pg_prove --psql-bin "${PG_BIN}/psql" --ext .sql -h "${RUN_DIR}/test/sock" -p "$TEST_PORT" -U postgres -d "$DB" \
    "$ROOT"/tests/sql/*.sql | tee "${RUN_DIR}/pg_prove.log"
count "$(grep -Eo 'Tests=[0-9]+' "${RUN_DIR}/pg_prove.log" | tail -1 | cut -d= -f2)"

if [ "$what" = major-core ]; then
    cluster_stop test
    echo "usage_tracker on PostgreSQL ${PG_MAJOR}: ${PASSED} passed, 0 failed"
    exit 0
fi

log "privilege snapshot"
bash "$ROOT/tests/privileges/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/privileges.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/privileges.log")"

log "isolation tests"
bash "$ROOT/tests/isolation/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/isolation.log"
count "$(grep -c ' \.\.\. ok' "${RUN_DIR}/isolation.log")"

log "pgbench concurrency tests"
bash "$ROOT/tests/pgbench/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/pgbench.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/pgbench.log")"

log "README: every SQL block, the API table, the reference tables, PostgREST's role"
bash "$ROOT/tests/docs/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/docs.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/docs.log")"

log "pg_dump / pg_restore"
bash "$ROOT/tests/dump/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/dump.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/dump.log")"

log "upgrade from every kept release"
bash "$ROOT/tests/upgrade/run.sh" test "$TEST_PORT" | tee "${RUN_DIR}/upgrade.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/upgrade.log")"

cluster_stop test

log "maintenance scheduled with pg_cron, as README sets it up"
bash "$ROOT/tests/cron/run.sh" | tee "${RUN_DIR}/cron.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/cron.log")"

if [ "$what" = all ]; then
    log "README's first minute: the demo and its connect line"
    bash "$ROOT/tests/docs/demo.sh" | tee "${RUN_DIR}/demo-test.log"
    count "$(grep -c '^ok - ' "${RUN_DIR}/demo-test.log")"
fi

log "crash and restart while clients write"
bash "$ROOT/tests/crash/run.sh" | tee "${RUN_DIR}/crash.log"
count "$(grep -c '^ok - ' "${RUN_DIR}/crash.log")"

if [ "$what" = all ]; then
    log "Debian package: build, layout, repackaging, dpkg -i over the previous release's package, UPDATE, dpkg -r"
    bash "$ROOT/tests/package/run.sh" 15 | tee "${RUN_DIR}/package.log"
    count "$(grep -c '^ok - ' "${RUN_DIR}/package.log")"

    # The other majors, each in its own run (own clusters, own target dir).
    for run in 17:major-full 16:major-core 18:major-core; do
        major=${run%%:*}
        log "PostgreSQL ${major}: ${run#*:}"
        PG_MAJOR=$major bash "$ROOT/scripts/test.sh" "${run#*:}" 2>&1 | tee "${RUN_DIR}/test-pg${major}.log"
        count "$(sed -n 's/^usage_tracker on PostgreSQL [0-9]*: \([0-9]*\) passed.*/\1/p' "${RUN_DIR}/test-pg${major}.log")"
    done
fi

log "all tests passed"
echo "usage_tracker on PostgreSQL ${PG_MAJOR}: ${PASSED} passed, 0 failed"
