#!/usr/bin/env bash
# load_seed.sh SEED CLUSTER PORT DBNAME
# Loads a seed's SQL (the ```sql blocks of ../shared/seeds/SEED_*.txt) into a
# fresh database, as the baseline to compare with. Never copied into the
# repo. Exits 2 when the seed is absent.
set -euo pipefail
source "$(dirname "$0")/common.sh"
seed=$1 cluster=$2 port=$3 db=$4

file=$(ls "$ROOT"/../shared/seeds/"${seed}"_*.txt 2>/dev/null | head -1 || true)
if [ -z "$file" ]; then
    echo "seed ${seed} not found in ../shared/seeds" >&2
    exit 2
fi
sql="${RUN_DIR}/seed${seed}.sql"
awk '/^```sql[[:space:]]*$/{on=1; next} /^```/{on=0} on' "$file" > "$sql"
[ -s "$sql" ] || { echo "no SQL found in $file" >&2; exit 2; }

cpsql "$cluster" "$port" -d postgres -c "DROP DATABASE IF EXISTS ${db}" -c "CREATE DATABASE ${db}"
# What the seeds assume from Supabase: auth.uid(), uuid-ossp and, for seed
# 001, user_roles. pgkit's 17 and 18 trees lack uuid-ossp; there the one
# function of it a seed calls (002's uuid_generate_v4) is the core
# gen_random_uuid() under that name.
cpsql "$cluster" "$port" -d "$db" <<'SQL'
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp') THEN
    CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
  ELSE
    CREATE FUNCTION public.uuid_generate_v4() RETURNS uuid LANGUAGE sql VOLATILE AS 'SELECT gen_random_uuid()';
  END IF;
END $$;
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid $$;
CREATE TABLE public.user_roles (user_id uuid, user_role text);
SQL
# Known failures of the seeds' own SQL: seed 001's month index does not
# create on timestamptz (DESIGN.md says to expect it); seed 002 repeats its
# RLS policy in its migration notes. Anything else is a real problem.
errors=$("${PG_BIN}/psql" -X -q -h "${RUN_DIR}/${cluster}/sock" -p "$port" -U postgres -d "$db" -f "$sql" 2>&1 >/dev/null | grep ERROR || true)
unexpected=$(printf '%s\n' "$errors" | grep -v "functions in index expression must be marked IMMUTABLE" \
    | grep -v 'policy "Users can view own org usage events" for table "usage_events" already exists' | grep . || true)
if [ -n "$unexpected" ]; then
    echo "unexpected errors loading seed ${seed}:" >&2
    echo "$unexpected" >&2
    exit 1
fi
