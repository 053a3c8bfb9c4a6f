-- Every read applies the caller's whole scope: one row per read function,
-- one column per kind of caller (ok: allowed; 42501: refused), then data
-- checks that an allowed read shows only what the caller may see.
--   member      user_a: member of org_1 and of org_2
--   admin       admin_1: admin of org_1
--   other_admin admin_2: admin of org_2 only
--   outsider    user_b: in no organization
BEGIN;
SELECT plan(232);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('admin_2'), 'admin');
SELECT usage_tracker.create_project(test_helpers.id('org_1'), 'Scoped', '0a0a0a0a-0000-4000-8000-00000000e0e1');

-- Data: user_a in org_1 (2 requests, 1 run), in org_2 (1 request) and
-- personally (1 request); admin_1 in org_1 (1 request).
SELECT test_helpers.login_as_service();
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 100,
    p_project_id => '0a0a0a0a-0000-4000-8000-00000000e0e1');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 200,
    p_customer_id => 7);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_2'), p_input_tokens => 30);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 4);
SELECT usage_tracker.log_ai_usage(test_helpers.id('admin_1'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 5000);
SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 3);
CREATE TEMP TABLE run AS SELECT usage_tracker.start_report_run(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1')) AS id;
GRANT SELECT ON run TO PUBLIC;
SELECT usage_tracker.mark_run_success((SELECT id FROM run), p_model_used => 'gpt-4o-mini', p_input_tokens => 10);
SELECT test_helpers.logout();

CREATE TEMP TABLE reads (fn text, stmt text, anon text, outsider text, member text, other_admin text, admin text, service text);
GRANT SELECT ON reads TO PUBLIC;
INSERT INTO reads VALUES
  ('get_ai_usage_dashboard(org)', $$SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_ai_usage_dashboard()', $$SELECT usage_tracker.get_ai_usage_dashboard(30)$$, '42501', 'ok', 'ok', 'ok', 'ok', 'ok'),
  ('get_user_ai_usage', $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30)$$, '42501', '42501', 'ok', 'ok', 'ok', 'ok'),
  ('get_ai_cost_summary(org)', $$SELECT usage_tracker.get_ai_cost_summary(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('list_unknown_models(org)', $$SELECT * FROM usage_tracker.list_unknown_models(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_usage_count', $$SELECT usage_tracker.get_usage_count(test_helpers.id('org_1'), 'message', 'month')$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_message_count', $$SELECT usage_tracker.get_message_count(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_reasoning_count', $$SELECT usage_tracker.get_reasoning_count(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_usage_counts', $$SELECT usage_tracker.get_usage_counts(test_helpers.id('org_1'), 'month')$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_organization_usage_summary', $$SELECT usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), current_date - 7, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_usage_details', $$SELECT * FROM usage_tracker.get_usage_details(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_daily_by_type', $$SELECT * FROM usage_tracker.usage_daily_by_type(test_helpers.id('org_1'), current_date - 7, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_weekly', $$SELECT * FROM usage_tracker.usage_weekly(test_helpers.id('org_1'), current_date - 7, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_month_over_month', $$SELECT * FROM usage_tracker.usage_month_over_month(test_helpers.id('org_1'), current_date - 70, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_hourly_pattern', $$SELECT * FROM usage_tracker.usage_hourly_pattern(test_helpers.id('org_1'), current_date - 7, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_message_reasoning_ratio', $$SELECT * FROM usage_tracker.usage_message_reasoning_ratio(test_helpers.id('org_1'), current_date - 7, current_date)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('usage_compare_organizations', $$SELECT * FROM usage_tracker.usage_compare_organizations(current_date - 7, current_date)$$, '42501', '42501', '42501', '42501', '42501', 'ok'),
  ('check_usage_limit', $$SELECT * FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message')$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_usage_summary', $$SELECT usage_tracker.get_usage_summary(test_helpers.id('org_1'), 30)$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_usage_limits', $$SELECT usage_tracker.get_usage_limits(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_quota_status', $$SELECT usage_tracker.get_quota_status(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_budget_status', $$SELECT usage_tracker.get_budget_status(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_pending_alerts', $$SELECT usage_tracker.get_pending_alerts()$$, '42501', '42501', '42501', '42501', '42501', 'ok'),
  ('get_report_runs', $$SELECT * FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))$$, '42501', '42501', 'ok', 'ok', 'ok', 'ok'),
  ('get_report_run', $$SELECT * FROM usage_tracker.get_report_run((SELECT id FROM run))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_monthly_usage(org)', $$SELECT usage_tracker.get_monthly_usage(test_helpers.id('user_a'), test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_monthly_usage(personal)', $$SELECT usage_tracker.get_monthly_usage(test_helpers.id('user_a'))$$, '42501', '42501', 'ok', '42501', '42501', 'ok'),
  ('check_monthly_usage_limit(org)', $$SELECT usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'), 5, test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('check_monthly_usage_limit(personal)', $$SELECT usage_tracker.check_monthly_usage_limit(test_helpers.id('user_a'))$$, '42501', '42501', 'ok', '42501', '42501', 'ok'),
  ('list_projects', $$SELECT usage_tracker.list_projects(test_helpers.id('org_1'))$$, '42501', '42501', 'ok', '42501', 'ok', 'ok'),
  ('get_dashboard_stats', $$SELECT * FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-00000000e0e1', 30)$$, '42501', '42501', '42501', '42501', 'ok', 'ok'),
  ('aggregate_usage_daily', $$SELECT usage_tracker.aggregate_usage_daily('0a0a0a0a-0000-4000-8000-00000000e0e1', current_date)$$, '42501', '42501', '42501', '42501', 'ok', 'ok'),
  ('aggregate_usage_hourly', $$SELECT usage_tracker.aggregate_usage_hourly('0a0a0a0a-0000-4000-8000-00000000e0e1', now())$$, '42501', '42501', '42501', '42501', 'ok', 'ok'),
  ('verify_rollups', $$SELECT usage_tracker.verify_rollups(current_date - 1, current_date)$$, '42501', '42501', '42501', '42501', '42501', 'ok'),
  ('rollup_gaps', $$SELECT usage_tracker.rollup_gaps(current_date - 1, current_date)$$, '42501', '42501', '42501', '42501', '42501', 'ok'),
  ('limits', $$SELECT usage_tracker.limits()$$, '42501', 'ok', 'ok', 'ok', 'ok', 'ok'),
  ('uid', $$SELECT usage_tracker.uid()$$, '42501', 'ok', 'ok', 'ok', 'ok', 'ok');

CREATE FUNCTION pg_temp.check_as(kind text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE r record; expect text;
BEGIN
    FOR r IN SELECT * FROM reads ORDER BY fn LOOP
        expect := CASE kind WHEN 'anon' THEN r.anon WHEN 'outsider' THEN r.outsider WHEN 'member' THEN r.member
                            WHEN 'other_admin' THEN r.other_admin WHEN 'admin' THEN r.admin ELSE r.service END;
        IF expect = 'ok' THEN
            RETURN NEXT lives_ok(r.stmt, kind || ': ' || r.fn || ' allowed');
        ELSE
            RETURN NEXT throws_ok(r.stmt, expect, NULL, kind || ': ' || r.fn || ' refused');
        END IF;
    END LOOP;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

SELECT test_helpers.login_as_anon();
SELECT pg_temp.check_as('anon');
SELECT test_helpers.login_as('user_b');
SELECT pg_temp.check_as('outsider');
SELECT test_helpers.login_as('user_a');
SELECT pg_temp.check_as('member');
SELECT test_helpers.login_as('admin_2');
SELECT pg_temp.check_as('other_admin');
SELECT test_helpers.login_as('admin_1');
SELECT pg_temp.check_as('admin');
SELECT test_helpers.login_as_service();
SELECT pg_temp.check_as('service');

-- What an allowed read shows.
SELECT test_helpers.login_as('admin_2');
SELECT is((usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30) -> 'summary' ->> 'total_requests')::int, 1,
    'admin of org_2: a member''s usage in org_2 only');
SELECT is((SELECT count(*) FROM usage_tracker.get_report_runs(test_helpers.id('user_a'))), 0::bigint,
    'admin of org_2: none of the member''s runs in org_1');
SELECT is((usage_tracker.get_monthly_usage(test_helpers.id('user_a'), test_helpers.id('org_2')) ->> 'total_runs')::int, 0,
    'admin of org_2: monthly usage in org_2');
SELECT test_helpers.login_as('user_a');
SELECT is((usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) -> 'summary' ->> 'total_requests')::int, 3,
    'member: own requests in org_1 only (2 and the report run), not the admin''s');
SELECT is((usage_tracker.get_ai_usage_dashboard(30) -> 'summary' ->> 'total_requests')::int, 5,
    'member, no org: own requests everywhere');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1'))), 1::bigint,
    'member: own detail records only (the report run event)');
SELECT test_helpers.login_as('admin_1');
SELECT is((usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) -> 'summary' ->> 'total_requests')::int, 4,
    'admin: the whole of org_1');
SELECT is((usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30) -> 'summary' ->> 'total_requests')::int, 3,
    'admin of org_1: the member''s usage in org_1 only');
SELECT is((usage_tracker.get_monthly_usage(test_helpers.id('user_a'), test_helpers.id('org_1')) ->> 'successful_runs')::int, 1,
    'admin of org_1: the member''s run there');
SELECT test_helpers.login_as('user_b');
SELECT is((usage_tracker.get_ai_usage_dashboard(30) -> 'summary' ->> 'total_requests')::int, 0,
    'outsider, no org: nothing of anyone else');

SELECT * FROM finish();
ROLLBACK;
