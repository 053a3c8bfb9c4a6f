-- log_ai_usage: the seed's call shape, defaults, exact costs, the price in
-- force, cached responses, unknown models and idempotency (sequential; the
-- concurrent case is in tests/isolation and tests/pgbench).
BEGIN;
SELECT plan(32);

SELECT test_helpers.login_as_service();

-- The seed's positional call (13 parameters) keeps working.
SELECT isa_ok(
    usage_tracker.log_ai_usage(test_helpers.id('user_a'), 'a@example.com', 42, 'Acme', 'report',
        'sess-1', 1000, 500, 'claude-sonnet-4-20250514', 1200, 2, 'success', NULL),
    'uuid', 'seed positional call returns a uuid');

SELECT results_eq(
    $$ SELECT org_id, user_email, customer_id, customer_name, request_type, session_id,
              input_tokens, output_tokens, total_tokens, model_used, provider, latency_ms,
              tool_turns, status, price_id
         FROM usage_tracker.ai_usage_log WHERE session_id = 'sess-1' $$,
    $$ VALUES (test_helpers.id('user_a'), 'a@example.com', 42::bigint, 'Acme', 'report', 'sess-1',
               1000::bigint, 500::bigint, 1500::bigint, 'claude-sonnet-4-20250514', 'anthropic',
               1200, 2, 'success', 1) $$,
    'columns as given; org defaults to the personal org; provider from the catalog');

SELECT results_eq(
    $$ SELECT input_cost_usd, output_cost_usd, total_cost_usd, potential_cost_usd
         FROM usage_tracker.ai_usage_log WHERE session_id = 'sess-1' $$,
    $$ VALUES (0.003::numeric, 0.0075::numeric, 0.0105::numeric, 0.0105::numeric) $$,
    'Claude Sonnet 4 at $3 / $15 per million tokens, exactly');

-- Defaults: only the user.
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_session_id => 'defaults') $$,
    'only p_user_id is required');
SELECT results_eq(
    $$ SELECT request_type, input_tokens, output_tokens, model_used, tool_turns, status, cached, total_cost_usd
         FROM usage_tracker.ai_usage_log WHERE session_id = 'defaults' $$,
    $$ VALUES ('report', 0::bigint, 0::bigint, 'claude-sonnet-4-20250514', 0, 'success', false, 0::numeric) $$,
    'seed defaults');

-- Cheapest model: one token is not rounded to zero.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'gpt-4o-mini',
    p_cache_read_tokens => 1, p_input_tokens => 0, p_session_id => 'one-token');
SELECT is((SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE session_id = 'one-token'),
    0.000000075::numeric, 'one cache-read token of gpt-4o-mini costs $0.000000075');

-- All five token kinds, priced separately.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 100, p_output_tokens => 200,
    p_cache_read_tokens => 10000, p_cache_write_tokens => 2000, p_reasoning_tokens => 300,
    p_session_id => 'five');
SELECT results_eq(
    $$ SELECT input_cost_usd, output_cost_usd, cache_read_cost_usd, cache_write_cost_usd, reasoning_cost_usd,
              total_cost_usd, total_tokens
         FROM usage_tracker.ai_usage_log WHERE session_id = 'five' $$,
    $$ VALUES (0.0003, 0.003, 0.003, 0.0075, 0.0045, 0.0183, 12600::bigint) $$,
    'cache read/write and reasoning tokens at their own prices');

-- Cached responses: nothing paid, potential cost kept.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000, p_output_tokens => 500,
    p_cached => true, p_session_id => 'cached');
SELECT results_eq(
    $$ SELECT cached, input_cost_usd, output_cost_usd, total_cost_usd, potential_cost_usd
         FROM usage_tracker.ai_usage_log WHERE session_id = 'cached' $$,
    $$ VALUES (true, 0::numeric, 0::numeric, 0::numeric, 0.0105::numeric) $$,
    'a cached response costs nothing and keeps what it would have cost');

-- GPT-4o at seed 003's price.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'gpt-4o',
    p_input_tokens => 1000000, p_output_tokens => 1000000, p_session_id => 'gpt4o');
SELECT is((SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE session_id = 'gpt4o'),
    20::numeric, 'gpt-4o at $5 / $15');

-- Unknown model: logged at zero cost and listed.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'mystery-9000',
    p_provider => 'acme-ai', p_input_tokens => 77, p_session_id => 'unknown');
SELECT results_eq(
    $$ SELECT price_id, total_cost_usd, provider FROM usage_tracker.ai_usage_log WHERE session_id = 'unknown' $$,
    $$ VALUES (NULL::integer, 0::numeric, 'acme-ai') $$,
    'unknown model: no price, zero cost, provider kept');
SELECT results_eq(
    $$ SELECT provider, model_used, requests, total_tokens FROM usage_tracker.list_unknown_models() $$,
    $$ VALUES ('acme-ai', 'mystery-9000', 1::bigint, 77::numeric) $$,
    'list_unknown_models lists it');

-- A provider that does not sell the model: unknown, not mispriced.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'gpt-4o',
    p_provider => 'anthropic', p_input_tokens => 5, p_session_id => 'wrong-provider');
SELECT is((SELECT price_id FROM usage_tracker.ai_usage_log WHERE session_id = 'wrong-provider'),
    NULL::integer, 'model priced only under another provider is unknown');

-- The price in force at the event's time, kept with the row.
SELECT isnt(usage_tracker.set_model_price('anthropic', 'claude-sonnet-4-20250514', '2026-06-01 00:00+00', 6, 30),
    NULL, 'set_model_price returns the new price_id');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000000,
    p_occurred_at => '2026-05-31 23:59:59.999999+00', p_session_id => 'before-change');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000000,
    p_occurred_at => '2026-06-01 00:00:00+00', p_session_id => 'after-change');
SELECT results_eq(
    $$ SELECT session_id, total_cost_usd, price_id = 1 FROM usage_tracker.ai_usage_log
        WHERE session_id IN ('before-change', 'after-change') ORDER BY created_at $$,
    $$ VALUES ('before-change', 3::numeric, true), ('after-change', 6::numeric, false) $$,
    'each event is costed with the price in force at its time');
SELECT is((SELECT input_usd_per_mtok FROM usage_tracker.model_prices p JOIN usage_tracker.ai_usage_log l USING (price_id)
            WHERE l.session_id = 'after-change'), 6::numeric(18,9), 'the row points at the price version used');
-- Correcting a version adds a newer row; old rows keep theirs.
SELECT usage_tracker.set_model_price('anthropic', 'claude-sonnet-4-20250514', '2026-06-01 00:00+00', 7, 30);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000000,
    p_occurred_at => '2026-06-02 00:00:00+00', p_session_id => 'after-correction');
SELECT is((SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE session_id = 'after-correction'),
    7::numeric, 'a correction with the same effective_from wins for new events');
SELECT is((SELECT total_cost_usd FROM usage_tracker.ai_usage_log WHERE session_id = 'after-change'),
    6::numeric, 'old rows keep the cost they were logged with');
-- set_model_price: a rate not given is no price, never another bucket's.
SELECT results_eq(
    $$ SELECT cache_read_usd_per_mtok, cache_write_usd_per_mtok, reasoning_usd_per_mtok, shipped
         FROM usage_tracker.model_prices WHERE price_id = (SELECT max(price_id) FROM usage_tracker.model_prices) $$,
    $$ VALUES (NULL::numeric(18,9), NULL::numeric(18,9), NULL::numeric(18,9), false) $$,
    'unset cache and reasoning prices are no price (not the input or output price)');

-- Past events land in their month's partition, created on demand.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - interval '11 months',
    p_session_id => 'old');
SELECT is((SELECT tableoid::regclass::text FROM usage_tracker.ai_usage_log WHERE session_id = 'old'),
    'usage_tracker_private.ai_usage_log_' || to_char((now() - interval '11 months') AT TIME ZONE 'UTC', '"y"YYYY"m"MM'),
    'partition created for a backfilled month');

-- Metadata, project and explicit org.
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.create_project(test_helpers.id('org_1'), 'A project', test_helpers.id('org_2'));
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'),
    p_project_id => test_helpers.id('org_2'), p_metadata => '{"feature": "summary", "n": 1.50}',
    p_session_id => 'meta');
SELECT results_eq(
    $$ SELECT org_id, project_id, metadata FROM usage_tracker.ai_usage_log WHERE session_id = 'meta' $$,
    $$ VALUES (test_helpers.id('org_1'), test_helpers.id('org_2'), '{"feature": "summary", "n": 1.50}'::jsonb) $$,
    'org, project and metadata stored');

-- Error requests.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_status => 'error',
    p_error_message => 'rate limited', p_session_id => 'err');
SELECT results_eq(
    $$ SELECT status, error_message FROM usage_tracker.ai_usage_log WHERE session_id = 'err' $$,
    $$ VALUES ('error', 'rate limited') $$, 'error requests are logged');

-- Idempotency: a retry of the same request returns the first id and
-- counts once; the same key with a different payload is refused.
SELECT is(
    usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 5, p_idempotency_key => 'req-1'),
    usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 5, p_idempotency_key => 'req-1'),
    'a retry returns the first id');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'req-1'), 1::bigint,
    'and is counted once');
SELECT throws_ok(
    $$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 999, p_idempotency_key => 'req-1') $$,
    '23505', NULL, 'the same key with a different payload is refused');
SELECT is((SELECT input_tokens FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'req-1'), 5::bigint,
    'the first call''s values stand');
SELECT isnt(
    usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => test_helpers.id('org_1'), p_idempotency_key => 'req-1'),
    (SELECT id FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'req-1' AND org_id = test_helpers.id('user_a')),
    'keys are per organization');
SELECT throws_ok(
    $$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_org_id => test_helpers.id('org_1'), p_idempotency_key => 'req-1') $$,
    '23505', NULL, 'another user reusing a key in the same org is a conflict');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'req-1'), 2::bigint,
    'the conflicting call wrote nothing');

-- Request types are extendable.
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_request_type => 'translation') $$,
    '22023', NULL, 'unknown request type rejected');
SELECT is(usage_tracker.add_request_type('translation', 'Translations'), true, 'service_role adds a request type');
SELECT is(usage_tracker.add_request_type('translation'), false, 'adding it again is a no-op');
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_request_type => 'translation') $$,
    'and then it is accepted');

SELECT * FROM finish();
ROLLBACK;
