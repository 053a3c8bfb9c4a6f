-- Adversarial callers: forged settings and claims, stale or broken claims in
-- a reused session, functions and operators shadowing the catalog's in a
-- caller's search_path, writes in read-only (GET) transactions, and a
-- hostile schema name at install time.
BEGIN;
SELECT plan(22);

INSERT INTO usage_tracker.org_members (org_id, user_id, role)
VALUES (test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin'),
       (test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.log_ai_usage(test_helpers.id('admin_1'), p_input_tokens => 50, p_org_id => test_helpers.id('org_1'));
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 70);

-- Forged settings: the app.* and request.header.* names other systems trust,
-- and a claim saying service_role. Identity comes from the claims' sub,
-- trust from the session role only.
SELECT test_helpers.login_as('user_a');
SELECT set_config('request.jwt.claims', json_build_object('sub', test_helpers.id('user_a'), 'role', 'service_role')::text, true);
SELECT set_config('app.current_org_id', test_helpers.id('org_1')::text, true);
SELECT set_config('app.current_user_id', test_helpers.id('admin_1')::text, true);
SELECT set_config('app.role', 'admin', true);
SELECT set_config('request.headers', json_build_object('x-user-id', test_helpers.id('user_b'))::text, true);
SELECT set_config('request.header.x_user_id', test_helpers.id('user_b')::text, true);
SELECT set_config('request.jwt.claim.sub', test_helpers.id('user_b')::text, true);
SELECT set_config('request.jwt.claim.role', 'service_role', true);
SELECT throws_ok($$ SELECT usage_tracker.run_maintenance() $$, '42501', NULL, 'a role claim is not trust');
SELECT is(usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) -> 'summary' ->> 'total_requests', '0',
    'app.* settings make nobody an admin: a member sees only their own rows of the organization');
SELECT is(usage_tracker.get_ai_usage_dashboard(30) -> 'summary' ->> 'total_requests', '0',
    'a member sees only their own usage (none), not the forged user''s or org''s');
SELECT throws_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_b'), 30) $$, '42501', NULL,
    'request.jwt.claim.sub does not override the claims'' sub');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log), 0::bigint, 'direct reads: RLS shows none of the others'' rows');
SELECT test_helpers.logout();

-- Stale, empty and broken claims in a reused session: 42501, never 22P02.
SELECT test_helpers.login_as('user_a');
SELECT lives_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30) $$, 'signed in');
CREATE FUNCTION pg_temp.as_claims(c text) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims', c, true), set_config('request.jwt.claim.sub', '', true) $$;
SELECT pg_temp.as_claims('');
SELECT throws_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30) $$, '42501', NULL, 'empty claims');
SELECT pg_temp.as_claims('{}');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a')) $$, '42501', NULL, 'claims without sub');
SELECT pg_temp.as_claims('{"sub": "not-a-uuid"}');
SELECT throws_ok($$ SELECT usage_tracker.get_ai_usage_dashboard(30) $$, '42501', NULL, 'a sub that is not a uuid');
SELECT pg_temp.as_claims('{"sub": ');
SELECT throws_ok($$ SELECT usage_tracker.get_ai_cost_summary() $$, '42501', NULL, 'claims that are not JSON');
SELECT pg_temp.as_claims('{"sub": 42}');
SELECT throws_ok($$ SELECT usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$, '42501', NULL, 'a numeric sub');
SELECT test_helpers.logout();

-- Shadowing: the caller's search_path puts their own schema, with
-- look-alike functions, operators and tables, before pg_catalog.
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
CREATE FUNCTION evil.uuid_eq_evil(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq_evil);
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'owner' $$;
CREATE TABLE evil.org_members (org_id uuid, user_id uuid, role text);
INSERT INTO evil.org_members VALUES (test_helpers.id('org_1'), test_helpers.id('user_b'), 'owner');
GRANT USAGE ON SCHEMA evil TO authenticated;
GRANT SELECT ON evil.org_members TO authenticated;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO authenticated;
SELECT test_helpers.login_as('user_b');
SET LOCAL search_path = evil, usage_tracker, pg_catalog, public;
SELECT throws_ok($$ SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) $$, '42501', NULL,
    'a look-alike org_members table and = operator grant nothing');
CREATE TEMP TABLE shadow AS SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_session_id => 'shadowed') AS id;
SELECT test_helpers.logout();
RESET search_path;
SELECT isnt((SELECT id FROM shadow), '00000000-0000-0000-0000-000000000000'::uuid, 'ids come from pg_catalog.gen_random_uuid');
SELECT ok((SELECT created_at > '2020-01-01' FROM usage_tracker.ai_usage_log WHERE session_id = 'shadowed'),
    'times from the real clock');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE session_id = 'shadowed' AND org_id = test_helpers.id('user_b')),
    1::bigint, 'the row went to the caller''s own organization');

-- GET requests are read-only transactions: every write fails with 25006.
SELECT test_helpers.login_as_service();
-- The read-only setting lives in a subtransaction that is always undone.
CREATE FUNCTION pg_temp.read_only_fails(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text := 'no error';
BEGIN
    BEGIN
        PERFORM set_config('transaction_read_only', 'on', true);
        BEGIN
            EXECUTE sql;
        EXCEPTION WHEN OTHERS THEN
            state := SQLSTATE;
        END;
        RAISE EXCEPTION USING ERRCODE = 'P0002';
    EXCEPTION WHEN no_data_found THEN
        RETURN state;
    END;
END $$;
SELECT is(pg_temp.read_only_fails(s), '25006', 'read-only: ' || s) FROM (VALUES
    ($$ SELECT usage_tracker.track_usage_event('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message') $$),
    ($$ SELECT usage_tracker.consume_quota('0a0a0a0a-0000-4000-8000-000000000001', 'chat_message') $$),
    ($$ SELECT usage_tracker.run_maintenance() $$),
    ($$ SELECT usage_tracker.create_project('0a0a0a0a-0000-4000-8000-000000000001', 'p') $$)) v(s);
SELECT test_helpers.logout();
SELECT is((SELECT count(*) FROM usage_tracker.usage_events) + (SELECT count(*) FROM usage_tracker.projects), 0::bigint,
    'nothing written');

-- A hostile schema name at install time changes nothing: the extension
-- only installs into usage_tracker.
DROP EXTENSION usage_tracker;
CREATE SCHEMA "x""; DROP TABLE test_helpers.config; --";
SELECT throws_ok($$ CREATE EXTENSION usage_tracker SCHEMA "x""; DROP TABLE test_helpers.config; --" $$, '0A000', NULL,
    'CREATE EXTENSION into another schema is refused');
SELECT has_table('test_helpers', 'config', 'and nothing was injected');

SELECT * FROM finish();
ROLLBACK;
