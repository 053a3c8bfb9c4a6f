-- Test helpers, installed into each scratch database before the SQL tests.
-- They switch the session to the roles PostgREST uses, with JWT claims set
-- the way PostgREST sets them (transaction-local set_config).
CREATE SCHEMA IF NOT EXISTS test_helpers;
GRANT USAGE ON SCHEMA test_helpers TO PUBLIC;

-- Fixed identities used across the tests.
CREATE OR REPLACE FUNCTION test_helpers.id(name text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE name
        WHEN 'user_a'  THEN 'aaaaaaaa-0000-4000-8000-00000000000a'
        WHEN 'user_b'  THEN 'bbbbbbbb-0000-4000-8000-00000000000b'
        WHEN 'admin_1' THEN 'adadadad-0000-4000-8000-000000000001'
        WHEN 'admin_2' THEN 'adadadad-0000-4000-8000-000000000002'
        WHEN 'org_1'   THEN '0a0a0a0a-0000-4000-8000-000000000001'
        WHEN 'org_2'   THEN '0a0a0a0a-0000-4000-8000-000000000002'
        WHEN 'org_r'   THEN '0a0a0a0a-0000-4000-8000-0000000000f0'
    END::uuid
$$;

CREATE OR REPLACE FUNCTION test_helpers.login_as(who text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'authenticated', true);
    PERFORM set_config('request.jwt.claims',
        json_build_object('sub', test_helpers.id(who), 'role', 'authenticated')::text, true);
END
$$;

CREATE OR REPLACE FUNCTION test_helpers.login_as_service() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'service_role', true);
    PERFORM set_config('request.jwt.claims', '{"role":"service_role"}', true);
END
$$;

CREATE OR REPLACE FUNCTION test_helpers.login_as_anon() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'anon', true);
    PERFORM set_config('request.jwt.claims', '{"role":"anon"}', true);
END
$$;

-- Back to the superuser that runs the test, with no claims.
CREATE OR REPLACE FUNCTION test_helpers.logout() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('request.jwt.claims', '', true);
END
$$;

-- Row count of a relation, as the superuser (bypasses RLS).
CREATE OR REPLACE FUNCTION test_helpers.count_rows(rel regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO n;
    RETURN n;
END
$$;

-- Settings the runner records for the tests (e.g. where the seed baseline is).
CREATE TABLE IF NOT EXISTS test_helpers.config (key text PRIMARY KEY, value text);
GRANT SELECT ON test_helpers.config TO PUBLIC;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA test_helpers TO PUBLIC;
