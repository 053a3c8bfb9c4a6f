#!/usr/bin/env bash
# run.sh CLUSTER PORT: runs the isolation specs against the test database.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$ROOT/tests/isolation"
out="${RUN_DIR}/isolation"
rm -rf "$out"; mkdir -p "$out"
specs=$(cd "$here/specs" && ls *.spec | sed 's/\.spec$//' | sort)
"${PGXS_DIR}/src/test/isolation/pg_isolation_regress" --use-existing \
    --host="${RUN_DIR}/${cluster}/sock" --port="$port" --user=postgres --dbname=ut_test \
    --inputdir="$here" --outputdir="$out" $specs \
    || { cat "$out/regression.diffs" 2>/dev/null; exit 1; }
