-- Seed 003: projects, cache savings, hourly/daily stats, the project
-- dashboard (exact before and after maintenance), backfill of potential
-- costs, repricing and the gap report; bad input writes nothing.
BEGIN;
SELECT plan(58);

INSERT INTO usage_tracker.org_members (org_id, user_id, role)
VALUES (test_helpers.id('org_r'), test_helpers.id('user_a'), 'member'),
       (test_helpers.id('org_r'), test_helpers.id('admin_1'), 'admin'),
       (test_helpers.id('org_2'), test_helpers.id('admin_2'), 'admin');

-- Projects ------------------------------------------------------------------
SELECT test_helpers.login_as('admin_1');
SELECT lives_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_r'), 'Main', '0a0a0a0a-0000-4000-8000-0000000000a1') $$,
    'an org admin creates a project');
SELECT is(usage_tracker.list_projects(test_helpers.id('org_r')) -> 0 ->> 'name', 'Main', 'and lists it');
SELECT throws_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_r'), 'Again', '0a0a0a0a-0000-4000-8000-0000000000a1') $$,
    '23505', NULL, 'a duplicate project id');
SELECT throws_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_r'), '  ') $$, '22023', NULL, 'a blank name');
SELECT throws_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_r'), repeat('x', 201)) $$, '22001', NULL, 'a long name');
SELECT throws_ok($$ SELECT usage_tracker.create_project(NULL, 'x') $$, '22004', NULL, 'no org');
SELECT throws_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_2'), 'Theirs') $$, '42501', NULL,
    'not in another organization');
SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT usage_tracker.create_project(test_helpers.id('org_r'), 'Mine') $$, '42501', NULL, 'members cannot create');
SELECT is(jsonb_array_length(usage_tracker.list_projects(test_helpers.id('org_r'))), 1, 'members can list');
SELECT test_helpers.logout();
SELECT usage_tracker.create_project(test_helpers.id('org_2'), 'Other', '0a0a0a0a-0000-4000-8000-0000000000b2');
SELECT is((SELECT count(*) FROM usage_tracker.projects), 2::bigint, 'only the valid projects were written');

-- Logging against a project --------------------------------------------------
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_r'),
                        p_project_id => '0a0a0a0a-0000-4000-8000-0000000000b2') $$,
    '22023', NULL, 'a project of another organization is refused');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_r'),
                        p_project_id => gen_random_uuid()) $$, '22023', NULL, 'an unknown project is refused');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE org_id = test_helpers.id('org_r')), 0::bigint, 'nothing written');

-- 120 requests over 3 days: every third cached, two providers, some cache writes.
CREATE TEMP TABLE logged AS
SELECT i, usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000 + i, p_output_tokens => 100 + i,
           p_model_used => CASE WHEN i % 2 = 0 THEN 'gpt-4o' ELSE 'claude-sonnet-4-20250514' END,
           p_latency_ms => 50 + i, p_org_id => test_helpers.id('org_r'),
           p_project_id => '0a0a0a0a-0000-4000-8000-0000000000a1', p_cached => i % 3 = 0,
           p_cache_write_tokens => CASE WHEN i % 5 = 0 THEN 400 ELSE 0 END,
           p_occurred_at => date_trunc('hour', now()) - make_interval(mins => 37 * i)) AS id
  FROM generate_series(1, 120) i;
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log l JOIN logged g ON g.id = l.id
            WHERE l.cached AND l.total_cost_usd = 0 AND l.potential_cost_usd > 0), 40::bigint,
    'cached requests cost nothing and keep what they would have cost');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log l JOIN logged g ON g.id = l.id
            WHERE NOT l.cached AND l.potential_cost_usd = l.total_cost_usd AND l.total_cost_usd > 0), 80::bigint,
    'uncached requests: potential cost = cost');

-- What the stats must say, from the raw rows.
CREATE TEMP VIEW expected AS
WITH rows AS (
    SELECT (l.created_at AT TIME ZONE 'UTC')::date AS date, l.*,
           CASE WHEN l.cached THEN 0 ELSE l.cache_write_cost_usd - l.cache_write_tokens * p.input_usd_per_mtok / 1000000 END AS extra
      FROM usage_tracker.ai_usage_log l JOIN usage_tracker.model_prices p ON p.price_id = l.price_id
     WHERE l.project_id = '0a0a0a0a-0000-4000-8000-0000000000a1'),
prov AS (SELECT date, jsonb_object_agg(provider, n) AS by_provider
           FROM (SELECT date, provider, count(*) AS n FROM rows GROUP BY 1, 2) x GROUP BY 1)
SELECT r.date, count(*) AS total_requests, count(*) FILTER (WHERE r.cached) AS cached_requests,
       round(100.0 * count(*) FILTER (WHERE r.cached) / count(*), 2) AS cache_hit_rate,
       sum(r.total_cost_usd) AS total_cost_usd, sum(r.potential_cost_usd - r.total_cost_usd) AS total_savings_usd,
       sum(r.potential_cost_usd - r.total_cost_usd) - sum(r.extra) AS net_savings_usd,
       round(avg(r.latency_ms), 2) AS avg_latency_ms, (array_agg(pv.by_provider))[1] AS by_provider
  FROM rows r JOIN prov pv ON pv.date = r.date
 GROUP BY 1;
CREATE FUNCTION pg_temp.stats() RETURNS TABLE (date date, total_requests bigint, cached_requests bigint, cache_hit_rate numeric,
    total_cost_usd numeric, total_savings_usd numeric, net_savings_usd numeric, avg_latency_ms numeric, by_provider jsonb)
LANGUAGE sql AS $$
    SELECT s.date, s.total_requests, s.cached_requests, s.cache_hit_rate, s.total_cost_usd, s.total_savings_usd,
           s.net_savings_usd, s.avg_latency_ms, s.requests_by_provider
      FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 30) s ORDER BY s.date
$$;
SELECT results_eq($$ SELECT * FROM pg_temp.stats() $$, $$ SELECT * FROM expected ORDER BY date $$,
    'get_dashboard_stats before any maintenance: exact, from the raw rows');
SELECT ok((SELECT sum(net_savings_usd) < sum(total_savings_usd) FROM pg_temp.stats()), 'net savings subtract the cache-write premium');
SELECT ok((usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded')::int >= 120, 'maintenance folds the rows');
SELECT results_eq($$ SELECT * FROM pg_temp.stats() $$, $$ SELECT * FROM expected ORDER BY date $$,
    'and after it, from the rollups: the same');
SELECT is((SELECT count(*) FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 1)),
    (SELECT count(*) FROM expected WHERE date = current_date), 'p_days = 1 is today only');
SELECT is((SELECT requests_by_model FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 2)
            WHERE date = current_date - 1),
    (SELECT jsonb_object_agg(model_used, n) FROM (SELECT model_used, count(*) AS n FROM usage_tracker.ai_usage_log
      WHERE project_id = '0a0a0a0a-0000-4000-8000-0000000000a1' AND (created_at AT TIME ZONE 'UTC')::date = current_date - 1
      GROUP BY 1) x),
    'requests by model');

-- Seed 003's aggregation calls ------------------------------------------------
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 5, p_org_id => test_helpers.id('org_r'),
    p_project_id => '0a0a0a0a-0000-4000-8000-0000000000a1', p_occurred_at => date_trunc('hour', now()) - interval '74 minutes');
CREATE TEMP TABLE h AS SELECT usage_tracker.aggregate_usage_hourly('0a0a0a0a-0000-4000-8000-0000000000a1',
    date_trunc('hour', now()) - interval '2 hours' + interval '17 minutes') AS j;
SELECT is((SELECT (j ->> 'total_requests')::bigint FROM h),
    (SELECT count(*) FROM usage_tracker.ai_usage_log WHERE project_id = '0a0a0a0a-0000-4000-8000-0000000000a1'
        AND created_at >= date_trunc('hour', now()) - interval '2 hours' AND created_at < date_trunc('hour', now()) - interval '1 hour'),
    'aggregate_usage_hourly: the UTC hour containing p_hour_start, with the new row');
SELECT is((SELECT (j ->> 'hour_start')::timestamptz FROM h), date_trunc('hour', now()) - interval '2 hours', 'and says which hour');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE ingest_seq > (SELECT folded_through FROM usage_tracker_private.rollup_progress)),
    0::bigint, 'it brought the rollups up to date');
SELECT is((usage_tracker.aggregate_usage_daily('0a0a0a0a-0000-4000-8000-0000000000a1', current_date - 1) ->> 'total_requests')::bigint,
    (SELECT total_requests FROM expected WHERE date = current_date - 1), 'aggregate_usage_daily: one UTC day');
SELECT is(usage_tracker.aggregate_usage_daily('0a0a0a0a-0000-4000-8000-0000000000a1', current_date - 400) ->> 'total_requests', '0',
    'an empty day has zeros');

-- Bad input and authorization -----------------------------------------------
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats(gen_random_uuid(), 30) $$, '22023', NULL, 'unknown project');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats(NULL, 30) $$, '22004', NULL, 'NULL project');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 0) $$, '22003', NULL, 'p_days 0');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 3661) $$, '22003', NULL, 'p_days too large');
SELECT throws_ok($$ SELECT usage_tracker.aggregate_usage_hourly('0a0a0a0a-0000-4000-8000-0000000000a1', NULL) $$, '22004', NULL, 'NULL hour');
SELECT throws_ok($$ SELECT usage_tracker.aggregate_usage_hourly('0a0a0a0a-0000-4000-8000-0000000000a1', 'infinity') $$, '22023', NULL, 'infinite hour');
SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 30) $$, '42501', NULL,
    'members do not see project-wide stats');
SELECT test_helpers.login_as('admin_2');
SELECT throws_ok($$ SELECT usage_tracker.aggregate_usage_daily('0a0a0a0a-0000-4000-8000-0000000000a1', current_date) $$, '42501', NULL,
    'nor do admins of other organizations');
SELECT test_helpers.login_as('admin_1');
SELECT is((SELECT sum(total_requests) FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 30)), 121::numeric,
    'the project''s org admin does');
SELECT throws_ok($$ SELECT usage_tracker.backfill_potential_cost(current_date - 5, current_date) $$, '42501', NULL, 'backfill: service_role only');
SELECT test_helpers.login_as_anon();
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_dashboard_stats('0a0a0a0a-0000-4000-8000-0000000000a1', 30) $$, '42501', NULL, 'anon: nothing');
SELECT test_helpers.logout();

-- Backfill of potential cost ---------------------------------------------------
CREATE TEMP TABLE truth AS SELECT id, potential_cost_usd FROM usage_tracker.ai_usage_log WHERE project_id IS NOT NULL;
UPDATE usage_tracker.ai_usage_log SET potential_cost_usd = 0 WHERE project_id IS NOT NULL AND total_tokens > 5;
SELECT is((usage_tracker.backfill_potential_cost(current_date - 10, current_date, p_dry_run => true) ->> 'rows')::int, 120,
    'a dry run counts the rows to fill');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE project_id IS NOT NULL AND potential_cost_usd = 0), 120::bigint,
    'and writes nothing');
SELECT throws_ok($$ SELECT usage_tracker.backfill_potential_cost(current_date - 10, current_date, '{"gpt-4o": {"input_usd_per_mtok": -1}}') $$,
    '22003', NULL, 'a negative price is refused');
SELECT throws_ok($$ SELECT usage_tracker.backfill_potential_cost(current_date - 10, current_date, '{"gpt-4o": {"input_usd_per_mtok": "cheap"}}') $$,
    '22023', NULL, 'a price that is not a number is refused');
SELECT throws_ok($$ SELECT usage_tracker.backfill_potential_cost(current_date, current_date - 10) $$, '22023', NULL, 'a reversed range');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE project_id IS NOT NULL AND potential_cost_usd = 0), 120::bigint,
    'nothing written by bad input');
SELECT is((usage_tracker.backfill_potential_cost(current_date - 10, current_date) ->> 'rows')::int, 120, 'backfill fills them');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log l JOIN truth t ON t.id = l.id WHERE l.potential_cost_usd <> t.potential_cost_usd),
    0::bigint, 'with exactly what log_ai_usage had computed');
SELECT is(usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences', '[]'::jsonb, 'and the rollups follow');

-- Repricing ----------------------------------------------------------------------
SELECT usage_tracker.set_model_price('openai', 'gpt-4o', now() - interval '30 days', 10, 30);
CREATE TEMP TABLE rp AS SELECT usage_tracker.reprice_ai_usage(current_date - 10, current_date, 'gpt-4o') AS j;
SELECT ok((SELECT (j ->> 'rows')::int = 60 AND (j ->> 'dry_run')::boolean AND (j ->> 'difference_usd')::numeric > 0 FROM rp),
    'a dry run shows the rows and the difference');
SELECT is((usage_tracker.reprice_ai_usage(current_date - 10, current_date, 'gpt-4o', false) ->> 'difference_usd')::numeric,
    (SELECT (j ->> 'difference_usd')::numeric FROM rp), 'applying it changes exactly that');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE model_used = 'gpt-4o' AND project_id IS NOT NULL AND NOT cached
            AND total_cost_usd <> (input_tokens * 10 + output_tokens * 30) / 1000000.0), 0::bigint,
    'costs follow the new price (which has no cache-write rate: those tokens cost nothing)');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE model_used = 'gpt-4o' AND project_id IS NOT NULL
            AND (cache_write_tokens > 0) <> coalesce('cache_write' = ANY (unpriced_buckets), false)), 0::bigint,
    'and the rows with cache writes say those are unpriced');
SELECT is(usage_tracker.verify_rollups(current_date - 10, current_date) -> 'differences', '[]'::jsonb, 'the rollups too');

-- Gap report ------------------------------------------------------------------------
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_r'),
    p_project_id => '0a0a0a0a-0000-4000-8000-0000000000a1');
SELECT is((SELECT jsonb_agg(g ->> 'state') FROM jsonb_array_elements(usage_tracker.rollup_gaps(current_date - 10, current_date)) g),
    '["not_folded_yet"]'::jsonb, 'a new row is a gap until maintenance');
SELECT usage_tracker.run_maintenance();
DELETE FROM usage_tracker.ai_usage_hourly WHERE hour = date_trunc('hour', now()) - interval '5 hours';
SELECT is((SELECT jsonb_agg(g ->> 'state') FROM jsonb_array_elements(usage_tracker.rollup_gaps(current_date - 10, current_date)) g),
    '["missing"]'::jsonb, 'a lost hour is reported missing');

-- Repricing and the gap report: service_role only, bad ranges refused.
SELECT throws_ok($$ SELECT usage_tracker.reprice_ai_usage(current_date, current_date - 1) $$, '22023', NULL, 'reprice: reversed range');
SELECT throws_ok($$ SELECT usage_tracker.rollup_gaps(NULL, current_date) $$, '22004', NULL, 'gap report: NULL start');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT usage_tracker.reprice_ai_usage(current_date - 1, current_date, NULL, false) $$, '42501', NULL,
    'reprice: not for org admins');
SELECT throws_ok($$ SELECT usage_tracker.rollup_gaps(current_date - 1, current_date) $$, '42501', NULL, 'gap report: not for org admins');
SELECT test_helpers.logout();
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE model_used = 'gpt-4o' AND project_id IS NOT NULL
            AND total_cost_usd <> (input_tokens * 10 + output_tokens * 30) / 1000000.0
            AND NOT cached), 0::bigint, 'the refused calls changed nothing');

SELECT * FROM finish();
ROLLBACK;
