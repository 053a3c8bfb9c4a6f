-- The fold: bounded passes (usage_tracker.fold_batch_rows) go on where the
-- last stopped, and the lag (rows waiting, age of the oldest unfolded row)
-- is reported by run_maintenance and rollup_lag for monitoring.
BEGIN;
SELECT plan(17);

-- Catch up with whatever earlier tests left in the sequence, then log 2,500 rows.
SELECT ok((usage_tracker.run_maintenance() ->> 'ok')::boolean, 'a first pass catches up');
SELECT test_helpers.login_as_service();
SELECT is(jsonb_array_length(usage_tracker.log_ai_usage_batch((
    SELECT jsonb_agg(jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', i, 'output_tokens', 1,
                                        'customer_id', i % 7, 'occurred_at', now() - make_interval(mins => i)))
      FROM generate_series(1, 2500) i))), 2500, '2,500 requests logged in one batch');
CREATE TEMP TABLE lag0 AS SELECT usage_tracker.rollup_lag() AS j;
GRANT SELECT ON lag0 TO PUBLIC;
SELECT is((SELECT (j ->> 'rows_waiting')::int FROM lag0), 2500, 'rollup_lag: 2,500 rows wait');
SELECT ok((SELECT (j ->> 'lag_seconds')::numeric >= 0 FROM lag0), 'and the oldest waited a measured time');
SELECT ok((SELECT j ? 'folded_through' AND j ? 'last_fold_at' FROM lag0), 'with the fold position and time');

SELECT test_helpers.logout();
SET LOCAL usage_tracker.fold_batch_rows = 1000;
CREATE TEMP TABLE passes AS SELECT 1 AS n, usage_tracker.run_maintenance() -> 'rollups' AS j;
INSERT INTO passes SELECT 2, usage_tracker.run_maintenance() -> 'rollups';
INSERT INTO passes SELECT 3, usage_tracker.run_maintenance() -> 'rollups';
SELECT results_eq($$ SELECT (j ->> 'rows_folded')::int, (j ->> 'rows_waiting')::int FROM passes ORDER BY n $$,
    $$ VALUES (1000, 1500), (1000, 500), (500, 0) $$, 'bounded passes fold 1,000 rows each and say how many wait');
SELECT ok((SELECT bool_and((j ->> 'lag_seconds') IS NOT NULL) FROM passes WHERE n < 3), 'each reports the lag left');
SELECT is((SELECT (j ->> 'lag_seconds')::numeric FROM passes WHERE n = 3), 0::numeric, 'none once caught up');
SELECT is((SELECT sum(requests) FROM usage_tracker.ai_usage_daily WHERE org_id = test_helpers.id('user_a')), 2500::numeric,
    'every row folded once');
SELECT is(usage_tracker.verify_rollups(current_date - 3, current_date) -> 'differences', '[]'::jsonb, 'verify_rollups is clean');

-- A bad setting fails the fold step alone, with its SQLSTATE.
SET LOCAL usage_tracker.fold_batch_rows = 'lots';
CREATE TEMP TABLE bad AS SELECT usage_tracker.run_maintenance() AS j;
SELECT is((SELECT j ->> 'ok' FROM bad), 'false', 'fold_batch_rows ''lots'': maintenance reports a failure');
SELECT is((SELECT j -> 'errors' -> 0 ->> 'sqlstate' FROM bad), '22023', 'of the rollups step, 22023');
SELECT ok((SELECT j ? 'retention' AND j -> 'partitions_created' IS NOT NULL FROM bad), 'and the other steps ran');
SET LOCAL usage_tracker.fold_batch_rows = 10;
SELECT is(usage_tracker.run_maintenance() -> 'errors' -> 0 ->> 'sqlstate', '22023', 'fewer than 1,000 rows: 22023');
RESET usage_tracker.fold_batch_rows;

-- Only trusted callers see the lag.
SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT usage_tracker.rollup_lag() $$, '42501', NULL, 'a user cannot read the lag');
SELECT test_helpers.login_as_anon();
SELECT throws_ok($$ SELECT usage_tracker.rollup_lag() $$, '42501', NULL, 'nor can anon');
SELECT test_helpers.login_as_service();
SELECT is((usage_tracker.rollup_lag() ->> 'rows_waiting')::int, 0, 'service_role reads it: nothing waits');

SELECT * FROM finish();
ROLLBACK;
