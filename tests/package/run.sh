#!/usr/bin/env bash
# Package test: builds the .deb with scripts/package.sh and checks its
# layout and metadata, then installs it for real and runs a smoke test in a
# clean cluster (create, log usage, read a dashboard, update from a kept
# release).
#
#   tests/package/run.sh 15     Debian's PostgreSQL 15 (release build): the
#       source-built files are removed first, the previous release's package
#       (built from its commit) is installed with dpkg and used, the new one
#       upgrades it in place (dpkg -i, then ALTER EXTENSION UPDATE), dpkg -r
#       removes it cleanly, and the build the other suites use comes back.
#   tests/package/run.sh 16|17|18   pgkit's tree (no Debian server here; debug
#       build): the package's files replace the source-built ones in the
#       tree by pg_config's paths and stay there for the suites that follow.
set -euo pipefail
export PG_MAJOR=${1:?usage: tests/package/run.sh MAJOR}
source "$(dirname "$0")/../../scripts/common.sh"
PORT=55497
out="${RUN_DIR}/packages"
rm -rf "$out" && mkdir -p "$out"
pass=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
fail() { echo "not ok - $1"; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
libdir=$("$PG_CONFIG" --pkglibdir)
extdir="$("$PG_CONFIG" --sharedir)/extension"
profile=()
[ "$PG_MAJOR" = 15 ] || profile=(--debug)

deb=$(bash "$ROOT/scripts/package.sh" "${profile[@]}" "$PG_MAJOR" "$out" | tail -1)
[ "$(basename "$deb")" = "postgresql-${PG_MAJOR}-usage-tracker_${version}_amd64.deb" ] \
    && ok "package named $(basename "$deb")" || fail "unexpected package name ${deb}"

# Layout: Debian/PGDG's paths only; every kept release and upgrade script.
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort)
expected=$( {
    echo "/usr/lib/postgresql/${PG_MAJOR}/lib/usage_tracker.so"
    echo "/usr/share/postgresql/${PG_MAJOR}/extension/usage_tracker.control"
    echo "/usr/share/postgresql/${PG_MAJOR}/extension/usage_tracker--${version}.sql"
    for f in "$ROOT"/sql/releases/usage_tracker--*.sql "$ROOT"/sql/usage_tracker--*--*.sql; do
        echo "/usr/share/postgresql/${PG_MAJOR}/extension/$(basename "$f")"
    done
    echo "/usr/share/doc/postgresql-${PG_MAJOR}-usage-tracker/README.md.gz"
    echo "/usr/share/doc/postgresql-${PG_MAJOR}-usage-tracker/copyright"
} | sort)
[ "$contents" = "$expected" ] \
    && ok "files in Debian/PGDG's layout: the library, the control file, $(echo "$expected" | grep -c '\.sql$') SQL scripts (every kept release and upgrade), docs" \
    || { diff <(echo "$expected") <(echo "$contents"); fail "package contents"; }
[ "$(dpkg-deb --contents "$deb" | awk '{print $2}' | sort -u)" = "root/root" ] && ok "every file owned by root" || fail "owners"
depends=$(dpkg-deb -f "$deb" Depends)
case "$depends" in "postgresql-${PG_MAJOR}, libc6 (>= "*) ok "Depends: ${depends}" ;; *) fail "Depends: ${depends}" ;; esac
rm -rf "${out}/x1" && dpkg-deb -R "$deb" "${out}/x1"
# No Rust at run time: the library needs only the C runtime.
needed=$(objdump -p "${out}/x1/usr/lib/postgresql/${PG_MAJOR}/lib/usage_tracker.so" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')
for lib in $needed; do
    case "$lib" in libc.so.*|libgcc_s.so.*|ld-linux*|libm.so.*) ;; *) fail "the library needs ${lib}" ;; esac
done
ok "the library needs only ${needed% }"

# The smoke test, in a clean cluster: create, log, read a dashboard.
q() { cpsql pkg "$PORT" "$@"; }
smoke() { # smoke DB: the current version, a request costed, the dashboard counts it
    local res
    res=$(q -d "$1" -tA -c "SELECT extversion FROM pg_extension WHERE extname = 'usage_tracker'" \
        -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1000000, p_model_used => 'gpt-4o-mini') IS NOT NULL" \
        -c "SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log WHERE model_used = 'gpt-4o-mini'" \
        -c "SELECT usage_tracker.get_ai_usage_dashboard(30) -> 'summary' ->> 'total_requests'" | tr '\n' ' ')
    echo "$res"
}
fresh_cluster() { cluster_destroy pkg; cluster_start pkg "$PORT"; }

if [ "$PG_MAJOR" = 15 ]; then
    # Reproducible where the toolchain allows: packaging again gives the same
    # library, scripts, docs and metadata byte for byte; only pgrx's generated
    # install script may list its statements in another order (pgrx 0.18.1
    # orders objects without a dependency between them by hash order).
    deb2=$(bash "$ROOT/scripts/package.sh" 15 "${out}/again" | tail -1)
    rm -rf "${out}/x2" && dpkg-deb -R "$deb2" "${out}/x2"
    script="usr/share/postgresql/15/extension/usage_tracker--${version}.sql"
    diff -r -q -x md5sums -x "usage_tracker--${version}.sql" "${out}/x1" "${out}/x2" >/dev/null \
        || { diff -r -q "${out}/x1" "${out}/x2"; fail "packaging again changed more than the install script's order"; }
    cmp -s <(LC_ALL=C sort "${out}/x1/${script}") <(LC_ALL=C sort "${out}/x2/${script}") \
        || fail "packaging again changed the install script's statements"
    same=$(cmp -s "$deb" "$deb2" && echo "the same bytes" || echo "the same files except the install script's statement order")
    ok "packaging again: ${same} (library sha256 $(sha256sum < "${out}/x1/usr/lib/postgresql/15/lib/usage_tracker.so" | cut -c1-16))"

    # The previous release's package, built from its own commit (debug: it is
    # only the starting point of the upgrade).
    prev=$(cd "$ROOT/sql/releases" && ls usage_tracker--*.sql | sed 's/usage_tracker--\(.*\)\.sql/\1/' | sort -V | tail -1)
    # Its last commit: the parent of the commit that moved Cargo.toml's
    # version past it (later commits may have changed it without a bump).
    prev_commit= newer=
    for c in $(git -C "$ROOT" rev-list HEAD -- Cargo.toml); do
        if git -C "$ROOT" show "${c}:Cargo.toml" | grep -q "^version = \"${prev}\"$"; then
            [ -n "$newer" ] && prev_commit=$(git -C "$ROOT" rev-parse "${newer}^")
            break
        fi
        newer=$c
    done
    [ -n "$prev_commit" ] || fail "no commit of release ${prev} in the history"
    rm -rf "${out}/prev-src"
    git -C "$ROOT" worktree prune
    git -C "$ROOT" worktree add -q --detach "${out}/prev-src" "$prev_commit"
    # On any failure: no package left installed, the source build back in place.
    cleanup() {
        git -C "$ROOT" worktree remove --force "${out}/prev-src" >/dev/null 2>&1 || true
        if dpkg-query -W -f '${Status}' postgresql-15-usage-tracker 2>/dev/null | grep -q ' installed'; then
            dpkg -r postgresql-15-usage-tracker >/dev/null 2>&1 || true
        fi
        [ -e "${libdir}/usage_tracker.so" ] || install_extension >&2
        cluster_stop pkg 2>/dev/null || true
    }
    trap cleanup EXIT
    prev_deb=$(bash "$ROOT/scripts/package.sh" --debug --source "${out}/prev-src" 15 "${out}/prev" | tail -1)
    [ "$(dpkg-deb -f "$prev_deb" Version)" = "$prev" ] && ok "release ${prev}'s package built from its commit ${prev_commit:0:10}" \
        || fail "previous release package ${prev_deb}"

    # Nothing but the package may be what loads: the source-built files go.
    rm -f "${libdir}/usage_tracker.so" "${extdir}"/usage_tracker.control "${extdir}"/usage_tracker--*.sql
    dpkg -i "$prev_deb" >"${out}/dpkg.log" 2>&1 || { cat "${out}/dpkg.log"; fail "dpkg -i ${prev_deb}"; }
    fresh_cluster
    q -d postgres -q -c "CREATE DATABASE ut_pkg"
    res=$(q -d ut_pkg -tA -c "SET client_min_messages = warning" -c "CREATE EXTENSION usage_tracker" \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'usage_tracker'" \
        -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 500, p_idempotency_key => 'before-upgrade') IS NOT NULL" | tr '\n' ' ')
    [ "$res" = "${prev} t " ] && ok "dpkg -i of ${prev}'s package: CREATE EXTENSION gives ${prev}, a request logged" || fail "release ${prev}: ${res}"

    # Upgrade in place: the new package replaces the old one, then UPDATE.
    dpkg -i "$deb" >"${out}/dpkg.log" 2>&1 || { cat "${out}/dpkg.log"; fail "dpkg -i ${deb}"; }
    [ "$(dpkg-query -W -f '${Status} ${Version}' postgresql-15-usage-tracker)" = "install ok installed ${version}" ] \
        && ok "dpkg -i of the ${version} package upgrades ${prev}'s in place" || fail "dpkg status"
    dpkg -L postgresql-15-usage-tracker | grep -qx "${libdir}/usage_tracker.so" \
        && ok "the library is where pg_config --pkglibdir says" || fail "library path"
    q -d ut_pkg -q -c "ALTER EXTENSION usage_tracker UPDATE"
    res=$(smoke ut_pkg)
    kept=$(q -d ut_pkg -tA -c "SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'before-upgrade'")
    [ "$res" = "${version} t 0.15 2 " ] && [ "$kept" = 1 ] \
        && ok "ALTER EXTENSION UPDATE ${prev} -> ${version}: the old row kept, a request costed (0.15 USD), the dashboard counts both" \
        || fail "after the upgrade: ${res} (kept ${kept})"
    q -d postgres -q -c "CREATE DATABASE ut_pkg_fresh"
    q -d ut_pkg_fresh -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION usage_tracker"
    res=$(smoke ut_pkg_fresh)
    [ "$res" = "${version} t 0.15 1 " ] && ok "in a new database: CREATE EXTENSION ${version}, log, dashboard" || fail "fresh: ${res}"
    cluster_stop pkg
    cluster_destroy pkg

    dpkg -r postgresql-15-usage-tracker >/dev/null
    left=$(find "$libdir" "$extdir" -maxdepth 1 -name 'usage_tracker*' | wc -l)
    [ "$left" = 0 ] && ok "dpkg -r removes every file" || fail "dpkg -r left ${left} files"
    install_extension
else
    # pgkit's tree: the package's files replace the source-built ones.
    rm -f "${libdir}/usage_tracker.so" "${extdir}"/usage_tracker.control "${extdir}"/usage_tracker--*.sql
    install -m 0755 "${out}/x1/usr/lib/postgresql/${PG_MAJOR}/lib/usage_tracker.so" "${libdir}/"
    install -m 0644 "${out}/x1/usr/share/postgresql/${PG_MAJOR}/extension/"usage_tracker* "${extdir}/"
    ok "the package's files installed into ${PG_BIN%/bin} by pg_config's paths"
    fresh_cluster
    oldest=$(cd "$ROOT/sql/releases" && ls usage_tracker--*.sql | sed 's/usage_tracker--\(.*\)\.sql/\1/' | sort -V | head -1)
    q -d postgres -q -c "CREATE DATABASE ut_pkg" -c "CREATE DATABASE ut_pkg_fresh"
    q -d ut_pkg -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION usage_tracker VERSION '${oldest}'" \
        -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 500) IS NOT NULL" \
        -c "ALTER EXTENSION usage_tracker UPDATE" >/dev/null
    res=$(smoke ut_pkg)
    [ "$res" = "${version} t 0.15 2 " ] && ok "from the package's files: ${oldest} created, updated to ${version}, a request costed (0.15 USD), the dashboard counts both" \
        || fail "upgrade from the package's files: ${res}"
    q -d ut_pkg_fresh -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION usage_tracker"
    res=$(smoke ut_pkg_fresh)
    [ "$res" = "${version} t 0.15 1 " ] && ok "in a new database: CREATE EXTENSION ${version}, log, dashboard" || fail "fresh: ${res}"
    cluster_stop pkg
    cluster_destroy pkg
fi
echo "# ${pass} package checks passed on PostgreSQL ${PG_MAJOR}"
