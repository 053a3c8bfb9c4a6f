#!/usr/bin/env bash
# Installs what the project needs on Debian bookworm, idempotently: apt
# packages, cargo-pgrx 0.18.1, the PostgreSQL tree of PG_MAJOR (Debian's 15,
# or 16-18 from ../shared/pgkit) and `cargo pgrx init` against it. Quick
# when everything is already there.
set -euo pipefail
source "$(dirname "$0")/common.sh"

APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang sudo
              postgresql-15-pgtap postgresql-15-cron libtap-parser-sourcehandler-pgtap-perl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's postgresql package starts a system cluster on 5432; ours use
# private sockets, so it is left alone.

if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
    log "installing cargo-pgrx 0.18.1 (takes several minutes once)"
    cargo install cargo-pgrx --version 0.18.1 --locked
fi

# PostgreSQL 16-18 come from ../shared/pgkit (idempotent: 0.2 s when the
# tree is there); `cargo pgrx init` merges each major into ~/.pgrx/config.toml.
if [ "$PG_MAJOR" != 15 ]; then
    kit="${ROOT}/../shared/pgkit/install.sh"
    [ -f "$kit" ] || die "PostgreSQL ${PG_MAJOR} needs ../shared/pgkit (not found)"
    bash "$kit" "$PG_MAJOR" >"${ROOT}/.pgkit-${PG_MAJOR}.log" 2>&1 \
        || { tail -30 "${ROOT}/.pgkit-${PG_MAJOR}.log" >&2; die "pgkit could not assemble PostgreSQL ${PG_MAJOR}"; }
fi
if ! grep -qs "^pg${PG_MAJOR} = \"${PG_CONFIG}\"" "${HOME}/.pgrx/config.toml"; then
    log "cargo pgrx init against ${PG_CONFIG}"
    cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG" >/dev/null
fi

# `cargo pgrx install` writes here; the postgres user must be able to read it.
mkdir -p "$RUN_DIR"
