#!/usr/bin/env bash
# Installs what the project needs on Debian bookworm, idempotently: apt
# packages, cargo-pgrx 0.18.1, and `cargo pgrx init` against Debian's
# PostgreSQL 15. Quick when everything is already there.
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

if ! grep -qs "^pg15 = \"${PG_CONFIG}\"" "${HOME}/.pgrx/config.toml"; then
    log "cargo pgrx init against ${PG_CONFIG}"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

# `cargo pgrx install` writes here; the postgres user must be able to read it.
mkdir -p "$RUN_DIR"
