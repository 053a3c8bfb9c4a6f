-- The authorization matrix, run as the real roles: anon, user A, user B,
-- an org admin, another org's admin, service_role. Functions and direct
-- table reads (RLS) both.
BEGIN;
SELECT no_plan();

-- org_1: user_a (member), admin_1 (admin). org_2: user_b (member), admin_2 (owner).
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_b'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('admin_2'), 'owner');

-- 9 rows: user_a 1 personal + 2 in org_1; user_b 1 personal + 3 in org_2;
-- admin_1 1 in org_1; admin_2 1 in org_2.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10, p_org_id => test_helpers.id('org_1')) FROM generate_series(1, 2);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 10);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 10, p_org_id => test_helpers.id('org_2')) FROM generate_series(1, 3);
SELECT usage_tracker.log_ai_usage(test_helpers.id('admin_1'), p_input_tokens => 10, p_org_id => test_helpers.id('org_1'));
SELECT usage_tracker.log_ai_usage(test_helpers.id('admin_2'), p_input_tokens => 10, p_org_id => test_helpers.id('org_2'));

CREATE TEMP TABLE matrix (who text, stmt text, expect text, descr text);
GRANT SELECT ON matrix TO PUBLIC;
INSERT INTO matrix VALUES
  -- dashboard without org: own usage plus administered orgs
  ('service', $$SELECT (usage_tracker.get_ai_usage_dashboard(30)->'summary'->>'total_requests')$$, '9', 'service_role sees everything'),
  ('user_a',  $$SELECT (usage_tracker.get_ai_usage_dashboard(30)->'summary'->>'total_requests')$$, '3', 'a user sees their own usage in every org'),
  ('user_b',  $$SELECT (usage_tracker.get_ai_usage_dashboard(30)->'summary'->>'total_requests')$$, '4', 'user B likewise'),
  ('admin_1', $$SELECT (usage_tracker.get_ai_usage_dashboard(30)->'summary'->>'total_requests')$$, '3', 'an admin sees own usage plus their org'),
  ('admin_2', $$SELECT (usage_tracker.get_ai_usage_dashboard(30)->'summary'->>'total_requests')$$, '4', 'an owner sees own usage plus their org'),
  -- dashboard of org_1
  ('service', $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))->'summary'->>'total_requests')$$, '3', 'service_role: any org'),
  ('admin_1', $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))->'summary'->>'total_requests')$$, '3', 'admin: the whole org'),
  ('user_a',  $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))->'summary'->>'total_requests')$$, '2', 'member: own usage in the org'),
  ('user_b',  $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))::text$$, '42501', 'non-member: denied'),
  ('admin_2', $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))::text$$, '42501', 'other org''s admin: denied'),
  ('anon',    $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))::text$$, '42501', 'anon: denied'),
  ('nobody',  $$SELECT usage_tracker.get_ai_usage_dashboard(30)::text$$, '42501', 'authenticated without a sub: denied'),
  ('garbled', $$SELECT usage_tracker.get_ai_usage_dashboard(30)::text$$, '42501', 'malformed claims: denied, not 22P02'),
  -- personal org
  ('user_a',  $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('user_a'))->'summary'->>'total_requests')$$, '1', 'own personal org'),
  ('admin_1', $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('user_a'))::text$$, '42501', 'someone else''s personal org: denied'),
  -- cost summary, scoped the same way
  ('user_a',  $$SELECT usage_tracker.get_ai_cost_summary()->>'requests_today'$$, '3', 'cost summary: own usage'),
  ('admin_1', $$SELECT usage_tracker.get_ai_cost_summary(test_helpers.id('org_1'))->>'requests_today'$$, '3', 'cost summary: admin''s org'),
  ('user_b',  $$SELECT usage_tracker.get_ai_cost_summary(test_helpers.id('org_1'))::text$$, '42501', 'cost summary: other org denied'),
  ('service', $$SELECT usage_tracker.get_ai_cost_summary()->>'requests_today'$$, '9', 'cost summary: service_role everything'),
  ('anon',    $$SELECT usage_tracker.get_ai_cost_summary()::text$$, '42501', 'cost summary: anon denied'),
  -- per-user usage
  ('user_a',  $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)->'summary'->>'total_requests'$$, '3', 'own per-user usage'),
  ('admin_1', $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)->'summary'->>'total_requests'$$, '2', 'admin sees a member''s usage in their org only'),
  ('service', $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)->'summary'->>'total_requests'$$, '3', 'service_role: any user'),
  ('user_b',  $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)::text$$, '42501', 'another user: denied'),
  ('admin_2', $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)::text$$, '42501', 'another org''s admin: denied'),
  ('user_a',  $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('admin_1'), 30)::text$$, '42501', 'a member cannot see their admin'),
  ('anon',    $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)::text$$, '42501', 'anon: denied'),
  -- direct reads under RLS
  ('service', $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '9', 'RLS: service_role reads all rows'),
  ('user_a',  $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '3', 'RLS: user A reads own rows'),
  ('user_b',  $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '4', 'RLS: user B reads own rows'),
  ('admin_1', $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '1', 'RLS: admins read own rows directly (org-wide via functions)'),
  ('nobody',  $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '0', 'RLS: no sub, no rows'),
  ('anon',    $$SELECT count(*)::text FROM usage_tracker.ai_usage_log$$, '42501', 'anon cannot read the log'),
  ('user_a',  $$SELECT count(*)::text FROM usage_tracker.org_members$$, '1', 'RLS: own memberships only'),
  ('service', $$SELECT count(*)::text FROM usage_tracker.org_members$$, '4', 'RLS: service_role reads all memberships'),
  ('anon',    $$SELECT count(*)::text FROM usage_tracker.org_members$$, '42501', 'anon cannot read memberships'),
  ('user_a',  $$SELECT count(*)::text FROM usage_tracker.model_prices$$, '4', 'prices are readable by users'),
  ('anon',    $$SELECT count(*)::text FROM usage_tracker.model_prices$$, '42501', 'anon cannot read prices'),
  ('user_a',  $$SELECT count(*)::text FROM usage_tracker_private.ai_usage_idempotency$$, '42501', 'internal tables are closed'),
  -- writes
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'))::text IS NOT NULL$$, 'true', 'user logs own usage (personal org)'),
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'))::text IS NOT NULL$$, 'true', 'user logs own usage in their org'),
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - interval '1 minute')::text IS NOT NULL$$, 'true', 'a minute of clock skew is fine'),
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_2'))::text$$, '42501', 'user cannot log into an org they are not in'),
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'))::text$$, '42501', 'user cannot log for another user'),
  ('user_a',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - interval '1 day')::text$$, '42501', 'user cannot backfill'),
  ('forger',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'))::text$$, '42501', 'a role claim of service_role grants nothing'),
  ('nobody',  $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'))::text$$, '42501', 'no sub: cannot log'),
  ('anon',    $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'))::text$$, '42501', 'anon cannot log'),
  ('service', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_2'), p_occurred_at => now() - interval '3 days')::text IS NOT NULL$$, 'true', 'service_role logs anything, also in the past'),
  ('user_a',  $$INSERT INTO usage_tracker.ai_usage_log (org_id, user_id, created_at) VALUES (test_helpers.id('user_a'), test_helpers.id('user_a'), now()) RETURNING 'x'$$, '42501', 'no direct inserts'),
  ('service', $$INSERT INTO usage_tracker.ai_usage_log (org_id, user_id, created_at) VALUES (test_helpers.id('user_a'), test_helpers.id('user_a'), now()) RETURNING 'x'$$, '42501', 'no direct inserts, even for service_role'),
  ('user_a',  $$UPDATE usage_tracker.ai_usage_log SET total_cost_usd = 0 RETURNING 'x'$$, '42501', 'no direct updates'),
  ('user_a',  $$DELETE FROM usage_tracker.ai_usage_log RETURNING 'x'$$, '42501', 'no direct deletes'),
  ('user_a',  $$INSERT INTO usage_tracker.org_members VALUES (test_helpers.id('org_2'), test_helpers.id('user_a'), 'owner') RETURNING 'x'$$, '42501', 'no self-service membership'),
  ('user_a',  $$SELECT usage_tracker_private.log_ai_usage(test_helpers.id('user_b'), NULL, NULL, NULL, 'report', NULL, 0, 0, 'gpt-4o', NULL, 0, 'success', NULL, NULL, NULL, NULL, NULL, 0, 0, 0, false, NULL, NULL)::text$$, '42501', 'calling the private body directly checks too'),
  -- trusted-only functions
  ('user_a',  $$SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_a'), 'owner')$$, '42501', 'users cannot manage membership'),
  ('admin_1', $$SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_b'), 'member')$$, '42501', 'not even org admins'),
  ('user_a',  $$SELECT usage_tracker.remove_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'))::text$$, '42501', 'users cannot remove members'),
  ('user_a',  $$SELECT usage_tracker_private.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_a'), 'owner')$$, '42501', 'nor through the private body'),
  ('user_a',  $$SELECT usage_tracker.set_model_price('openai', 'x', now(), 1, 1)::text$$, '42501', 'users cannot set prices'),
  ('user_a',  $$SELECT usage_tracker.add_request_type('hack')::text$$, '42501', 'users cannot add request types'),
  ('user_a',  $$SELECT usage_tracker.run_maintenance()::text$$, '42501', 'users cannot run maintenance'),
  ('anon',    $$SELECT usage_tracker.uid()::text$$, '42501', 'anon cannot even call uid()'),
  ('user_a',  $$SELECT usage_tracker.uid()::text$$, 'aaaaaaaa-0000-4000-8000-00000000000a', 'uid() is the JWT sub'),
  ('service', $$SELECT count(*)::text FROM usage_tracker.list_unknown_models()$$, '0', 'service_role lists unknown models'),
  ('user_a',  $$SELECT count(*)::text FROM usage_tracker.list_unknown_models()$$, '0', 'users list unknown models in their scope');

CREATE FUNCTION pg_temp.become(who text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE who
        WHEN 'service' THEN PERFORM test_helpers.login_as_service();
        WHEN 'anon' THEN PERFORM test_helpers.login_as_anon();
        WHEN 'nobody' THEN
            PERFORM set_config('role', 'authenticated', true);
            PERFORM set_config('request.jwt.claims', '{"role":"authenticated"}', true);
        WHEN 'garbled' THEN
            PERFORM set_config('role', 'authenticated', true);
            PERFORM set_config('request.jwt.claims', '{"sub": "not-a-uuid"', true);
        WHEN 'forger' THEN
            PERFORM set_config('role', 'authenticated', true);
            PERFORM set_config('request.jwt.claims',
                json_build_object('sub', test_helpers.id('user_a'), 'role', 'service_role')::text, true);
        ELSE PERFORM test_helpers.login_as(who);
    END CASE;
END
$$;

-- Each case runs as its role; an expected SQLSTATE must be raised,
-- otherwise the value must match.
CREATE FUNCTION pg_temp.check_case(who text, stmt text, expect text, descr text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    got text;
    result text;
BEGIN
    PERFORM pg_temp.become(who);
    IF expect IN ('42501', '22001', '22003', '22004', '22023', '23505', '25006') THEN
        result := throws_ok(stmt, expect, NULL, who || ': ' || descr);
    ELSE
        BEGIN
            EXECUTE stmt INTO got;
            result := is(got, expect, who || ': ' || descr);
        EXCEPTION WHEN OTHERS THEN
            result := fail(who || ': ' || descr || ' raised ' || SQLSTATE || ' ' || SQLERRM);
        END;
    END IF;
    PERFORM test_helpers.logout();
    RETURN result;
END
$$;

SELECT pg_temp.check_case(m.who, m.stmt, m.expect, m.descr) FROM matrix m;

-- Removing a member takes effect at once.
SELECT is(usage_tracker.remove_org_member(test_helpers.id('org_1'), test_helpers.id('user_a')), true, 'member removed');
SELECT pg_temp.check_case('user_a',
    $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'))::text$$,
    '42501', 'a removed member can no longer log into the org');
SELECT pg_temp.check_case('user_a',
    $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))::text$$,
    '42501', 'nor read its dashboard');
SELECT pg_temp.check_case('admin_1',
    $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)::text$$,
    '42501', 'and their former admin no longer sees them');
SELECT pg_temp.check_case('admin_1',
    $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))->'summary'->>'total_requests')$$,
    '4', 'their usage stays with the org');
SELECT is(usage_tracker.remove_org_member(test_helpers.id('org_1'), test_helpers.id('user_a')), false, 'removing again is a no-op');

-- Role changes take effect at once, too.
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_b'), 'admin');
SELECT pg_temp.check_case('user_b',
    $$SELECT (usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_2'))->'summary'->>'total_requests')$$,
    '5', 'a promoted member sees the whole org');

SELECT * FROM finish();
ROLLBACK;
