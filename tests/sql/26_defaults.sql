-- Defaults that never surprise with money or limits: a missing rate is no
-- price (never another bucket's), the provider of a model is chosen
-- deterministically, plans say what unlisted limits become, an AI request
-- counts once against the token limit, and money in JSON is a number at a
-- documented scale.
BEGIN;
SELECT plan(33);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');

-- A price without cache or reasoning rates: those buckets are unpriced.
SELECT usage_tracker.set_model_price('acme', 'acme-1', '2020-01-01', 2, 8);
SELECT results_eq($$ SELECT input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, cache_write_usd_per_mtok,
                            reasoning_usd_per_mtok FROM usage_tracker.model_prices WHERE model = 'acme-1' $$,
    $$ VALUES (2::numeric, 8::numeric, NULL::numeric, NULL::numeric, NULL::numeric) $$,
    'rates not given are stored as no price');
SELECT test_helpers.login_as('user_a');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'acme-1', p_input_tokens => 1000000,
    p_output_tokens => 1000000, p_cache_read_tokens => 1000000, p_reasoning_tokens => 500000, p_session_id => 'unpriced');
SELECT results_eq($$ SELECT input_cost_usd, output_cost_usd, cache_read_cost_usd, reasoning_cost_usd, total_cost_usd, unpriced_buckets
                       FROM usage_tracker.ai_usage_log WHERE session_id = 'unpriced' $$,
    $$ VALUES (2::numeric, 8::numeric, 0::numeric, 0::numeric, 10::numeric, '{cache_read,reasoning}'::text[]) $$,
    'cache reads are not charged at the input rate nor reasoning at the output rate; the row says what was unpriced');
SELECT results_eq($$ SELECT model_used, requests, missing FROM usage_tracker.list_unknown_models() $$,
    $$ VALUES ('acme-1', 1::bigint, '{cache_read,reasoning}'::text[]) $$,
    'list_unknown_models lists the unpriced buckets');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'acme-1', p_input_tokens => 10, p_session_id => 'priced');
SELECT is((SELECT unpriced_buckets FROM usage_tracker.ai_usage_log WHERE session_id = 'priced'), NULL::text[],
    'a request with tokens only in priced buckets is fully priced');
SELECT test_helpers.login_as_service();
SELECT usage_tracker.set_model_price('acme', 'acme-1', '2020-02-01', 2, 8, 0.2, 2.5, 8);
SELECT is((usage_tracker.reprice_ai_usage(current_date - 1, current_date, 'acme-1', false) ->> 'rows')::int, 1,
    'after adding the rates, reprice updates the unpriced row');
SELECT results_eq($$ SELECT cache_read_cost_usd, reasoning_cost_usd, total_cost_usd, unpriced_buckets
                       FROM usage_tracker.ai_usage_log WHERE session_id = 'unpriced' $$,
    $$ VALUES (0.2::numeric, 4::numeric, 14.2::numeric, NULL::text[]) $$, 'and it is fully priced');

-- Without p_provider: the provider that priced the model first, always.
SELECT usage_tracker.set_model_price('anthropic', 'claude-z', '2020-01-01', 3, 15, 0.3, 3.75, 15);
SELECT usage_tracker.set_model_price('bedrock', 'claude-z', '2021-01-01', 6, 30, 0.6, 7.5, 30);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'claude-z', p_input_tokens => 1000000, p_session_id => 'p1');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'claude-z', p_provider => 'bedrock',
    p_input_tokens => 1000000, p_session_id => 'p2');
SELECT results_eq($$ SELECT session_id, provider, total_cost_usd FROM usage_tracker.ai_usage_log
                      WHERE session_id IN ('p1', 'p2') ORDER BY session_id $$,
    $$ VALUES ('p1', 'anthropic', 3::numeric), ('p2', 'bedrock', 6::numeric) $$,
    'a newer price from another provider does not replace the first provider''s; p_provider picks it');

-- Plans: unlisted limits come from a base plan, or are unlimited (said).
SELECT usage_tracker.create_plan('team', 'Team', '{"chat_messages": 2000}', p_base_plan => 'pilot');
SELECT results_eq($$ SELECT limit_key, max_quantity FROM usage_tracker.plan_limits WHERE plan = 'team' ORDER BY limit_key $$,
    $$ VALUES ('ai_tokens', 1000000::bigint), ('analyses', 100), ('chat_messages', 2000), ('csv_rows', 50000),
              ('csv_uploads', 50), ('mapping_profiles', 20), ('report_runs_per_user', 50) $$,
    'p_base_plan: the listed limit, the others from the base plan');
SELECT usage_tracker.create_plan('open', NULL, '{"chat_messages": 10}');
SELECT is((SELECT count(*) FROM usage_tracker.plan_limits WHERE plan = 'open'), 1::bigint,
    'without a base plan, unlisted limits are unlimited (and a NOTICE says so)');
SELECT throws_ok($$ SELECT usage_tracker.create_plan('broken', NULL, '{}', p_base_plan => 'platinum') $$, '22023', NULL,
    'an unknown base plan is refused');
SELECT is((SELECT count(*) FROM usage_tracker.plans WHERE plan = 'broken'), 0::bigint, 'nothing written');

-- One meter: AI requests count against ai_tokens (trial: 100,000 tokens).
SELECT test_helpers.login_as('user_a');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 60000,
    p_cache_read_tokens => 10000, p_output_tokens => 20000, p_reasoning_tokens => 5000);
SELECT results_eq($$ SELECT within_limit, current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'ai_tokens_output') $$,
    $$ VALUES (true, 95000::bigint, 100000::bigint) $$, 'check_usage_limit counts the logged request''s tokens');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'ai_tokens_output', 6000) ->> 'allowed', 'false',
    'consume_quota sees them: 6,000 more do not fit');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'ai_tokens_output', 5000) ->> 'allowed', 'true',
    '5,000 do');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_input_tokens => 7000,
    p_cached => true);
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'ai_tokens_input')), 100000::bigint,
    'a response from the application''s own cache used no provider tokens');
SELECT is((usage_tracker.get_usage_limits(test_helpers.id('org_1')) -> 'limits' -> 'ai_tokens' ->> 'current')::bigint, 100000::bigint,
    'get_usage_limits agrees');
SELECT is(usage_tracker.get_quota_status(test_helpers.id('org_1')) ->> 'status', 'over_limit', 'and the quota status');

-- A seed 002 caller that tracks token events for the same requests sets the
-- source to events: counted once.
SELECT test_helpers.login_as_service();
SELECT is(usage_tracker.set_limit_source('ai_tokens', 'events'), 'events', 'service_role sets the source');
SELECT usage_tracker.set_org_member(test_helpers.id('org_2'), test_helpers.id('user_b'), 'member');
SELECT test_helpers.login_as('user_b');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_input_tokens => 300, p_output_tokens => 100);
SELECT usage_tracker.track_usage_event(test_helpers.id('org_2'), 'ai_tokens_input', 300);
SELECT usage_tracker.track_usage_event(test_helpers.id('org_2'), 'ai_tokens_output', 100);
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'ai_tokens_input')), 400::bigint,
    'source events: the request counts once (its events), not twice');
SELECT test_helpers.login_as_service();
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'ai_tokens_input')), 5000::bigint,
    'and org_1''s period row was recomputed from its events (the consume)');
SELECT usage_tracker.set_limit_source('ai_tokens', 'ai_log');
SELECT test_helpers.login_as('user_b');
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'ai_tokens_input')), 400::bigint,
    'source ai_log: the logged request, recomputed from the log');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_2'), 'ai_tokens_input', 1000);
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'ai_tokens_input')), 400::bigint,
    'and events no longer count');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_output_tokens => 50);
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'ai_tokens_input')), 450::bigint,
    'logged requests do');
SELECT test_helpers.login_as_service();
SELECT usage_tracker.set_limit_source('ai_tokens', 'both');
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'ai_tokens_input')), 1850::bigint,
    'source both: events (1,400) and the log (450)');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_2'), p_input_tokens => 1,
    p_occurred_at => now() - interval '40 days');
SELECT test_helpers.logout();
SELECT is((SELECT sum(used)::bigint FROM usage_tracker_private.quota_usage WHERE org_id = test_helpers.id('org_2')
            AND limit_key = 'ai_tokens' AND period_start < date_trunc('month', current_date)::date), 1::bigint,
    'a backfilled request counts in its own period');
SELECT test_helpers.login_as_service();
SELECT throws_ok($$ SELECT usage_tracker.set_limit_source('chat_messages', 'ai_log') $$, '22023', NULL,
    'only token limits can count the AI log');
SELECT throws_ok($$ SELECT usage_tracker.set_limit_source('ai_tokens', 'sometimes') $$, '22023', NULL, 'unknown source');
SELECT throws_ok($$ SELECT usage_tracker.set_limit_source('nope', 'events') $$, '22023', NULL, 'unknown limit');
SELECT test_helpers.login_as('user_a');
SELECT throws_ok($$ SELECT usage_tracker.set_limit_source('ai_tokens', 'events') $$, '42501', NULL, 'service_role only');
SELECT test_helpers.login_as_service();
SELECT is((SELECT source FROM usage_tracker.limit_settings WHERE limit_key = 'ai_tokens'), 'both', 'refused calls changed nothing');

-- Money in JSON: numbers, at most 9 decimal places.
SELECT usage_tracker.create_project(test_helpers.id('org_1'), 'Money');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_model_used => 'gpt-4o-mini',
    p_input_tokens => 7, p_cache_write_tokens => 3, p_cached => true,
    p_project_id => (SELECT id FROM usage_tracker.projects WHERE name = 'Money'));
SELECT is((SELECT scale(net_savings_usd) <= 9 AND scale(total_potential_cost_usd) <= 9
             FROM usage_tracker.get_dashboard_stats((SELECT id FROM usage_tracker.projects WHERE name = 'Money'), 1)), true,
    'get_dashboard_stats: money at no more than 9 decimal places');
CREATE TEMP TABLE r AS SELECT usage_tracker.start_report_run(test_helpers.id('user_a')) AS id;
SELECT is(jsonb_typeof(usage_tracker.mark_run_success((SELECT id FROM r), p_model_used => 'gpt-4o-mini', p_input_tokens => 7) -> 'cost_usd'),
    'number', 'mark_run_success: cost_usd is a JSON number');
SELECT is((usage_tracker.limits() ->> 'json_money_decimal_places')::int, 9, 'the scale is documented in limits()');

SELECT * FROM finish();
ROLLBACK;
