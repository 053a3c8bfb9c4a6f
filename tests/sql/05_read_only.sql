-- PostgREST runs GET requests in read-only transactions: reads work, writes
-- fail with 25006 and write nothing.
BEGIN;
SELECT plan(5);
-- pgTAP needs its temp tables first; a transaction may always turn read-only.
SET LOCAL transaction_read_only = on;

SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1) $$,
    '25006', NULL, 'log_ai_usage in a read-only transaction');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => 'ro-1') $$,
    '25006', NULL, 'with an idempotency key too');
SELECT lives_ok($$ SELECT usage_tracker.get_ai_usage_dashboard(30) $$, 'dashboards work read-only');
SELECT lives_ok($$ SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 7), usage_tracker.get_ai_cost_summary() $$,
    'per-user usage and cost summary work read-only');
SELECT test_helpers.logout();
SELECT is(test_helpers.count_rows('usage_tracker.ai_usage_log'), 0::bigint, 'nothing written');

SELECT * FROM finish();
ROLLBACK;
