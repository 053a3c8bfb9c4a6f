-- Every jsonb argument has limits (size, depth: usage_tracker.limits())
-- checked up front with 22023, nothing written; anything accepted can be
-- read back by every function that returns it, by every caller who may.
BEGIN;
SELECT plan(39);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- {"a": {"a": ... 1}} nested n levels deep.
CREATE FUNCTION pg_temp.nested(n integer) RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$ SELECT (repeat('{"a": ', n) || '1' || repeat('}', n))::jsonb $$;
CREATE FUNCTION pg_temp.big(bytes integer) RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('pad', repeat('x', bytes)) $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

SELECT is((usage_tracker.limits() -> 'metadata' ->> 'max_depth')::int, 32, 'metadata: at most 32 levels');
SELECT is((usage_tracker.limits() -> 'metadata' ->> 'max_bytes')::int, 65536, 'metadata: at most 64 KiB');
SELECT is((usage_tracker.limits() -> 'configuration_snapshot' ->> 'max_depth')::int, 32, 'snapshots: at most 32 levels');

CREATE TEMP TABLE before AS SELECT
    (SELECT count(*) FROM usage_tracker.ai_usage_log) AS log, (SELECT count(*) FROM usage_tracker.usage_events) AS events,
    (SELECT count(*) FROM usage_tracker.report_runs) AS runs, (SELECT count(*) FROM usage_tracker.plans) AS plans;

-- Too deep, too big, or not an object: 22023 for every jsonb argument, as a user.
SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE bad (descr text, stmt text);
INSERT INTO bad VALUES
  ('log_ai_usage p_metadata 33 levels', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => pg_temp.nested(33))$$),
  ('log_ai_usage p_metadata 200 levels', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => pg_temp.nested(200))$$),
  ('log_ai_usage p_metadata 70 KB', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => pg_temp.big(70000))$$),
  ('log_ai_usage p_metadata array', $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => '[1]')$$),
  ('increment metadata 33 levels', $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, NULL, pg_temp.nested(33))$$),
  ('increment metadata 70 KB', $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, NULL, pg_temp.big(70000))$$),
  ('track p_metadata 33 levels', $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'csv_upload', 1, pg_temp.nested(33))$$),
  ('track p_metadata 300 levels', $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'csv_upload', 1, pg_temp.nested(300))$$),
  ('consume p_metadata 33 levels', $$SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'csv_upload', 1, pg_temp.nested(33))$$),
  ('commit p_metadata 33 levels', $$SELECT usage_tracker.commit_reservation(test_helpers.id('org_1'),
        (usage_tracker.reserve_quota(test_helpers.id('org_1'), 'csv_upload', 1) ->> 'reservation_id')::uuid, NULL, pg_temp.nested(33))$$),
  ('start_report_run snapshot 33 levels', $$SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_configuration_snapshot => pg_temp.nested(33))$$),
  ('start_report_run snapshot 1.1 MB', $$SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_configuration_snapshot => pg_temp.big(1100000))$$),
  ('update_report_run snapshot 128 levels', $$SELECT usage_tracker.update_report_run(
        usage_tracker.start_report_run(test_helpers.id('user_a')), p_configuration_snapshot => pg_temp.nested(128))$$);
GRANT SELECT ON bad TO PUBLIC;
SELECT throws_ok(stmt, '22023', NULL, descr) FROM bad ORDER BY descr;
SELECT test_helpers.login_as_service();
SELECT throws_ok($$ SELECT usage_tracker.create_plan('deep', NULL, '{"chat_messages": {"max": 5}}') $$, '22023', NULL,
    'create_plan p_limits nested');
SELECT throws_ok($$ SELECT usage_tracker.create_plan('deep', NULL, pg_temp.nested(200)) $$, '22023', NULL,
    'create_plan p_limits 200 levels');
SELECT throws_ok($$ SELECT usage_tracker.backfill_potential_cost(current_date, current_date, pg_temp.nested(40)) $$, '22023', NULL,
    'backfill_potential_cost p_prices 40 levels');
SELECT test_helpers.logout();
SELECT results_eq($$ SELECT (SELECT count(*) FROM usage_tracker.ai_usage_log), (SELECT count(*) FROM usage_tracker.usage_events),
                            (SELECT count(*) FROM usage_tracker.report_runs), (SELECT count(*) FROM usage_tracker.plans) $$,
    $$ SELECT log, events, runs, plans FROM before $$, 'nothing written');

-- 32 levels are accepted, and read back by every reader of them.
SELECT test_helpers.login_as('user_a');
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_metadata => pg_temp.nested(32), p_session_id => 'deep') $$, 'log_ai_usage: 32 levels accepted');
SELECT lives_ok($$ SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'csv_upload', 1, pg_temp.nested(32)) $$,
    'track_usage_event: 32 levels accepted');
SELECT lives_ok($$ SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, NULL, pg_temp.nested(32)) $$,
    'increment: 32 levels accepted');
INSERT INTO bad VALUES ('deep run', usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_configuration_snapshot => pg_temp.nested(32))::text);
SELECT is((SELECT metadata FROM usage_tracker.ai_usage_log WHERE session_id = 'deep'), pg_temp.nested(32),
    'the user reads the row back (RLS)');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1')) WHERE metadata = pg_temp.nested(32)),
    2::bigint, 'get_usage_details (member)');
SELECT is((SELECT configuration_snapshot FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), pg_temp.nested(32),
    'get_report_runs (owner)');
SELECT is((SELECT configuration_snapshot FROM usage_tracker.get_report_run((SELECT stmt::uuid FROM bad WHERE descr = 'deep run'))),
    pg_temp.nested(32), 'get_report_run (owner)');
SELECT lives_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a')) $$, 'get_user_ai_usage (owner)');
SELECT test_helpers.login_as('admin_1');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1')) WHERE metadata = pg_temp.nested(32)),
    2::bigint, 'get_usage_details (admin)');
SELECT is((SELECT configuration_snapshot FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), pg_temp.nested(32),
    'get_report_runs (admin)');
SELECT lives_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a')) $$, 'get_user_ai_usage (admin)');
SELECT lives_ok($$ SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) $$, 'dashboard (admin)');
SELECT test_helpers.login_as_service();
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1')) WHERE metadata = pg_temp.nested(32)),
    2::bigint, 'get_usage_details (service_role)');
SELECT is((SELECT configuration_snapshot FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), pg_temp.nested(32),
    'get_report_runs (service_role)');
SELECT is((SELECT metadata FROM usage_tracker.ai_usage_log WHERE session_id = 'deep'), pg_temp.nested(32),
    'the log (service_role)');
SELECT is((SELECT count(*) FROM usage_tracker.usage_detail WHERE metadata = pg_temp.nested(32)), 2::bigint,
    'usage_detail (service_role)');
SELECT is(usage_tracker.run_maintenance() ->> 'ok', 'true', 'maintenance folds it');

-- Data stored deeper than the limit (before it existed) still reads back.
SELECT test_helpers.logout();
UPDATE usage_tracker.usage_events SET metadata = pg_temp.nested(140) WHERE metadata = pg_temp.nested(32) AND source = 'event';
UPDATE usage_tracker.report_runs SET configuration_snapshot = pg_temp.nested(140) WHERE configuration_snapshot = pg_temp.nested(32);
SELECT test_helpers.login_as('admin_1');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1')) WHERE metadata = pg_temp.nested(140)),
    1::bigint, 'get_usage_details reads 140 levels (legacy data)');
SELECT is((SELECT configuration_snapshot FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), pg_temp.nested(140),
    'get_report_runs reads 140 levels');

SELECT * FROM finish();
ROLLBACK;
