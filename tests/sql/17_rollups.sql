-- The daily rollup: folded incrementally by run_maintenance, late events
-- land in their own day, verify_rollups finds nothing, rebuild repairs.
BEGIN;
SELECT plan(14);

SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000 * i, p_output_tokens => 10,
           p_occurred_at => now() - make_interval(days => i % 5), p_latency_ms => CASE WHEN i % 2 = 0 THEN 100 END)
  FROM generate_series(1, 20) i;
CREATE TEMP TABLE f1 AS SELECT usage_tracker.run_maintenance() -> 'rollups' AS j;
SELECT is((SELECT (j ->> 'rows_folded')::int FROM f1), 20, 'the first fold takes the 20 rows');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_daily), 20::numeric, 'all in the rollup');
SELECT is((SELECT (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int), 0, 'the next fold has nothing to do');
SELECT results_eq(
    $$ SELECT day, sum(requests), sum(total_tokens), sum(total_cost_usd), sum(latency_count), sum(latency_sum)
         FROM usage_tracker.ai_usage_daily GROUP BY day ORDER BY day $$,
    $$ SELECT (created_at AT TIME ZONE 'UTC')::date, count(*)::numeric, sum(total_tokens), sum(total_cost_usd),
              count(latency_ms)::numeric, coalesce(sum(latency_ms), 0)::numeric
         FROM usage_tracker.ai_usage_log GROUP BY 1 ORDER BY 1 $$,
    'per day, the rollup equals the raw log');

-- A late event in an already folded day.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 777, p_occurred_at => now() - interval '3 days');
SELECT is((SELECT (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int), 1, 'a late event is folded');
SELECT is((SELECT sum(input_tokens) FROM usage_tracker.ai_usage_daily WHERE user_id = test_helpers.id('user_b')
              AND day = ((now() - interval '3 days') AT TIME ZONE 'UTC')::date), 777::numeric, 'into its own day');
SELECT is(usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences', '[]'::jsonb, 'verify finds nothing');

-- Repair.
UPDATE usage_tracker.ai_usage_daily SET requests = requests + 1 WHERE user_id = test_helpers.id('user_b');
SELECT is(jsonb_array_length(usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences'), 1,
    'verify reports a damaged day');
SELECT ok((usage_tracker.rebuild_rollups(current_date - 10, current_date) ->> 'rows_written')::int > 0, 'rebuild');
SELECT is(usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences', '[]'::jsonb, 'clean again');

-- Bad input and authorization.
SELECT throws_ok($$ SELECT usage_tracker.verify_rollups(NULL, current_date) $$, '22004', NULL, 'NULL start');
SELECT throws_ok($$ SELECT usage_tracker.rebuild_rollups(current_date, current_date - 1) $$, '22023', NULL, 'reversed range');
SELECT throws_ok($$ SELECT usage_tracker.verify_rollups('2000-01-01', '2026-01-01') $$, '22003', NULL, 'range over 3660 days');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.rebuild_rollups(current_date, current_date) $$, '42501', NULL, 'service_role only');
SELECT test_helpers.logout();

SELECT * FROM finish();
ROLLBACK;
