#!/usr/bin/env bash
# Compares every privilege on usage_tracker's objects with the snapshot kept
# in tests/privileges/expected.txt. After an intended change, review the
# diff and accept it with:  cp .run/privileges.txt tests/privileges/expected.txt
#
#   tests/privileges/run.sh CLUSTER PORT
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
cluster=$1 port=$2
here="$(cd "$(dirname "$0")" && pwd)"
cpsql "$cluster" "$port" -d ut_test -tA -f "$here/snapshot.sql" > "${RUN_DIR}/privileges.txt"
if diff -u "$here/expected.txt" "${RUN_DIR}/privileges.txt"; then
    echo "ok - privileges match the snapshot ($(wc -l < "${RUN_DIR}/privileges.txt") lines)"
else
    echo "not ok - privileges differ from tests/privileges/expected.txt (review; accept with: cp .run/privileges.txt tests/privileges/expected.txt)"
    exit 1
fi
