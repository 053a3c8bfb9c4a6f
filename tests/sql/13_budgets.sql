-- Budgets in USD per organization and per user, fed by logged AI costs;
-- thresholds alert once per period (outbox + pg_notify). As the real roles.
BEGIN;
SELECT plan(25);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- An admin sets the org budget ($1.00) and a budget for user_a ($0.10, alert at 50%).
SELECT test_helpers.login_as('admin_1');
CREATE TEMP TABLE b AS SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 1.00) AS org_budget,
                              usage_tracker.set_budget(test_helpers.id('org_1'), 0.10, test_helpers.id('user_a'), '{50,100}') AS user_budget;
SELECT isnt((SELECT org_budget FROM b), NULL, 'admins set budgets');
SELECT is(usage_tracker.set_budget(test_helpers.id('org_1'), 2.00), (SELECT org_budget FROM b), 'setting it again updates the same budget');
SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 1.00);
SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 5) $$, '42501', NULL, 'members cannot set budgets');
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_2'), 5) $$, '42501', NULL, 'nor in other orgs');

-- user_a spends: each 100k input tokens of Sonnet 4 cost $0.30.
LISTEN usage_tracker_budget_alerts;
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 10000);   -- $0.03
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts), 0::bigint, 'no alert below the thresholds');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 10000);   -- $0.06 = 60% of user budget
SELECT test_helpers.logout();
SELECT results_eq($$ SELECT threshold_pct, spent_usd, amount_usd, user_id FROM usage_tracker.budget_alerts ORDER BY created_at $$,
    $$ VALUES (50, 0.06::numeric, 0.100000::numeric, test_helpers.id('user_a')) $$, 'crossing 50% of the user budget alerts');
SELECT test_helpers.login_as('user_a');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 5000);   -- $0.015
SELECT test_helpers.logout();
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts), 1::bigint, 'an alerted threshold does not alert again');
SELECT test_helpers.login_as('user_a');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 300000);  -- $0.90
SELECT test_helpers.logout();
SELECT results_eq($$ SELECT threshold_pct, user_id IS NULL FROM usage_tracker.budget_alerts ORDER BY threshold_pct, user_id IS NULL $$,
    $$ VALUES (50, false), (80, true), (100, false) $$,
    'one request can cross several thresholds of several budgets: user 100%, org 80%');
SELECT usage_tracker.log_ai_usage(test_helpers.id('admin_1'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 10000);
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts WHERE user_id IS NULL AND threshold_pct = 100), 1::bigint,
    'another user''s spend counts against the org budget');
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts), 4::bigint, 'four alerts in all');

-- Spend and status.
SELECT test_helpers.login_as('admin_1');
SELECT results_eq($$ SELECT (e ->> 'spent_usd')::numeric, (e ->> 'used_pct')::numeric, e ->> 'user_id'
                       FROM jsonb_array_elements(usage_tracker.get_budget_status(test_helpers.id('org_1'))) e $$,
    $$ VALUES (1.005::numeric, 100.50::numeric, NULL::text), (0.975, 975.00, test_helpers.id('user_a')::text) $$,
    'admins see every budget with its spend this period');
SELECT test_helpers.login_as('user_a');
SELECT is(jsonb_array_length(usage_tracker.get_budget_status(test_helpers.id('org_1'))), 2, 'members see the org budget and their own');
SELECT is((SELECT count(*) FROM usage_tracker.budget_alerts), 2::bigint, 'RLS: users read their own alerts directly');
SELECT test_helpers.login_as('user_b');
SELECT throws_ok($$ SELECT usage_tracker.get_budget_status(test_helpers.id('org_1')) $$, '42501', NULL, 'non-members see nothing');
SELECT test_helpers.logout();

-- Cached responses cost nothing and do not count; retries count once.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 100000, p_cached => true);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 100000, p_idempotency_key => 'b-1');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 100000, p_idempotency_key => 'b-1');
SELECT is((SELECT (e ->> 'spent_usd')::numeric FROM jsonb_array_elements(usage_tracker.get_budget_status(test_helpers.id('org_1'))) e
            WHERE e ->> 'user_id' IS NULL), 1.305::numeric, 'a cached response adds nothing; a retried request adds once');

-- A budget set mid-period starts from what was already spent.
SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 10, test_helpers.id('admin_1'));
SELECT is((SELECT (e ->> 'spent_usd')::numeric FROM jsonb_array_elements(usage_tracker.get_budget_status(test_helpers.id('org_1'))) e
            WHERE e ->> 'user_id' = test_helpers.id('admin_1')::text), 0.03::numeric, 'a new budget starts from the period''s spend');

-- The outbox, for an edge function.
SELECT test_helpers.login_as_service();
SELECT is(jsonb_array_length(usage_tracker.get_pending_alerts()), 4, 'pending alerts');
SELECT is(usage_tracker.mark_alert_delivered(test_helpers.id('org_1'),
          (SELECT alert_id FROM usage_tracker.budget_alerts ORDER BY created_at, threshold_pct LIMIT 1), 'HTTP 500'), true, 'a failed attempt is recorded');
SELECT is(jsonb_array_length(usage_tracker.get_pending_alerts()), 4, 'and the alert stays pending');
SELECT is(usage_tracker.mark_alert_delivered(test_helpers.id('org_1'),
          (SELECT alert_id FROM usage_tracker.budget_alerts ORDER BY created_at, threshold_pct LIMIT 1)), true, 'delivered');
SELECT results_eq($$ SELECT attempts, last_error IS NULL, delivered_at IS NOT NULL FROM usage_tracker.budget_alerts ORDER BY created_at, threshold_pct LIMIT 1 $$,
    $$ VALUES (2, true, true) $$, 'two attempts, delivered');
SELECT is(jsonb_array_length(usage_tracker.get_pending_alerts()), 3, 'delivered alerts leave the queue');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.get_pending_alerts() $$, '42501', NULL, 'the outbox is for service_role');

-- Bad input.
SELECT test_helpers.login_as_service();
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_1'), -1) $$, '22003', NULL, 'negative budget');
SELECT throws_ok($$ SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 10, NULL, '{0}') $$, '22003', NULL, 'threshold 0');
SELECT test_helpers.logout();

SELECT * FROM finish();
ROLLBACK;
