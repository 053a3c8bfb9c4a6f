-- Retention: run_maintenance drops the log's monthly partitions once their
-- whole month is past the retention, deletes old rows elsewhere, and old
-- backfills are refused instead of recreating dropped partitions.
BEGIN;
SELECT plan(13);

SELECT is((SELECT keep FROM usage_tracker.retention_policies WHERE relation = 'ai_usage_log'), '13 mons'::interval,
    'the log is kept 13 months by default');
SELECT is((SELECT keep FROM usage_tracker.retention_policies WHERE relation = 'report_runs'), NULL::interval, 'report runs forever');

-- One request per month over the last year, with idempotency keys.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - make_interval(months => m),
                                  p_idempotency_key => 'ret-' || m, p_session_id => 'ret')
  FROM generate_series(1, 12) m;
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1, NULL, now() - interval '200 days');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1);

SELECT ok(usage_tracker.set_retention('ai_usage_log', '6 months'), 'keep the log 6 months');
SELECT ok(usage_tracker.set_retention('usage_events', '30 days'), 'and raw events 30 days');
CREATE TEMP TABLE m AS SELECT usage_tracker.run_maintenance() AS j;
SELECT is(jsonb_array_length((SELECT j -> 'retention' -> 'log_partitions_dropped' FROM m)), 6,
    'the six partitions whose whole month is older than 6 months are dropped');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE session_id = 'ret'), 6::bigint, 'newer months stay');
SELECT is((SELECT count(*) FROM usage_tracker_private.ai_usage_idempotency WHERE idempotency_key LIKE 'ret-%'), 6::bigint,
    'idempotency keys follow the log');
SELECT is((SELECT count(*) FROM usage_tracker.usage_events), 1::bigint, 'raw events older than 30 days are deleted');
SELECT is((SELECT sum(count) FROM usage_tracker.organization_usage), 2::numeric, 'their daily counters stay');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - interval '8 months') $$,
    '22023', NULL, 'a backfill older than the retention is refused');

-- Bad input and authorization.
SELECT throws_ok($$ SELECT usage_tracker.set_retention('org_members', '1 year') $$, '22023', NULL, 'unknown relation');
SELECT throws_ok($$ SELECT usage_tracker.set_retention('ai_usage_log', '1 hour') $$, '22003', NULL, 'less than a day');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.set_retention('ai_usage_log', NULL) $$, '42501', NULL, 'service_role only');
SELECT test_helpers.logout();

SELECT * FROM finish();
ROLLBACK;
