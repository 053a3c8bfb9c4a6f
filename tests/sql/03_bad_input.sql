-- Every bad input gets its specific SQLSTATE and writes nothing. Run as
-- service_role, the most privileged API caller.
BEGIN;
SELECT plan(60);

CREATE TEMP TABLE bad_cases (descr text, stmt text, code text);
GRANT SELECT ON bad_cases TO PUBLIC;
INSERT INTO bad_cases VALUES
    -- log_ai_usage: required values
    ('NULL user',                 $$SELECT usage_tracker.log_ai_usage(NULL)$$, '22004'),
    ('NULL request type',         $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_request_type => NULL)$$, '22004'),
    ('NULL status',               $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_status => NULL)$$, '22004'),
    ('NULL model',                $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => NULL)$$, '22004'),
    -- enumerations
    ('unknown status',            $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_status => 'ok')$$, '22023'),
    ('status in wrong case',      $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_status => 'SUCCESS')$$, '22023'),
    ('unknown request type',      $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_request_type => 'bogus')$$, '22023'),
    ('empty model',               $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => '')$$, '22023'),
    ('bad provider',              $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_provider => 'Open AI')$$, '22023'),
    -- numbers
    ('negative input tokens',     $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => -1)$$, '22003'),
    ('negative output tokens',    $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_output_tokens => -1)$$, '22003'),
    ('negative cache-read',       $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_cache_read_tokens => -1)$$, '22003'),
    ('negative cache-write',      $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_cache_write_tokens => -1)$$, '22003'),
    ('negative reasoning',        $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_reasoning_tokens => -5)$$, '22003'),
    ('absurd tokens',             $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000000000001)$$, '22003'),
    ('bigint max tokens',         $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_output_tokens => 9223372036854775807)$$, '22003'),
    ('negative latency',          $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_latency_ms => -1)$$, '22003'),
    ('absurd latency',            $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_latency_ms => 86400001)$$, '22003'),
    ('negative tool turns',       $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_tool_turns => -1)$$, '22003'),
    ('absurd tool turns',         $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_tool_turns => 100001)$$, '22003'),
    -- text
    ('email too long',            $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_user_email => repeat('x', 321))$$, '22001'),
    ('customer name too long',    $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_customer_name => repeat('x', 501))$$, '22001'),
    ('session id too long',       $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_session_id => repeat('x', 201))$$, '22001'),
    ('error message too long',    $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_error_message => repeat('x', 10001))$$, '22001'),
    ('model too long',            $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => repeat('x', 201))$$, '22001'),
    -- idempotency keys
    ('empty idempotency key',     $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => '')$$, '22023'),
    ('key with a space',          $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => 'a b')$$, '22023'),
    ('key with a newline',        $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => E'a\nb')$$, '22023'),
    ('non-ASCII key',             $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => 'clé')$$, '22023'),
    ('key too long',              $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_idempotency_key => repeat('k', 201))$$, '22023'),
    -- metadata and time
    ('metadata array',            $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => '[1,2]')$$, '22023'),
    ('metadata scalar',           $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => '"x"')$$, '22023'),
    ('metadata too large',        $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_metadata => jsonb_build_object('x', repeat('y', 70000)))$$, '22023'),
    ('event in the future',       $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() + interval '1 hour')$$, '22023'),
    ('infinite time',             $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => '-infinity')$$, '22023'),
    ('year 1900',                 $$SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => '1900-01-01')$$, '22023'),
    -- reads
    ('p_days 0',                  $$SELECT usage_tracker.get_ai_usage_dashboard(0)$$, '22003'),
    ('p_days negative',           $$SELECT usage_tracker.get_ai_usage_dashboard(-30)$$, '22003'),
    ('p_days 3661',               $$SELECT usage_tracker.get_ai_usage_dashboard(3661)$$, '22003'),
    ('p_days NULL',               $$SELECT usage_tracker.get_ai_usage_dashboard(NULL)$$, '22004'),
    ('user usage p_days 0',       $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 0)$$, '22003'),
    ('user usage p_days 3661',    $$SELECT usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 3661)$$, '22003'),
    ('user usage NULL user',      $$SELECT usage_tracker.get_user_ai_usage(NULL, 30)$$, '22004'),
    -- membership
    ('member NULL org',           $$SELECT usage_tracker.set_org_member(NULL, test_helpers.id('user_a'), 'member')$$, '22004'),
    ('member NULL user',          $$SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), NULL, 'member')$$, '22004'),
    ('member unknown role',       $$SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'superadmin')$$, '22023'),
    ('member of personal org',    $$SELECT usage_tracker.set_org_member(test_helpers.id('user_a'), test_helpers.id('user_a'), 'member')$$, '22023'),
    ('remove NULL user',          $$SELECT usage_tracker.remove_org_member(test_helpers.id('org_1'), NULL)$$, '22004'),
    -- prices
    ('price NULL model',          $$SELECT usage_tracker.set_model_price('openai', NULL, now(), 1, 1)$$, '22004'),
    ('price NULL input',          $$SELECT usage_tracker.set_model_price('openai', 'm', now(), NULL, 1)$$, '22004'),
    ('price negative',            $$SELECT usage_tracker.set_model_price('openai', 'm', now(), -1, 1)$$, '22003'),
    ('price NaN',                 $$SELECT usage_tracker.set_model_price('openai', 'm', now(), 'NaN', 1)$$, '22003'),
    ('price infinite',            $$SELECT usage_tracker.set_model_price('openai', 'm', now(), 1, 'Infinity')$$, '22003'),
    ('price above the maximum',   $$SELECT usage_tracker.set_model_price('openai', 'm', now(), 100001, 1)$$, '22003'),
    ('price with 10 decimals',    $$SELECT usage_tracker.set_model_price('openai', 'm', now(), 0.0000000001, 1)$$, '22023'),
    ('price bad provider',        $$SELECT usage_tracker.set_model_price('Open AI', 'm', now(), 1, 1)$$, '22023'),
    ('price infinite start',      $$SELECT usage_tracker.set_model_price('openai', 'm', 'infinity', 1, 1)$$, '22023'),
    -- request types
    ('request type with caps',    $$SELECT usage_tracker.add_request_type('Translation')$$, '22023'),
    ('request type NULL',         $$SELECT usage_tracker.add_request_type(NULL)$$, '22004');

CREATE TEMP TABLE before_counts AS SELECT (test_helpers.count_rows('usage_tracker.ai_usage_log')
        + test_helpers.count_rows('usage_tracker.org_members')
        + test_helpers.count_rows('usage_tracker_private.ai_usage_idempotency')
        + (SELECT count(*) FROM usage_tracker.request_types WHERE NOT shipped)
        + (SELECT count(*) FROM usage_tracker.model_prices WHERE NOT shipped)) AS n;

SELECT test_helpers.login_as_service();
SELECT throws_ok(c.stmt, c.code, NULL, c.descr) FROM bad_cases c ORDER BY c.descr;
SELECT test_helpers.logout();

SELECT is((test_helpers.count_rows('usage_tracker.ai_usage_log')
        + test_helpers.count_rows('usage_tracker.org_members')
        + test_helpers.count_rows('usage_tracker_private.ai_usage_idempotency')
        + (SELECT count(*) FROM usage_tracker.request_types WHERE NOT shipped)
        + (SELECT count(*) FROM usage_tracker.model_prices WHERE NOT shipped)), (SELECT n FROM before_counts), 'no bad call wrote anything');

SELECT * FROM finish();
ROLLBACK;
