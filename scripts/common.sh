# Shared helpers for the project's scripts: throwaway local clusters owned by
# the postgres OS user, with their socket in the project and no TCP.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PG_MAJOR (environment, default 15) picks the server: Debian's PostgreSQL 15,
# or the tree ../shared/pgkit assembles for 16, 17 and 18 in /opt/pgkit.
PG_MAJOR=${PG_MAJOR:-15}
case "$PG_MAJOR" in
    15) PG_BIN="/usr/lib/postgresql/15/bin" ;;
    16|17|18) PG_BIN="/opt/pgkit/${PG_MAJOR}/bin" ;;
    *) printf 'error: PostgreSQL %s is not supported (15, 16, 17, 18)\n' "$PG_MAJOR" >&2; exit 1 ;;
esac
PG_CONFIG="${PG_BIN}/pg_config"
# pgxs.mk is PGXS_DIR/src/makefiles/pgxs.mk in every layout.
PGXS_DIR="/usr/lib/postgresql/15/lib/pgxs"
if [ "$PG_MAJOR" != 15 ] && [ -x "$PG_CONFIG" ]; then
    PGXS_DIR="$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)"
fi
# Each major has its own scratch clusters. The cargo target directory is
# shared: cargo keeps the artifacts of each feature set apart, so the crates
# that do not depend on PostgreSQL build once for every major and switching
# majors rebuilds only pgrx's (about 50 s the first time, seconds after).
if [ "$PG_MAJOR" = 15 ]; then
    RUN_DIR="${ROOT}/.run"
else
    RUN_DIR="${ROOT}/.run-pg${PG_MAJOR}"
fi
# Cargo flags selecting the major (pg15 is the default feature).
CARGO_PG=(--no-default-features --features "pg${PG_MAJOR}")

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# cluster_start NAME PORT [extra postgres -c settings...]
# Creates (once) and starts the cluster NAME; prints nothing. Idempotent.
cluster_start() {
    local name=$1 port=$2; shift 2
    local dir="${RUN_DIR}/${name}" data="${RUN_DIR}/${name}/data" sock="${RUN_DIR}/${name}/sock"
    mkdir -p "$sock"
    chown postgres:postgres "$RUN_DIR" "$dir" "$sock" 2>/dev/null || true
    if [ ! -f "${data}/PG_VERSION" ]; then
        as_postgres "${PG_BIN}/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        {
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '${sock}'"
            echo "port = ${port}"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
            echo "shared_buffers = 512MB"
            echo "max_connections = 200"
            echo "max_locks_per_transaction = 256"
            echo "log_min_messages = warning"
            echo "TimeZone = 'UTC'"
            for setting in "$@"; do echo "$setting"; done
        } >> "${data}/postgresql.conf"
    fi
    if ! as_postgres "${PG_BIN}/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "${PG_BIN}/pg_ctl" -D "$data" -l "${dir}/server.log" -w -t 60 start >/dev/null \
            || { tail -20 "${dir}/server.log" >&2; die "cluster ${name} did not start"; }
    fi
}

cluster_stop() {
    local data="${RUN_DIR}/$1/data"
    if [ -f "${data}/PG_VERSION" ]; then
        as_postgres "${PG_BIN}/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

cluster_destroy() {
    cluster_stop "$1"
    rm -rf "${RUN_DIR:?}/$1"
}

# psql against cluster NAME/PORT: cpsql NAME PORT [psql args...]
cpsql() {
    local name=$1 port=$2; shift 2
    "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${RUN_DIR}/${name}/sock" -p "$port" -U postgres "$@"
}

# Builds (release) and installs the extension into Debian's PostgreSQL.
# install_extension [debug]: release by default (benchmarks, the PG 15 suite);
# `debug` builds in a fraction of the time (the suites on other majors).
install_extension() {
    local profile=(--release)
    [ "${1:-}" = debug ] && profile=()
    log "building and installing usage_tracker for PostgreSQL ${PG_MAJOR} (${1:-release})"
    mkdir -p "$RUN_DIR"
    (cd "$ROOT" && cargo pgrx install "${profile[@]}" --pg-config "$PG_CONFIG" "${CARGO_PG[@]}" >"${RUN_DIR}/install.log" 2>&1) \
        || { tail -40 "${RUN_DIR}/install.log" >&2; die "cargo pgrx install failed"; }
}
