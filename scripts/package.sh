#!/usr/bin/env bash
# Builds a Debian package of usage_tracker for one PostgreSQL major, in
# Debian/PGDG's layout, installable without Rust:
#
#   scripts/package.sh [--debug] [--source DIR] MAJOR [OUT_DIR]
#       MAJOR: 15 (Debian), 16, 17, 18 (../shared/pgkit)
#       --debug: a debug build (tests; minutes faster than the release build)
#       --source DIR: package another checkout (tests: the previous release)
#
# -> OUT_DIR (default target/packages)/postgresql-MAJOR-usage-tracker_VERSION_amd64.deb
#
# The library and the install script come from `cargo pgrx package`; the
# kept release scripts (sql/releases) and every upgrade script
# (sql/usage_tracker--A--B.sql) go beside them, so that CREATE EXTENSION
# ... VERSION and ALTER EXTENSION ... UPDATE work from an installed package.
# Reproducible where the toolchain allows: file times are the last commit's
# time, owners root, modes normalized, members in a fixed order (README says
# what still differs).
set -euo pipefail
profile=release
src=
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug; shift ;;
        --source) src=$(realpath "$2"); shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--debug] [--source DIR] MAJOR [OUT_DIR]" >&2; exit 2; }
export PG_MAJOR=$1
source "$(dirname "$0")/common.sh"
out_dir=$(realpath -m "${2:-${ROOT}/target/packages}")
src=${src:-$ROOT}

bash "$ROOT/scripts/setup.sh" >&2
cd "$src"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="postgresql-${PG_MAJOR}-usage-tracker"
deb="${out_dir}/${name}_${version}_amd64.deb"
# Times inside the package: the last commit's (reproducible), else now.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
# Another checkout builds in this one's target directory (shared dependencies).
export CARGO_TARGET_DIR="${ROOT}/target"

log "cargo pgrx package ${version} for PostgreSQL ${PG_MAJOR} (${profile})"
pkg_out="${ROOT}/target/${profile}/usage_tracker-${version}-pg${PG_MAJOR}"
rm -rf "$pkg_out"
mkdir -p "$out_dir"
debug_flag=()
[ "$profile" = debug ] && debug_flag=(--debug)
cargo pgrx package "${debug_flag[@]}" --pg-config "$PG_CONFIG" "${CARGO_PG[@]}" --out-dir "$pkg_out" >"${out_dir}/package-pg${PG_MAJOR}.log" 2>&1 \
    || { tail -30 "${out_dir}/package-pg${PG_MAJOR}.log" >&2; die "cargo pgrx package failed"; }

# Debian/PGDG's layout, whatever the build tree's pg_config says.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="${stage}/root"
libdir="${root}/usr/lib/postgresql/${PG_MAJOR}/lib"
extdir="${root}/usr/share/postgresql/${PG_MAJOR}/extension"
docdir="${root}/usr/share/doc/${name}"
mkdir -p "$libdir" "$extdir" "$docdir" "${stage}/DEBIAN"
so=$(find "$pkg_out" -name usage_tracker.so -type f)
[ "$(printf '%s\n' "$so" | wc -l)" = 1 ] && [ -n "$so" ] || die "expected one usage_tracker.so in ${pkg_out}"
install -m 0644 "$so" "${libdir}/usage_tracker.so"
find "$pkg_out" -name 'usage_tracker*.control' -o -name 'usage_tracker--*.sql' | while read -r f; do
    install -m 0644 "$f" "${extdir}/$(basename "$f")"
done
for f in sql/releases/usage_tracker--*.sql sql/usage_tracker--*--*.sql; do
    install -m 0644 "$f" "${extdir}/$(basename "$f")"
done
[ -f "${extdir}/usage_tracker--${version}.sql" ] || die "cargo pgrx package wrote no usage_tracker--${version}.sql"
# Library symbols: no debug info in a package (it would also carry build paths).
strip --strip-debug "${libdir}/usage_tracker.so"
cat > "${docdir}/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: usage_tracker
Comment: usage_tracker ${version}, a PostgreSQL extension built with pgrx 0.18.1.
 Third-party Rust crates linked into usage_tracker.so are listed in the
 project's Cargo.lock with their own licenses.

Files: *
Copyright: the usage_tracker authors
License: not yet chosen by the authors (see the project's README)
EOF
gzip -9n -c README.md > "${docdir}/README.md.gz"

# Dependencies: the server, and the C libraries the library links with, at the
# newest symbol version it uses (Rust's std needs libc and libgcc_s).
glibc=$(objdump -T "${libdir}/usage_tracker.so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
needed=$(objdump -p "${libdir}/usage_tracker.so" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')
depends="postgresql-${PG_MAJOR}, libc6 (>= ${glibc})"
case "$needed" in *libgcc_s*) depends="${depends}, libgcc-s1" ;; esac
for lib in $needed; do
    case "$lib" in libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libgcc_s.so.*|ld-linux*) ;;
        *) die "usage_tracker.so needs ${lib}: add it to Depends" ;;
    esac
done
installed_size=$(du -sk --apparent-size "$root" | cut -f1)
cat > "${stage}/DEBIAN/control" <<EOF
Package: ${name}
Version: ${version}
Architecture: amd64
Maintainer: usage_tracker developers <usage-tracker@localhost>
Installed-Size: ${installed_size}
Depends: ${depends}
Section: database
Priority: optional
Description: usage metering for SaaS and AI products in PostgreSQL ${PG_MAJOR}
 usage_tracker is a PostgreSQL extension: AI request logs with exact costs,
 per-organization counters, plan limits and quotas, report-run tracking,
 cache-savings analytics, incremental rollups and JSON dashboards, isolated
 per tenant by row-level security and callable from SQL, Supabase rpc() and
 PostgREST. Built for PostgreSQL ${PG_MAJOR}; needs no Rust toolchain.
EOF
(cd "$root" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs md5sum) > "${stage}/DEBIAN/md5sums"
chmod 0644 "${stage}/DEBIAN/control" "${stage}/DEBIAN/md5sums"

# Fixed modes and times; dpkg-deb sorts members and clamps times to SOURCE_DATE_EPOCH.
mv "${stage}/DEBIAN" "${root}/DEBIAN"
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
log "built ${deb}"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p' >&2
echo "$deb"
