-- What an adversarial tenant could drive through: keys in the extension's
-- own namespace, retries with another payload, reservations and runs of
-- others, self-raised limits and costs, budgets and members that do not
-- belong, maintenance one step can stop, error details, and validation
-- answering before authorization. As the real roles.
BEGIN;
SELECT plan(66);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- Keys the extension derives for itself: a user who logs a report run's
-- old key first cannot make the run's cost vanish.
SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE run AS SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1')) AS id;
GRANT SELECT ON run TO PUBLIC;
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_idempotency_key => 'report-run:' || (SELECT id FROM run));
SELECT usage_tracker.mark_run_success((SELECT id FROM run), p_model_used => 'gpt-4o-mini',
    p_input_tokens => 10000, p_output_tokens => 2000);
SELECT is((SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE metadata ->> 'report_run_id' = (SELECT id FROM run)::text),
    0.0027::numeric, 'the run''s cost is in the AI log although its old key was taken');
SELECT is((SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log), 0.0027::numeric, 'one cost, counted once');

-- A retry with the same key: the same payload returns the first id; a
-- different one is refused and writes nothing.
CREATE TEMP TABLE first AS SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10,
    p_metadata => '{"b": 1, "a": 2}', p_idempotency_key => 'k-1') AS id;
GRANT SELECT ON first TO PUBLIC;
SELECT is(usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10,
    p_metadata => '{"a": 2, "b": 1}', p_idempotency_key => 'k-1'), (SELECT id FROM first),
    'same payload (same JSON, other key order): the first id');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 11, p_idempotency_key => 'k-1') $$,
    '23505', NULL, 'other tokens: refused');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10,
    p_metadata => '{"a": 3, "b": 1}', p_idempotency_key => 'k-1') $$, '23505', NULL, 'other metadata: refused');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10,
    p_metadata => '{"b": 1, "a": 2}', p_model_used => 'gpt-4o', p_idempotency_key => 'k-1') $$, '23505', NULL, 'other model: refused');
SELECT test_helpers.login_as_service();
CREATE TEMP TABLE parts AS SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'usage_tracker.ai_usage_log'::regclass;
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 10,
    p_metadata => '{"b": 1, "a": 2}', p_idempotency_key => 'k-1', p_occurred_at => now() - interval '7 months') $$, '23505', NULL,
    'another time (a backfill retry): refused');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'usage_tracker.ai_usage_log'::regclass), (SELECT n FROM parts),
    'and the refused retry created no partition');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'k-1'), 1::bigint, 'one row');

-- Reservations: only the user who reserved, admins and service_role resolve them.
SELECT test_helpers.login_as('admin_1');
CREATE TEMP TABLE res AS SELECT 'admin' AS who, (usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 2) ->> 'reservation_id')::uuid AS id;
GRANT ALL ON res TO PUBLIC;
SELECT test_helpers.login_as_service();
INSERT INTO res SELECT 'service', (usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 2) ->> 'reservation_id')::uuid;
SELECT test_helpers.login_as('user_a');
INSERT INTO res SELECT 'member', (usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 2) ->> 'reservation_id')::uuid;
SELECT throws_ok(format($$ SELECT usage_tracker.commit_reservation(%L, %L) $$, test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'admin')),
    '42501', NULL, 'a member cannot commit an admin''s reservation');
SELECT throws_ok(format($$ SELECT usage_tracker.release_reservation(%L, %L) $$, test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'service')),
    '42501', NULL, 'nor release service_role''s');
SELECT is((usage_tracker.commit_reservation(test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'member'), 1)) ->> 'committed', 'true',
    'but commits their own');
SELECT test_helpers.login_as('admin_1');
SELECT is(usage_tracker.release_reservation(test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'service')), true,
    'an admin releases service_role''s');
SELECT test_helpers.login_as_service();
SELECT is((usage_tracker.commit_reservation(test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'admin'))) ->> 'committed', 'true',
    'service_role commits the admin''s');

-- Report run limits come from the plan for users; a user may only lower them.
SELECT usage_tracker.create_plan('two_runs', NULL, '{"report_runs_per_user": 2}');
SELECT usage_tracker.set_org_plan(test_helpers.id('org_2'), 'two_runs');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_b'), 'member');
SELECT test_helpers.login_as('user_b');
SELECT lives_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_monthly_limit => 100) $$,
    'run 1 of the plan''s 2');
SELECT lives_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2')) $$, 'run 2 of 2');
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_monthly_limit => 100) $$,
    'PT429', NULL, 'a user cannot raise the plan''s limit with p_monthly_limit');
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_enforce_limit => false) $$,
    '42501', NULL, 'nor switch it off');
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_monthly_limit => 1) $$,
    'PT429', NULL, 'a lower p_monthly_limit applies');
SELECT is(usage_tracker.check_monthly_usage_limit(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2')), true,
    'check: none successful yet, of the plan''s 2');
SELECT test_helpers.login_as_service();
SELECT lives_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_enforce_limit => true, p_monthly_limit => 3) $$,
    'service_role may set a higher limit');
SELECT is((SELECT count(*) FROM usage_tracker.report_runs WHERE user_id = test_helpers.id('user_b')), 3::bigint, 'three runs, no more');

-- One cost per run: from the catalog, unless service_role sets it.
SELECT test_helpers.login_as('user_b');
CREATE TEMP TABLE run_b AS SELECT min(id::text)::uuid AS id FROM usage_tracker.report_runs WHERE user_id = test_helpers.id('user_b');
GRANT SELECT ON run_b TO PUBLIC;
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_success(%L, p_model_used => 'gpt-4o-mini', p_input_tokens => 10000, p_cost_usd => 0) $$,
    (SELECT id FROM run_b)), '42501', NULL, 'a user cannot set the run''s cost');
SELECT is((SELECT status FROM usage_tracker.report_runs WHERE id = (SELECT id FROM run_b)), 'running', 'nothing written');
SELECT test_helpers.login_as_service();
SELECT is(usage_tracker.mark_run_success((SELECT id FROM run_b), p_model_used => 'gpt-4o-mini',
    p_input_tokens => 10000, p_cost_usd => 1.5) -> 'cost_usd', '1.5'::jsonb, 'service_role sets it (a JSON number)');
SELECT results_eq($$ SELECT r.cost_usd, l.total_cost_usd, l.input_cost_usd + l.output_cost_usd FROM usage_tracker.report_runs r
                     JOIN usage_tracker.ai_usage_log l ON l.metadata ->> 'report_run_id' = r.id::text
                    WHERE r.id = (SELECT id FROM run_b) $$,
    $$ VALUES (1.5, 1.5, 1.5) $$, 'the AI log carries the same cost');

-- Budgets for members only; personal organizations have no members.
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 10, test_helpers.id('user_b')) $$, '22023', NULL,
    'a budget for someone outside the organization is refused');
SELECT throws_ok($$ SELECT usage_tracker.set_org_member(test_helpers.id('user_a'), test_helpers.id('user_b')) $$, '22023', NULL,
    'a user''s personal organization cannot get members');
SELECT is((SELECT count(*) FROM usage_tracker.org_members WHERE org_id = test_helpers.id('user_a')), 0::bigint, 'none written');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 10, test_helpers.id('user_b')) $$, '22023', NULL,
    'also for an admin');
SELECT isa_ok(usage_tracker.set_budget(test_helpers.id('org_1'), 10, test_helpers.id('user_a')), 'uuid', 'a member''s budget is fine');

-- Maintenance: one failing step does not stop the others.
SELECT test_helpers.login_as_service();
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 3);
SET LOCAL usage_tracker.report_run_timeout = 'not an interval';
CREATE TEMP TABLE m AS SELECT usage_tracker.run_maintenance() AS r;
RESET usage_tracker.report_run_timeout;
SELECT is((SELECT r ->> 'ok' FROM m), 'false', 'a failed step is reported');
SELECT is((SELECT r -> 'errors' -> 0 ->> 'step' FROM m), 'report_runs_timed_out', 'which one');
SELECT is((SELECT r -> 'errors' -> 0 ->> 'sqlstate' FROM m), '22007', 'with its SQLSTATE');
SELECT ok((SELECT (r -> 'rollups' ->> 'rows_folded')::int >= 1 FROM m), 'the fold ran anyway');
SELECT ok((SELECT r ? 'partitions_created' AND r ? 'retention' AND r -> 'retention' <> 'null' FROM m), 'and every other step');

-- Clients get a SQLSTATE and a clear message: no detail, no statement, no backtrace.
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text; h text; c text;
BEGIN
    EXECUTE stmt;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT,
                            c = PG_EXCEPTION_CONTEXT;
    RETURN ARRAY[s, m, d, h, c];
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;
SELECT test_helpers.logout();
UPDATE usage_tracker_private.quota_usage SET used = 9223372036854775000
 WHERE org_id = test_helpers.id('org_1') AND slot = pg_backend_pid() % 16;
SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE e AS SELECT pg_temp.error_of($$ SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1000000000000000) $$) AS x;
SELECT is((SELECT x[1] FROM e), '22003', 'an overflow inside the extension: 22003');
SELECT is((SELECT x[3] FROM e), '', 'no detail');
SELECT unalike((SELECT x[2] || x[5] FROM e), '%usage_tracker_private.%', 'neither message nor context shows internal SQL');
SELECT unalike((SELECT lower(x[2] || x[3] || x[5]) FROM e), '%backtrace%', 'no backtrace (the test server runs with RUST_BACKTRACE=1)');
SELECT unalike((SELECT lower(x[2] || x[3] || x[5]) FROM e), '%.rs:%', 'no Rust source locations');
SELECT test_helpers.login_as('user_b');
CREATE TEMP TABLE e2 AS SELECT pg_temp.error_of($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => -1) $$) AS x;
SELECT is((SELECT x[1] || ' ' || x[3] FROM e2), '42501 ', 'another user''s id with a bad argument: 42501, not 22003');

-- Authorization before validation, for every kind of write and read.
CREATE TEMP TABLE authz (descr text, stmt text);
GRANT SELECT ON authz TO PUBLIC;
INSERT INTO authz VALUES
  ('log_ai_usage for another user, bad tokens', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => -1)$$),
  ('log_ai_usage in a foreign org, bad status', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_1'), p_status => 'nope')$$),
  ('track in a foreign org, unknown type', $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'teleport', -1)$$),
  ('consume in a foreign org, bad quantity', $$SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', -1)$$),
  ('reserve in a foreign org, bad ttl', $$SELECT usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', -1, 0)$$),
  ('increment in a foreign org, bad type', $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), '', -1)$$),
  ('commit in a foreign org, bad quantity', format($$SELECT usage_tracker.commit_reservation(%L, %L, -1)$$, test_helpers.id('org_1'), (SELECT id FROM res WHERE who = 'member'))),
  ('details of a foreign org, limit 0', $$SELECT * FROM usage_tracker.get_usage_details(test_helpers.id('org_1'), p_limit => 0)$$),
  ('summary of a foreign org, 0 days', $$SELECT usage_tracker.get_usage_summary(test_helpers.id('org_1'), 0)$$),
  ('check in a foreign org, unknown type', $$SELECT * FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'teleport')$$),
  ('dashboard of a foreign org, 0 days', $$SELECT usage_tracker.get_ai_usage_dashboard(0, test_helpers.id('org_1'))$$),
  ('another user''s usage, 0 days', $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 0)$$),
  ('another user''s run, negative tokens', format($$SELECT usage_tracker.mark_run_success(%L, -1)$$, (SELECT id FROM run))),
  ('another user''s run, update with negative tokens', format($$SELECT usage_tracker.update_report_run(%L, p_tokens_used => -1)$$, (SELECT id FROM run))),
  ('another user''s run, failed without message', format($$SELECT usage_tracker.mark_run_failed(%L, NULL)$$, (SELECT id FROM run))),
  ('another user''s run, HTTP status 999', format($$SELECT usage_tracker.record_webhook_attempt(%L, true, 999)$$, (SELECT id FROM run))),
  ('another user''s runs, limit 0', $$SELECT * FROM usage_tracker.get_report_runs(test_helpers.id('user_a'), 0)$$),
  ('a run for another user, bad snapshot', $$SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_configuration_snapshot => '[1]')$$),
  ('another user''s monthly check, negative limit', $$SELECT usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'), -1)$$),
  ('budget of a foreign org, negative', $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), -5)$$),
  ('project in a foreign org, blank name', $$SELECT usage_tracker.create_project(test_helpers.id('org_1'), '')$$),
  ('price, bad provider', $$SELECT usage_tracker.set_model_price('BAD PROVIDER', 'm', now(), -1, -1)$$),
  ('plan, bad limits', $$SELECT usage_tracker.create_plan('x', NULL, '[1]')$$),
  ('backfill, no range', $$SELECT usage_tracker.backfill_potential_cost(NULL, NULL)$$);
SELECT throws_ok(stmt, '42501', NULL, 'outsider: ' || descr) FROM authz ORDER BY descr;

SELECT * FROM finish();
ROLLBACK;
