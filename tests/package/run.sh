#!/usr/bin/env bash
# Package test (PostgreSQL 15, Debian's server): builds the .deb with
# scripts/package.sh, checks its layout, metadata and that packaging again
# gives the same bytes, installs it with dpkg into Debian's PostgreSQL 15,
# and on a fresh cluster creates release 0.1.0 from the package's files,
# updates to the current version and logs a request. Afterwards the package
# is removed and the build the other suites use is installed again.
#
#   tests/package/run.sh
set -euo pipefail
export PG_MAJOR=15
source "$(dirname "$0")/../../scripts/common.sh"
PORT=55497
out="${RUN_DIR}/packages"
pass=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
fail() { echo "not ok - $1"; exit 1; }

deb=$(bash "$ROOT/scripts/package.sh" 15 "$out" | tail -1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
[ "$(basename "$deb")" = "postgresql-15-usage-tracker_${version}_amd64.deb" ] && ok "package named $(basename "$deb")" \
    || fail "unexpected package name ${deb}"

# Layout: Debian/PGDG paths only, every kept release and upgrade script.
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort)
expected=$( {
    echo /usr/lib/postgresql/15/lib/usage_tracker.so
    echo /usr/share/postgresql/15/extension/usage_tracker.control
    echo "/usr/share/postgresql/15/extension/usage_tracker--${version}.sql"
    for f in "$ROOT"/sql/releases/usage_tracker--*.sql "$ROOT"/sql/usage_tracker--*--*.sql; do
        echo "/usr/share/postgresql/15/extension/$(basename "$f")"
    done
    echo /usr/share/doc/postgresql-15-usage-tracker/README.md.gz
    echo /usr/share/doc/postgresql-15-usage-tracker/copyright
} | sort)
[ "$contents" = "$expected" ] && ok "files in Debian/PGDG's layout: the library, the control file, $(echo "$expected" | grep -c '\.sql$') SQL scripts, docs" \
    || { diff <(echo "$expected") <(echo "$contents"); fail "package contents"; }
[ "$(dpkg-deb --contents "$deb" | awk '{print $2}' | sort -u)" = "root/root" ] && ok "every file owned by root" || fail "owners"
depends=$(dpkg-deb -f "$deb" Depends)
case "$depends" in "postgresql-15, libc6 (>= "*) ok "Depends: ${depends}" ;; *) fail "Depends: ${depends}" ;; esac
# No Rust at run time: the library needs only the C runtime.
needed=$(objdump -p "$(dirname "$(find "$ROOT/target/release/usage_tracker-pg15" -name usage_tracker.so | head -1)")/usage_tracker.so" \
    | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')
case "$needed" in *std-*|*rust*) fail "the library links a Rust shared library: ${needed}" ;; esac
ok "the library needs only ${needed% }"

# Reproducible where the toolchain allows: packaging again gives the same
# library, scripts, docs and metadata byte for byte; only pgrx's generated
# install script may list its statements in another order (pgrx 0.18.1
# orders objects without a dependency between them by hash order).
deb2=$(bash "$ROOT/scripts/package.sh" 15 "${out}/again" | tail -1)
rm -rf "${out}/x1" "${out}/x2"
dpkg-deb -R "$deb" "${out}/x1" && dpkg-deb -R "$deb2" "${out}/x2"
script="usr/share/postgresql/15/extension/usage_tracker--${version}.sql"
diff -r -q -x md5sums -x "usage_tracker--${version}.sql" "${out}/x1" "${out}/x2" >/dev/null \
    || { diff -r -q "${out}/x1" "${out}/x2"; fail "packaging again changed more than the install script's order"; }
cmp -s <(LC_ALL=C sort "${out}/x1/${script}") <(LC_ALL=C sort "${out}/x2/${script}") \
    || fail "packaging again changed the install script's statements"
same=$(cmp -s "$deb" "$deb2" && echo "the same bytes" || echo "the same files except the install script's statement order")
ok "packaging again: ${same} (library sha256 $(sha256sum < "${out}/x1/usr/lib/postgresql/15/lib/usage_tracker.so" | cut -c1-16))"

# Installed with dpkg into Debian's PostgreSQL 15.
dpkg -i "$deb" >"${out}/dpkg.log" 2>&1 || { cat "${out}/dpkg.log"; fail "dpkg -i"; }
trap 'dpkg -r postgresql-15-usage-tracker >/dev/null 2>&1 || true' EXIT
[ "$(dpkg-query -W -f '${Status} ${Version}' postgresql-15-usage-tracker)" = "install ok installed ${version}" ] \
    && ok "dpkg -i installs it (Depends satisfied by Debian's postgresql-15)" || fail "dpkg status"
dpkg -L postgresql-15-usage-tracker | grep -q "^$(${PG_CONFIG} --pkglibdir)/usage_tracker.so$" \
    && ok "the library is where pg_config --pkglibdir says" || fail "library path"

cluster_destroy pkg
cluster_start pkg "$PORT"
q() { cpsql pkg "$PORT" "$@"; }
q -d postgres -q -c "CREATE DATABASE ut_pkg"
oldest=$(cd "$ROOT/sql/releases" && ls usage_tracker--*.sql | sed 's/usage_tracker--\(.*\)\.sql/\1/' | sort -V | head -1)
res=$(q -d ut_pkg -tA -c "SET client_min_messages = warning" -c "CREATE EXTENSION usage_tracker VERSION '${oldest}'" \
      -c "ALTER EXTENSION usage_tracker UPDATE" \
      -c "SELECT extversion FROM pg_extension WHERE extname = 'usage_tracker'" \
      -c "SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => 1000000, p_model_used => 'gpt-4o-mini') IS NOT NULL" \
      -c "SELECT total_cost_usd FROM usage_tracker.ai_usage_log")
[ "$(echo "$res" | tr '\n' ' ')" = "${version} t 0.15 " ] \
    && ok "from the package: CREATE EXTENSION VERSION '${oldest}', UPDATE to ${version}, a logged request costed (0.15 USD)" \
    || fail "the installed package does not work: ${res}"
cluster_stop pkg
cluster_destroy pkg

dpkg -r postgresql-15-usage-tracker >/dev/null
trap - EXIT
[ ! -e "$(${PG_CONFIG} --pkglibdir)/usage_tracker.so" ] && ok "dpkg -r removes it" || fail "dpkg -r left the library"
install_extension
echo "# ${pass} package checks passed"
