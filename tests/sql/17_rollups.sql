-- The rollups: folded incrementally by run_maintenance, late events land in
-- their own hour and day, reads are the same before and after folding and
-- after hourly retention, verify_rollups finds nothing, rebuild repairs.
BEGIN;
SELECT plan(29);

INSERT INTO usage_tracker.org_members (org_id, user_id, role)
VALUES (test_helpers.id('org_r'), test_helpers.id('user_a'), 'member'),
       (test_helpers.id('org_r'), test_helpers.id('user_b'), 'member'),
       (test_helpers.id('org_r'), test_helpers.id('admin_1'), 'admin');

-- 400 requests over 40 days, 3 users, 4 customers (some without), two
-- emails for one user, both statuses, with and without latency.
CREATE TEMP TABLE logged AS
SELECT i, usage_tracker.log_ai_usage(
           test_helpers.id((ARRAY['user_a', 'user_b', 'admin_1'])[1 + i % 3]),
           CASE WHEN i % 7 = 0 THEN 'other@example.com' ELSE 'u' || (i % 3) || '@example.com' END,
           CASE WHEN i % 5 = 0 THEN NULL ELSE 1 + i % 4 END, CASE WHEN i % 5 = 0 THEN NULL ELSE 'Customer ' || (1 + i % 4) END,
           (ARRAY['report', 'insight', 'widget'])[1 + i % 3], NULL, 100 * i, 10 * i, 'claude-sonnet-4-20250514',
           CASE WHEN i % 2 = 0 THEN 100 + i END, 0, CASE WHEN i % 9 = 0 THEN 'error' ELSE 'success' END, NULL,
           p_org_id => test_helpers.id('org_r'),
           p_occurred_at => now() - make_interval(mins => (i * 143) % (40 * 1440))) AS id
  FROM generate_series(1, 400) i;

CREATE FUNCTION pg_temp.reads() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'd1', usage_tracker.get_ai_usage_dashboard(1, test_helpers.id('org_r')),
        'd7', usage_tracker.get_ai_usage_dashboard(7, test_helpers.id('org_r')),
        'd30', usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_r')),
        'all', usage_tracker.get_ai_usage_dashboard(30),
        'user', usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30),
        'costs', usage_tracker.get_ai_cost_summary(test_helpers.id('org_r')))
$$;
-- A member's view (own rows only) must not change with folding either.
CREATE FUNCTION pg_temp.member_reads() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
    PERFORM test_helpers.login_as('user_a');
    r := jsonb_build_object('org', usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('org_r')),
                            'mine', usage_tracker.get_ai_usage_dashboard(10),
                            'user', usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 30));
    PERFORM test_helpers.logout();
    RETURN r;
END $$;
CREATE TEMP TABLE before AS SELECT pg_temp.reads() AS j, pg_temp.member_reads() AS m;

CREATE TEMP TABLE f1 AS SELECT usage_tracker.run_maintenance() -> 'rollups' AS j;
SELECT ok((SELECT (j ->> 'rows_folded')::int FROM f1) >= 400, 'the first fold takes every row');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_daily WHERE org_id = test_helpers.id('org_r')), 400::numeric,
    'org totals hold every request');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_user_daily WHERE org_id = test_helpers.id('org_r')), 400::numeric,
    'per-user totals hold every request');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_customer_daily WHERE org_id = test_helpers.id('org_r')), 320::numeric,
    'per-customer totals hold the requests with a customer');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_hourly WHERE org_id = test_helpers.id('org_r')), 400::numeric,
    'hourly totals hold every request');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_customer_users WHERE org_id = test_helpers.id('org_r')), 12::bigint,
    'one row per customer and user');
SELECT is((SELECT (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int), 0, 'the next fold has nothing to do');
SELECT results_eq(
    $$ SELECT day, sum(requests), sum(total_tokens), sum(total_cost_usd), sum(latency_count), sum(latency_sum)
         FROM usage_tracker.ai_usage_daily WHERE org_id = test_helpers.id('org_r') GROUP BY day ORDER BY day $$,
    $$ SELECT (created_at AT TIME ZONE 'UTC')::date, count(*)::numeric, sum(total_tokens), sum(total_cost_usd),
              count(latency_ms)::numeric, coalesce(sum(latency_ms), 0)::numeric
         FROM usage_tracker.ai_usage_log WHERE org_id = test_helpers.id('org_r') GROUP BY 1 ORDER BY 1 $$,
    'per day, the org totals equal the raw log');
SELECT results_eq(
    $$ SELECT hour, sum(requests) FROM usage_tracker.ai_usage_user_hourly WHERE org_id = test_helpers.id('org_r')
        GROUP BY hour ORDER BY hour $$,
    $$ SELECT date_trunc('hour', created_at, 'UTC'), count(*)::numeric FROM usage_tracker.ai_usage_log
        WHERE org_id = test_helpers.id('org_r') GROUP BY 1 ORDER BY 1 $$,
    'per hour, the per-user totals equal the raw log');
SELECT is(pg_temp.reads(), (SELECT j FROM before), 'dashboards, per-user usage and cost summary: the same after folding');
SELECT is(pg_temp.member_reads(), (SELECT m FROM before), 'a member''s reads: the same after folding');

-- A late event in an already folded hour and day.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 777, p_org_id => test_helpers.id('org_r'),
           p_customer_id => 9, p_customer_name => 'Late', p_occurred_at => now() - interval '3 days');
SELECT is((SELECT (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int), 1, 'a late event is folded');
SELECT is((SELECT sum(input_tokens) FROM usage_tracker.ai_usage_user_daily WHERE user_id = test_helpers.id('user_b')
              AND request_type = 'report' AND day = ((now() - interval '3 days') AT TIME ZONE 'UTC')::date
              AND org_id = test_helpers.id('org_r') AND user_email IS NULL), 777::numeric, 'into its own day');
SELECT is((SELECT last_at FROM usage_tracker.ai_usage_customer_users WHERE customer_id = 9),
          (SELECT max(created_at) FROM usage_tracker.ai_usage_log WHERE customer_id = 9), 'and its customer-user pair');
SELECT is(usage_tracker.verify_rollups(current_date - 45, current_date) -> 'differences', '[]'::jsonb, 'verify finds nothing');
UPDATE before SET j = pg_temp.reads(), m = pg_temp.member_reads();

-- Hourly retention: hours older than 2 days go, reads do not change.
SELECT usage_tracker.set_retention('ai_usage_hourly', interval '2 days');
SELECT ok((usage_tracker.run_maintenance() -> 'retention' ->> 'hourly_rollup_rows_deleted')::int > 0, 'old hours are deleted');
SELECT is((SELECT min(hour) >= now() - interval '2 days 1 hour' FROM usage_tracker.ai_usage_hourly), true, 'none older is left');
SELECT is(pg_temp.reads(), (SELECT j FROM before), 'reads are the same without the old hours');
SELECT is(pg_temp.member_reads(), (SELECT m FROM before), 'a member''s reads too');
SELECT is(usage_tracker.verify_rollups(current_date - 45, current_date) -> 'differences', '[]'::jsonb,
    'verify checks only the hours kept');

-- Repair.
UPDATE usage_tracker.ai_usage_user_daily SET requests = requests + 1
 WHERE user_id = test_helpers.id('user_b') AND day = current_date - 3 AND org_id = test_helpers.id('org_r')
   AND ctid = (SELECT min(ctid) FROM usage_tracker.ai_usage_user_daily WHERE user_id = test_helpers.id('user_b')
                 AND day = current_date - 3 AND org_id = test_helpers.id('org_r'));
UPDATE usage_tracker.ai_usage_customer_users SET last_at = last_at - interval '1 minute' WHERE customer_id = 9;
SELECT is((SELECT jsonb_agg(d ->> 'rollup' ORDER BY d ->> 'rollup') FROM jsonb_array_elements(
              usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences') d),
          '["ai_usage_customer_users", "ai_usage_user_daily"]'::jsonb, 'verify reports both damaged rollups');
SELECT ok((usage_tracker.rebuild_rollups(current_date - 10, current_date) ->> 'log_rows_refolded')::int > 0, 'rebuild');
SELECT is(usage_tracker.verify_rollups(current_date - 45, current_date) -> 'differences', '[]'::jsonb, 'clean again');
SELECT is(pg_temp.reads(), (SELECT j FROM before), 'and the reads are unchanged');

-- Bad input and authorization.
SELECT throws_ok($$ SELECT usage_tracker.verify_rollups(NULL, current_date) $$, '22004', NULL, 'NULL start');
SELECT throws_ok($$ SELECT usage_tracker.rebuild_rollups(current_date, current_date - 1) $$, '22023', NULL, 'reversed range');
SELECT throws_ok($$ SELECT usage_tracker.verify_rollups('2000-01-01', '2026-01-01') $$, '22003', NULL, 'range over 3660 days');
SELECT throws_ok($$ SELECT usage_tracker.rebuild_rollups(current_date - 500, current_date - 400) $$, '22023', NULL,
    'rebuilding days the raw log may have lost is refused');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.rebuild_rollups(current_date, current_date) $$, '42501', NULL, 'service_role only');
SELECT test_helpers.logout();

SELECT * FROM finish();
ROLLBACK;
