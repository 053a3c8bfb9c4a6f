-- Report runs (seed 004): every legal and illegal transition, monthly
-- usage and limit, usage feeding the org, authorization and bad input.
BEGIN;
SELECT plan(51);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- A user starts and completes a run (the scheduler would do it as service_role).
SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE runs (name text PRIMARY KEY, id uuid);
GRANT ALL ON runs TO PUBLIC;
INSERT INTO runs VALUES ('ok', usage_tracker.start_report_run(test_helpers.id('user_a'), test_helpers.id('org_2'), NULL,
                                                             '{"branch": "main", "frequency": "weekly"}', test_helpers.id('org_1')));
SELECT results_eq($$ SELECT status, org_id, configuration_snapshot ->> 'branch', completed_at IS NULL FROM usage_tracker.report_runs $$,
    $$ VALUES ('running', test_helpers.id('org_1'), 'main', true) $$, 'start: running, with the configuration snapshot');
SELECT ok(usage_tracker.update_report_run((SELECT id FROM runs WHERE name = 'ok'), p_commits_processed => 12,
                                          p_commit_range_from => 'abc123', p_commit_range_to => 'def456'), 'update while running');
SELECT is(usage_tracker.mark_run_success((SELECT id FROM runs WHERE name = 'ok'), p_model_used => 'gpt-4o-mini',
          p_input_tokens => 10000, p_output_tokens => 2000, p_report_content => '# Weekly report') ->> 'cost_usd',
    '0.0027', 'success: cost from the catalog (gpt-4o-mini: 10k in, 2k out = $0.0027)');
SELECT results_eq($$ SELECT status, tokens_used, cost_usd, commits_processed, report_format, completed_at IS NOT NULL FROM usage_tracker.report_runs $$,
    $$ VALUES ('success', 12000::bigint, 0.0027::numeric, 12, 'markdown', true) $$, 'the run holds tokens, cost, commits');
-- Terminal states are final.
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_failed(%L, 'late') $$, (SELECT id FROM runs WHERE name = 'ok')), '55000', NULL, 'success -> failed: refused');
SELECT throws_ok(format($$ SELECT usage_tracker.cancel_report_run(%L) $$, (SELECT id FROM runs WHERE name = 'ok')), '55000', NULL, 'success -> cancelled: refused');
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_success(%L) $$, (SELECT id FROM runs WHERE name = 'ok')), '55000', NULL, 'success -> success: refused');
SELECT throws_ok(format($$ SELECT usage_tracker.update_report_run(%L, 1) $$, (SELECT id FROM runs WHERE name = 'ok')), '55000', NULL, 'no updates after success');
-- Webhook delivery (only for successful runs).
SELECT ok(usage_tracker.record_webhook_attempt((SELECT id FROM runs WHERE name = 'ok'), false, 502), 'a failed delivery attempt');
SELECT ok(usage_tracker.record_webhook_attempt((SELECT id FROM runs WHERE name = 'ok'), true, 200), 'a delivered one');
SELECT results_eq($$ SELECT webhook_delivered, webhook_delivery_attempts, webhook_response_status, webhook_last_attempt_at IS NOT NULL FROM usage_tracker.report_runs $$,
    $$ VALUES (true, 2, 200, true) $$, 'delivery tracked');

-- Failed and cancelled runs.
INSERT INTO runs VALUES ('bad', usage_tracker.start_report_run(test_helpers.id('user_a')));
SELECT ok(usage_tracker.mark_run_failed((SELECT id FROM runs WHERE name = 'bad'), 'git clone timed out', 'GIT_TIMEOUT'), 'running -> failed');
SELECT results_eq($$ SELECT status, error_message, error_code, org_id FROM usage_tracker.report_runs WHERE id = (SELECT id FROM runs WHERE name = 'bad') $$,
    $$ VALUES ('failed', 'git clone timed out', 'GIT_TIMEOUT', test_helpers.id('user_a')) $$, 'error kept; personal org by default');
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_success(%L) $$, (SELECT id FROM runs WHERE name = 'bad')), '55000', NULL, 'failed -> success: refused');
SELECT throws_ok(format($$ SELECT usage_tracker.record_webhook_attempt(%L, true) $$, (SELECT id FROM runs WHERE name = 'bad')), '55000', NULL, 'no webhook for a failed run');
INSERT INTO runs VALUES ('cancel', usage_tracker.start_report_run(test_helpers.id('user_a')));
SELECT ok(usage_tracker.cancel_report_run((SELECT id FROM runs WHERE name = 'cancel')), 'running -> cancelled');
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_failed(%L, 'x') $$, (SELECT id FROM runs WHERE name = 'cancel')), '55000', NULL, 'cancelled -> failed: refused');
SELECT throws_ok(format($$ SELECT usage_tracker.cancel_report_run(%L) $$, (SELECT id FROM runs WHERE name = 'cancel')), '55000', NULL, 'cancelled twice: refused');

-- Monthly usage and limits: only successful runs count.
SELECT results_eq($$ SELECT total_runs, successful_runs, failed_runs, total_tokens, total_cost_usd FROM usage_tracker.user_monthly_usage $$,
    $$ VALUES (3::bigint, 1::bigint, 1::bigint, 12000::bigint, 0.0027::numeric) $$, 'user_monthly_usage');
-- Monthly reads and limits are per organization (p_org_id; the personal
-- organization by default).
SELECT is((usage_tracker.get_monthly_usage(test_helpers.id('user_a'), test_helpers.id('org_1')) ->> 'successful_runs')::int, 1, 'get_monthly_usage');
SELECT is((usage_tracker.get_monthly_usage(test_helpers.id('user_a')) ->> 'successful_runs')::int, 0, 'none in the personal organization');
SELECT is(usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'), 2, test_helpers.id('org_1')), true, '1 successful of 2: may run');
SELECT is(usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'), 1, test_helpers.id('org_1')), false, '1 of 1: may not');
SELECT is(usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1')), true, 'default: the plan''s limit (50)');
-- Enforced starts: running runs hold a place; failed and cancelled do not.
INSERT INTO runs VALUES ('r2', usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_monthly_limit => 2));
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_monthly_limit => 2) $$,
    'PT429', NULL, 'one success + one running = 2 of 2: the next start is refused with PT429');
SELECT usage_tracker.cancel_report_run((SELECT id FROM runs WHERE name = 'r2'));
SELECT lives_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_monthly_limit => 2) $$,
    'a cancelled run gives its place back');

-- The successful run appears in the organization's usage.
SELECT test_helpers.logout();
SELECT results_eq($$ SELECT event_type, quantity, user_id FROM usage_tracker.usage_events $$,
    $$ VALUES ('report_run', 1::bigint, test_helpers.id('user_a')) $$, 'a report_run event');
SELECT results_eq($$ SELECT request_type, input_tokens, output_tokens, total_cost_usd, org_id FROM usage_tracker.ai_usage_log $$,
    $$ VALUES ('report', 10000::bigint, 2000::bigint, 0.0027::numeric, test_helpers.id('org_1')) $$, 'and its tokens and cost in the AI log');

-- Authorization.
SELECT test_helpers.login_as('admin_1');
SELECT is((SELECT count(*) FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), 3::bigint, 'admins see a member''s runs in their org (and only there)');
SELECT is((SELECT count(*) FROM usage_tracker.get_report_run((SELECT id FROM runs WHERE name = 'ok'))), 1::bigint, 'and each run there');
SELECT throws_ok(format($$ SELECT usage_tracker.cancel_report_run(%L) $$, (SELECT id FROM runs WHERE name = 'ok')), '42501', NULL,
    'but do not change them');
SELECT test_helpers.login_as('user_b');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_report_runs(test_helpers.id('user_a')) $$, '42501', NULL, 'other users see nothing');
SELECT throws_ok(format($$ SELECT * FROM usage_tracker.get_report_run(%L) $$, (SELECT id FROM runs WHERE name = 'bad')), '42501', NULL, 'not even one run');
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_a')) $$, '42501', NULL, 'nor start runs for them');
SELECT is((SELECT count(*) FROM usage_tracker.report_runs), 0::bigint, 'RLS: no rows of others');
SELECT test_helpers.login_as('user_a');
SELECT is((SELECT count(*) FROM usage_tracker.get_report_runs(test_helpers.id('user_a'), 2, 1)), 2::bigint, 'own runs, with limit and offset');
SELECT test_helpers.login_as_anon();
SELECT throws_ok($$ SELECT * FROM usage_tracker.user_monthly_usage $$, '42501', NULL, 'anon: nothing');
SELECT test_helpers.login_as_service();
SELECT is((SELECT count(*) FROM usage_tracker.get_report_runs(test_helpers.id('user_a'), 1000)), 5::bigint, 'service_role: everything');

-- Stuck runs are failed by maintenance.
SELECT test_helpers.logout();
UPDATE usage_tracker.report_runs SET started_at = now() - interval '2 hours' WHERE status = 'running';
SELECT is((usage_tracker.run_maintenance() ->> 'report_runs_timed_out')::int, 1, 'a run running for 2 hours is timed out');
SELECT results_eq($$ SELECT status, error_code FROM usage_tracker.report_runs WHERE started_at < now() - interval '1 hour' $$,
    $$ VALUES ('failed', 'TIMEOUT') $$, 'failed with code TIMEOUT');

-- Bad input: specific SQLSTATEs, nothing written.
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM usage_tracker.report_runs) AS runs,
    (SELECT sum(webhook_delivery_attempts) FROM usage_tracker.report_runs) AS attempts;
SELECT test_helpers.login_as_service();
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(NULL) $$, '22004', NULL, 'NULL user');
SELECT throws_ok($$ SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_configuration_snapshot => '[1]') $$, '22023', NULL, 'snapshot not an object');
SELECT throws_ok(format($$ SELECT usage_tracker.mark_run_success(%L, -1) $$, (SELECT id FROM runs WHERE name = 'r2')), '22003', NULL, 'negative tokens');
SELECT throws_ok($$ SELECT usage_tracker.mark_run_success(gen_random_uuid(), p_cost_usd => -0.01) $$, '22003', NULL, 'negative cost');
SELECT throws_ok($$ SELECT usage_tracker.mark_run_success(gen_random_uuid(), p_report_format => 'docx') $$, '22023', NULL, 'unknown format');
SELECT throws_ok($$ SELECT usage_tracker.mark_run_success(gen_random_uuid(), p_report_content => repeat('x', 1048577)) $$, '22001', NULL, 'content over 1 MiB characters');
SELECT throws_ok($$ SELECT usage_tracker.mark_run_failed(gen_random_uuid(), NULL) $$, '22004', NULL, 'failure without a message');
SELECT throws_ok($$ SELECT usage_tracker.cancel_report_run(gen_random_uuid()) $$, '22023', NULL, 'unknown run');
SELECT throws_ok($$ SELECT usage_tracker.record_webhook_attempt(gen_random_uuid(), true, 999) $$, '22003', NULL, 'HTTP status 999');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_report_runs(test_helpers.id('user_a'), 0) $$, '22003', NULL, 'limit 0');
SELECT test_helpers.logout();
SELECT is((SELECT count(*) FROM usage_tracker.report_runs), (SELECT runs FROM before), 'nothing written');

SELECT * FROM finish();
ROLLBACK;
