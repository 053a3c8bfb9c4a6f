-- Arithmetic never fails open: totals past bigint are refused (22003)
-- before anything is written, never wrapped or read as zero; a quota
-- decision never says yes on arithmetic it could not do; one tenant's
-- totals cannot break maintenance or reads over many tenants. States a
-- long history would reach are set up directly, as the superuser.
BEGIN;
SELECT plan(25);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_b'), 'member');

-- Quotas: used near the top of bigint (trial: 50 chat messages).
SELECT test_helpers.login_as('user_a');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1);
SELECT test_helpers.logout();
-- (Period rows are spread over slots; this backend writes to its own.)
UPDATE usage_tracker_private.quota_usage SET used = 9223372036854775000
 WHERE org_id = test_helpers.id('org_1') AND limit_key = 'chat_messages' AND slot = pg_backend_pid() % 16;
CREATE TEMP TABLE counts AS SELECT (SELECT count(*) FROM usage_tracker.usage_events) AS events,
    (SELECT sum(count) FROM usage_tracker.organization_usage) AS counters;
SELECT test_helpers.login_as('user_a');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 1000) ->> 'allowed', 'false',
    'consume: used + quantity past 2^63 is not allowed (it used to wrap to allowed)');
SELECT is((SELECT within_limit FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message')), false,
    'check_usage_limit: not within the limit');
SELECT is(usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 1000) ->> 'allowed', 'false',
    'reserve: not allowed');
SELECT is(usage_tracker.get_quota_status(test_helpers.id('org_1')) ->> 'status', 'over_limit',
    'quota status: over_limit (current * 100 does not wrap)');
SELECT throws_ok($$ SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1000000000000000) $$,
    '22003', NULL, 'an event that would push the period total past bigint is refused');
SELECT throws_ok($$ SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 1000000000000000, p_raise_on_limit => true) $$,
    'PT429', NULL, 'and consume with p_raise_on_limit answers 429, not a wrapped yes');
SELECT test_helpers.logout();
SELECT is((SELECT count(*) FROM usage_tracker.usage_events), (SELECT events FROM counts), 'nothing written');
SELECT is((SELECT sum(count) FROM usage_tracker.organization_usage), (SELECT counters FROM counts), 'no counter changed');

-- Open reservations whose sum is past bigint (10,000 of 10^15) hold the limit.
INSERT INTO usage_tracker.quota_reservations (org_id, user_id, event_type, quantity, period_start, expires_at)
SELECT test_helpers.id('org_2'), test_helpers.id('user_b'), 'chat_message', 1000000000000000,
       date_trunc('month', now() AT TIME ZONE 'UTC')::date, now() + interval '1 hour'
  FROM generate_series(1, 10000);
SELECT test_helpers.login_as('user_b');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_2'), 'chat_message', 1) ->> 'allowed', 'false',
    'reserved past bigint: consume is not allowed');
SELECT is((SELECT within_limit FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'chat_message')), false,
    'and check_usage_limit says so, without an error');
SELECT is((usage_tracker.get_usage_limits(test_helpers.id('org_2')) -> 'limits' -> 'chat_messages' ->> 'reserved'),
    '10000000000000000000', 'get_usage_limits shows the exact reserved total');
SELECT test_helpers.logout();

-- Period counts past bigint: an error, never 0; the JSON reads show the truth.
INSERT INTO usage_tracker.organization_usage (org_id, type, date, count, events)
VALUES (test_helpers.id('org_r'), 'message', date_trunc('month', current_date)::date, 9223372036854775000, 1),
       (test_helpers.id('org_r'), 'message', (date_trunc('month', current_date) + interval '1 day')::date, 9223372036854775000, 1);
SELECT test_helpers.login_as_service();
SELECT throws_ok($$ SELECT usage_tracker.get_message_count(test_helpers.id('org_r'), 'month') $$, '22003', NULL,
    'get_message_count past bigint: 22003 (it used to return 0)');
SELECT is(usage_tracker.get_usage_counts(test_helpers.id('org_r'), 'month') ->> 'message', '18446744073709550000',
    'get_usage_counts: the exact total');
SELECT is((SELECT count FROM usage_tracker.usage_compare_organizations(date_trunc('month', current_date)::date,
              (date_trunc('month', current_date) + interval '1 month - 1 day')::date, 'message')
            WHERE org_id = test_helpers.id('org_r')), 18446744073709550000::numeric,
    'usage_compare_organizations: numeric counts, exact');
SELECT ok((SELECT count(*) FROM usage_tracker.usage_compare_organizations(date_trunc('month', current_date)::date,
              (date_trunc('month', current_date) + interval '1 month - 1 day')::date)) >= 2,
    'and the other organizations are still compared');
SELECT is(usage_tracker.get_usage_summary(test_helpers.id('org_r'), 30) -> 'summary_by_type' -> 'message' ->> 'count', '2',
    'get_usage_summary works past bigint');

-- Budgets: a spend beyond any Decimal still compares and alerts once.
SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 100);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_input_tokens => 1000, p_model_used => 'gpt-4o');
SELECT test_helpers.logout();
UPDATE usage_tracker_private.budget_spend SET spent_usd = 1e40 WHERE org_id = test_helpers.id('org_1') AND slot = 0;
SELECT test_helpers.login_as_service();
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_input_tokens => 1000, p_model_used => 'gpt-4o') $$, 'logging against a huge spend works');
SELECT is((SELECT array_agg(threshold_pct ORDER BY threshold_pct) FROM usage_tracker.budget_alerts
            WHERE org_id = test_helpers.id('org_1')), '{80,100}'::integer[], 'both thresholds alerted');
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_input_tokens => 1000, p_model_used => 'gpt-4o') $$, 'and again');
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts WHERE org_id = test_helpers.id('org_1')), 2::bigint,
    'each once');
SELECT ok((usage_tracker.get_budget_status(test_helpers.id('org_1')) -> 0 ->> 'spent_usd')::numeric > 1e40,
    'budget status reads the exact spend');

-- Rollups: one organization's token sums past bigint cannot stop the fold.
SELECT usage_tracker.run_maintenance();
SELECT test_helpers.logout();
UPDATE usage_tracker.ai_usage_daily SET input_tokens = 9223372036854775807, total_tokens = 9223372036854775807
 WHERE org_id = test_helpers.id('org_1');
UPDATE usage_tracker.ai_usage_hourly SET input_tokens = 9223372036854775807, total_tokens = 9223372036854775807
 WHERE org_id = test_helpers.id('org_1');
SELECT test_helpers.login_as_service();
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 500);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_input_tokens => 7);
SELECT is(usage_tracker.run_maintenance() ->> 'ok', 'true', 'maintenance folds past bigint');
SELECT is((SELECT sum(input_tokens) FROM usage_tracker.ai_usage_daily WHERE org_id = test_helpers.id('org_1')),
    9223372036854776307::numeric, 'the org''s daily sum is exact');
SELECT is((SELECT sum(input_tokens) FROM usage_tracker.ai_usage_daily WHERE org_id = test_helpers.id('org_2')),
    7::numeric, 'and the other org folded too');
SELECT is((usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_1')) -> 'summary' ->> 'total_input_tokens')::numeric,
    9223372036854776307::numeric, 'the dashboard reads the exact sum');

SELECT * FROM finish();
ROLLBACK;
