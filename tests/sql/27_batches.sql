-- Batches: log_ai_usage_batch and track_usage_events give exactly what one
-- call per event gives (rows field by field, costs, keys, limits, budgets,
-- alerts, counters, rollups and dashboards), all or nothing, with each bad
-- event named by its index and its usual SQLSTATE. As the real roles.
BEGIN;
SELECT plan(63);

-- Two organizations set up alike: one is fed call by call, the other by batches.
CREATE TEMP TABLE o AS SELECT '0d0d0d0d-0000-4000-8000-000000000001'::uuid AS single,
                              '0d0d0d0d-0000-4000-8000-000000000002'::uuid AS batch,
                              '0d0d0d0d-0000-4000-8000-000000000003'::uuid AS single_ev,
                              '0d0d0d0d-0000-4000-8000-000000000004'::uuid AS batch_ev;
GRANT SELECT ON o TO PUBLIC;
SELECT usage_tracker.create_plan('batch_test', 'batch test plan',
    '{"chat_messages": 1000000, "csv_uploads": 50, "ai_tokens": 100000000}', p_base_plan => 'pilot');
SELECT usage_tracker.set_org_member(x, test_helpers.id('user_a'), 'member'),
       usage_tracker.set_org_member(x, test_helpers.id('user_b'), 'member'),
       usage_tracker.set_org_member(x, test_helpers.id('admin_1'), 'admin'),
       usage_tracker.set_org_plan(x, 'batch_test'),
       usage_tracker.set_budget(x, 0.05, NULL, '{10,50,100,200}'),
       usage_tracker.set_budget(x, 0.01, test_helpers.id('user_b'), '{50,100}')
  FROM o, unnest(ARRAY[o.single, o.batch, o.single_ev, o.batch_ev]) AS x;

-- The events (without org_id): every kind of request, a backfill in a
-- past month, a key repeated with the same payload.
CREATE TEMP TABLE ev (n int PRIMARY KEY, e jsonb);
GRANT SELECT ON ev TO PUBLIC;
INSERT INTO ev VALUES
 (1, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 1200, 'output_tokens', 350,
                        'model_used', 'gpt-4o-mini', 'customer_id', 7, 'customer_name', 'Acme')),
 (2, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 900, 'output_tokens', 100,
                        'cache_read_tokens', 5000, 'cache_write_tokens', 800, 'model_used', 'claude-sonnet-4-20250514',
                        'provider', 'anthropic')),
 (3, jsonb_build_object('user_id', test_helpers.id('user_b'), 'input_tokens', 100, 'output_tokens', 20,
                        'reasoning_tokens', 400, 'model_used', 'o3-mini', 'session_id', 's-1', 'latency_ms', 1234,
                        'tool_turns', 3)),
 (4, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 5000, 'output_tokens', 500, 'cached', true)),
 (5, jsonb_build_object('user_id', test_helpers.id('user_b'), 'status', 'error', 'error_message', 'timeout',
                        'request_type', 'chat', 'input_tokens', 10)),
 (6, jsonb_build_object('user_id', test_helpers.id('user_a'), 'model_used', 'mystery-model-9', 'input_tokens', 77)),
 (7, jsonb_build_object('user_id', test_helpers.id('user_b'), 'input_tokens', 300000, 'output_tokens', 90000,
                        'occurred_at', (now() - interval '2 days')::text, 'customer_id', 8)),
 (8, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 1000, 'output_tokens', 1000,
                        'occurred_at', (now() - interval '45 days')::text)),
 (9, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 10, 'idempotency_key', 'b-1',
                        'metadata', '{"trace": {"id": "t-1", "spans": [1, 2, 3]}}'::jsonb)),
 (10, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 10, 'idempotency_key', 'b-1',
                         'metadata', '{"trace": {"spans": [1, 2, 3], "id": "t-1"}}'::jsonb)),
 (11, jsonb_build_object('user_id', test_helpers.id('user_b'), 'input_tokens', '2500', 'output_tokens', 2500,
                         'user_email', 'b@example.com', 'model_used', 'gpt-4o', 'latency_ms', null)),
 (12, jsonb_build_object('user_id', test_helpers.id('user_a'), 'input_tokens', 40000, 'output_tokens', 8000,
                         'model_used', 'claude-sonnet-4-20250514'));

-- One call per event, with exactly the keys the event has (named arguments).
CREATE FUNCTION pg_temp.log_one(org uuid, e jsonb) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE id uuid;
BEGIN
    EXECUTE format('SELECT usage_tracker.log_ai_usage(%s)',
        (SELECT string_agg(format('p_%s => %L', k, CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}'
                                                   WHEN 'null' THEN NULL ELSE v::text END), ', ')
           FROM jsonb_each(e || jsonb_build_object('org_id', org)) AS x(k, v))) INTO id;
    RETURN id;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.log_one(uuid, jsonb) TO PUBLIC;

SELECT test_helpers.login_as_service();
CREATE TEMP TABLE single_ids AS SELECT n, pg_temp.log_one((SELECT single FROM o), e) AS id FROM ev ORDER BY n;
CREATE TEMP TABLE batch_ids AS
SELECT ordinality::int AS n, (value #>> '{}')::uuid AS id
  FROM jsonb_array_elements(usage_tracker.log_ai_usage_batch(
        (SELECT jsonb_agg(e || jsonb_build_object('org_id', (SELECT batch FROM o)) ORDER BY n) FROM ev)))
       WITH ORDINALITY;
SELECT is((SELECT count(*) FROM batch_ids), 12::bigint, 'the batch returns one id per event');
SELECT ok((SELECT bool_and(l.org_id = (SELECT batch FROM o)) FROM batch_ids b JOIN usage_tracker.ai_usage_log l ON l.id = b.id),
    'in input order, each the id of its row');
SELECT is((SELECT id FROM batch_ids WHERE n = 10), (SELECT id FROM batch_ids WHERE n = 9),
    'a key repeated in the batch with the same payload returns the first id');
SELECT is((SELECT id FROM single_ids WHERE n = 10), (SELECT id FROM single_ids WHERE n = 9), '(as one call per event does)');

-- Field by field: every column of the log but the ids and organization.
CREATE FUNCTION pg_temp.log_rows(org uuid) RETURNS SETOF jsonb LANGUAGE sql AS $$
    SELECT to_jsonb(l) - 'id' - 'org_id' - 'ingest_seq' FROM usage_tracker.ai_usage_log l WHERE l.org_id = org
$$;
SELECT is((SELECT count(*) FROM pg_temp.log_rows((SELECT batch FROM o))), 11::bigint, 'eleven rows (the repeated key counted once)');
SELECT is_empty($$ SELECT * FROM pg_temp.log_rows((SELECT single FROM o)) EXCEPT ALL SELECT * FROM pg_temp.log_rows((SELECT batch FROM o)) $$,
    'every row logged one by one is in the batch''s, field by field (costs, prices, unpriced buckets, provider, metadata)');
SELECT is_empty($$ SELECT * FROM pg_temp.log_rows((SELECT batch FROM o)) EXCEPT ALL SELECT * FROM pg_temp.log_rows((SELECT single FROM o)) $$,
    'and nothing else');
SELECT ok((SELECT count(DISTINCT tableoid) FROM usage_tracker.ai_usage_log WHERE org_id = (SELECT batch FROM o)) >= 2,
    'rows of two months went to their partitions');
SELECT test_helpers.logout();
SELECT is((SELECT sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = (SELECT batch FROM o) AND limit_key = 'ai_tokens'),
          (SELECT sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = (SELECT single FROM o) AND limit_key = 'ai_tokens'),
    'the AI-fed token limit counted the same tokens');
SELECT ok((SELECT sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = (SELECT batch FROM o) AND limit_key = 'ai_tokens') > 0,
    '(and counted some)');
SELECT results_eq(
    $$ SELECT b.user_id, sum(s.spent_usd) FROM usage_tracker_private.budget_spend s JOIN usage_tracker.budgets b USING (budget_id)
        WHERE s.org_id = (SELECT batch FROM o) GROUP BY 1, s.period_start ORDER BY 1 NULLS FIRST, s.period_start $$,
    $$ SELECT b.user_id, sum(s.spent_usd) FROM usage_tracker_private.budget_spend s JOIN usage_tracker.budgets b USING (budget_id)
        WHERE s.org_id = (SELECT single FROM o) GROUP BY 1, s.period_start ORDER BY 1 NULLS FIRST, s.period_start $$,
    'budgets: the same spend per budget and period');
SELECT results_eq(
    $$ SELECT b.user_id, a.threshold_pct FROM usage_tracker.budget_alerts a JOIN usage_tracker.budgets b USING (budget_id)
        WHERE a.org_id = (SELECT batch FROM o) ORDER BY 1 NULLS FIRST, 2 $$,
    $$ SELECT b.user_id, a.threshold_pct FROM usage_tracker.budget_alerts a JOIN usage_tracker.budgets b USING (budget_id)
        WHERE a.org_id = (SELECT single FROM o) ORDER BY 1 NULLS FIRST, 2 $$,
    'the same alerts, each once');
SELECT ok((SELECT count(*) FROM usage_tracker.budget_alerts WHERE org_id = (SELECT batch FROM o)) >= 3, '(there were alerts to raise)');
SELECT is((SELECT sum(spent_usd) FROM usage_tracker_private.budget_spend s JOIN usage_tracker.budgets b USING (budget_id)
            WHERE s.org_id = (SELECT batch FROM o) AND b.user_id IS NULL
              AND s.period_start = date_trunc('month', now())::date),
          (SELECT sum(total_cost_usd) FROM usage_tracker.ai_usage_log WHERE org_id = (SELECT batch FROM o)
              AND created_at >= date_trunc('month', now())),
    'the organization budget holds exactly this month''s logged cost');

-- Rollups and dashboards.
SELECT ok((usage_tracker.run_maintenance() ->> 'ok')::boolean, 'maintenance folds both');
SELECT test_helpers.login_as_service();
SELECT is(usage_tracker.get_ai_usage_dashboard(90, (SELECT batch FROM o)), usage_tracker.get_ai_usage_dashboard(90, (SELECT single FROM o)),
    'the dashboards are the same JSON');
SELECT is(usage_tracker.get_ai_cost_summary((SELECT batch FROM o)), usage_tracker.get_ai_cost_summary((SELECT single FROM o)),
    'so are the cost summaries');
SELECT is_empty($$
    SELECT to_jsonb(d) - 'org_id' - 'updated_at' FROM usage_tracker.ai_usage_daily d WHERE org_id = (SELECT batch FROM o)
    EXCEPT ALL SELECT to_jsonb(d) - 'org_id' - 'updated_at' FROM usage_tracker.ai_usage_daily d WHERE org_id = (SELECT single FROM o) $$,
    'and the daily rollup rows');

-- A retry of the whole batch (keys and all) writes nothing more; without keys it would log again.
SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE retry AS SELECT jsonb_build_array(
    jsonb_build_object('user_id', test_helpers.id('user_a'), 'org_id', (SELECT batch FROM o), 'input_tokens', 5, 'idempotency_key', 'r-1'),
    jsonb_build_object('user_id', test_helpers.id('user_a'), 'org_id', (SELECT batch FROM o), 'input_tokens', 6, 'idempotency_key', 'r-2')) AS b;
GRANT SELECT ON retry TO PUBLIC;
CREATE TEMP TABLE retry_ids AS SELECT usage_tracker.log_ai_usage_batch((SELECT b FROM retry)) AS ids;
GRANT SELECT ON retry_ids TO PUBLIC;
SELECT is(usage_tracker.log_ai_usage_batch((SELECT b FROM retry)), (SELECT ids FROM retry_ids), 'a retried batch returns the same ids');
SELECT is(usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_org_id => (SELECT batch FROM o), p_input_tokens => 6,
          p_idempotency_key => 'r-2'), ((SELECT ids FROM retry_ids) ->> 1)::uuid, 'a single call retrying a batch''s key gets its id');
SELECT is((SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key IN ('r-1', 'r-2')), 2::bigint, 'counted once');

-- Bad input: the batch's own shape, then each event's values. Nothing is written.
SELECT test_helpers.logout();
CREATE TEMP TABLE before AS SELECT test_helpers.count_rows('usage_tracker.ai_usage_log') AS log,
    test_helpers.count_rows('usage_tracker_private.ai_usage_idempotency') AS keys,
    (SELECT sum(used) FROM usage_tracker_private.quota_usage) AS used,
    (SELECT sum(spent_usd) FROM usage_tracker_private.budget_spend) AS spent;
GRANT SELECT ON before TO PUBLIC;
CREATE FUNCTION pg_temp.ev(extra jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('user_id', test_helpers.id('user_a'), 'org_id', '0d0d0d0d-0000-4000-8000-000000000002') || extra
$$;
GRANT EXECUTE ON FUNCTION pg_temp.ev(jsonb) TO PUBLIC;
SELECT test_helpers.login_as('user_a');
SELECT is(usage_tracker.log_ai_usage_batch('[]'), '[]'::jsonb, 'an empty batch returns []');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(NULL) $$, '22004', 'p_events must not be null', 'NULL: 22004');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch('{"user_id": "x"}') $$, '22023',
    'invalid p_events: must be a JSON array of event objects', 'an object, not an array: 22023');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch('"[]"') $$, '22023', NULL, 'a string: 22023');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{}'), 42)) $$, '22023',
    'events[1]: must be a JSON object', 'an element that is not an object: 22023, named');
SELECT throws_like($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_token": 5}'))) $$,
    'events[0].input_token: unknown key%', 'an unknown key: named');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_token": 5}'))) $$, '22023', NULL,
    '(22023)');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch((SELECT jsonb_agg(pg_temp.ev('{}')) FROM generate_series(1, 10001))) $$,
    '54000', 'p_events is too large: 10001 events; at most 10000 per batch (split it)', 'more than 10,000 events: 54000');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{}'), pg_temp.ev('{}'),
                    pg_temp.ev('{"input_tokens": -1}'))) $$,
    '22003', 'events[2].input_tokens: out of range: -1 is not between 0 and 1000000000000', 'a bad value: its usual SQLSTATE, its index and key');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": 1.5}'))) $$,
    '22P02', 'events[0].input_tokens: invalid input syntax for type bigint: "1.5"', 'not an integer: 22P02 (as the argument would)');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"output_tokens": 9223372036854775808}'))) $$,
    '22003', NULL, 'past bigint: 22003');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": {"n": 1}}'))) $$,
    '22023', NULL, 'an object for a number: 22023');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"status": "maybe"}'))) $$,
    '22023', NULL, 'a bad status: 22023');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"model_used": null}'))) $$,
    '22004', 'events[0].model_used: must not be null', 'null for a required value: 22004');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev(jsonb_build_object('session_id', repeat('s', 201))))) $$,
    '22001', NULL, 'text too long: 22001');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"occurred_at": "soon"}'))) $$,
    '22007', NULL, 'a time that is not one: 22007');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"user_id": "not-a-uuid"}'))) $$,
    '22P02', NULL, 'a bad uuid: 22P02');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"metadata": [1, 2]}'))) $$,
    '22023', 'events[0].metadata: must be a JSON object', 'metadata that is not an object: 22023');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{}'),
                    pg_temp.ev(jsonb_build_object('user_id', test_helpers.id('user_b'))))) $$,
    '42501', NULL, 'another user''s usage in a batch: 42501');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"org_id": "0a0a0a0a-0000-4000-8000-000000000002"}'))) $$,
    '42501', NULL, 'an organization the caller is not in: 42501');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev(jsonb_build_object('occurred_at', now() - interval '1 day')))) $$,
    '42501', NULL, 'a user backfilling: 42501');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": 99, "idempotency_key": "r-1"}'))) $$,
    '23505', NULL, 'a logged key with another payload: 23505');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": 1, "idempotency_key": "n-1"}'),
                    pg_temp.ev('{"input_tokens": 2, "idempotency_key": "n-1"}'))) $$,
    '23505', NULL, 'a key repeated in the batch with another payload: 23505');
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": 1, "idempotency_key": "n-2"}'),
                    pg_temp.ev('{"input_tokens": 2, "idempotency_key": "n-3"}'), pg_temp.ev('{"tool_turns": -4}'))) $$,
    '22003', NULL, 'good events before a bad one');
SELECT test_helpers.logout();
SELECT is((SELECT row(test_helpers.count_rows('usage_tracker.ai_usage_log'), test_helpers.count_rows('usage_tracker_private.ai_usage_idempotency'),
                      (SELECT sum(used) FROM usage_tracker_private.quota_usage), (SELECT sum(spent_usd) FROM usage_tracker_private.budget_spend))::text),
          (SELECT row(log, keys, used, spent)::text FROM before), 'none of the refused batches wrote anything (rows, keys, limits, budgets)');
SELECT test_helpers.login_as('user_a');
SELECT is(jsonb_array_length(usage_tracker.log_ai_usage_batch(jsonb_build_array(pg_temp.ev('{"input_tokens": 1, "idempotency_key": "n-2"}'),
          pg_temp.ev('{"input_tokens": 2, "idempotency_key": "n-3"}')))), 2, 'the keys of a refused batch were not taken');
SELECT test_helpers.login_as_anon();
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage_batch('[]') $$, '42501', NULL, 'anon cannot call it');

-- track_usage_events: the same as track_usage_event per event.
SELECT test_helpers.login_as_service();
CREATE TEMP TABLE uev (n int PRIMARY KEY, e jsonb);
GRANT SELECT ON uev TO PUBLIC;
INSERT INTO uev SELECT n, jsonb_build_object('event_type', CASE n % 3 WHEN 0 THEN 'chat_message' WHEN 1 THEN 'csv_upload' ELSE 'ai_tokens_input' END,
                                            'quantity', n * 7)
                           || CASE WHEN n % 4 = 0 THEN jsonb_build_object('occurred_at', now() - make_interval(days => n)) ELSE '{}' END
                           || CASE WHEN n % 5 = 0 THEN '{"metadata": {"source": "import"}}'::jsonb ELSE '{}' END
                           || CASE WHEN n = 1 THEN '{"quantity": null}'::jsonb - 'quantity' ELSE '{}' END
  FROM generate_series(1, 40) n;
CREATE FUNCTION pg_temp.track_one(org uuid, e jsonb) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE id uuid;
BEGIN
    EXECUTE format('SELECT usage_tracker.track_usage_event(%s)',
        (SELECT string_agg(format('p_%s => %L', k, CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}' ELSE v::text END), ', ')
           FROM jsonb_each(e || jsonb_build_object('org_id', org)) AS x(k, v))) INTO id;
    RETURN id;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.track_one(uuid, jsonb) TO PUBLIC;
SELECT count(pg_temp.track_one((SELECT single_ev FROM o), e)) FROM (SELECT e FROM uev ORDER BY n) x;
CREATE TEMP TABLE tids AS SELECT usage_tracker.track_usage_events(
    (SELECT jsonb_agg(e || jsonb_build_object('org_id', (SELECT batch_ev FROM o)) ORDER BY n) FROM uev)) AS ids;
SELECT is(jsonb_array_length((SELECT ids FROM tids)), 40, 'track_usage_events returns one id per event');
SELECT is((SELECT count(*) FROM usage_tracker.usage_events e JOIN jsonb_array_elements_text((SELECT ids FROM tids)) i ON e.id = i::uuid),
    40::bigint, 'each the id of its event');
SELECT is_empty($$
    SELECT to_jsonb(e) - 'id' - 'org_id' - 'recorded_at' FROM usage_tracker.usage_events e WHERE org_id = (SELECT single_ev FROM o)
    EXCEPT ALL SELECT to_jsonb(e) - 'id' - 'org_id' - 'recorded_at' FROM usage_tracker.usage_events e WHERE org_id = (SELECT batch_ev FROM o) $$,
    'the events are the same, field by field');
SELECT results_eq(
    $$ SELECT type, date, count, events, first_at, last_at FROM usage_tracker.organization_usage WHERE org_id = (SELECT batch_ev FROM o) ORDER BY 1, 2 $$,
    $$ SELECT type, date, count, events, first_at, last_at FROM usage_tracker.organization_usage WHERE org_id = (SELECT single_ev FROM o) ORDER BY 1, 2 $$,
    'so are the daily counters');
SELECT test_helpers.logout();
SELECT results_eq(
    $$ SELECT limit_key, period_start, sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = (SELECT batch_ev FROM o) GROUP BY 1, 2 ORDER BY 1, 2 $$,
    $$ SELECT limit_key, period_start, sum(used) FROM usage_tracker_private.quota_usage WHERE org_id = (SELECT single_ev FROM o) GROUP BY 1, 2 ORDER BY 1, 2 $$,
    'and the limits'' period rows');
SELECT test_helpers.login_as_service();
SELECT is(usage_tracker.get_usage_limits((SELECT batch_ev FROM o)) - 'org_id', usage_tracker.get_usage_limits((SELECT single_ev FROM o)) - 'org_id',
    'get_usage_limits answers the same');
SELECT is((usage_tracker.check_usage_limit((SELECT batch_ev FROM o), 'csv_upload')).within_limit, false,
    'events are recorded past a limit (as track_usage_event does); the check then says no');

SELECT test_helpers.login_as('user_a');
CREATE TEMP TABLE ubefore AS SELECT test_helpers.count_rows('usage_tracker.usage_events') AS n,
    (SELECT sum(count) FROM usage_tracker.organization_usage) AS c;
GRANT SELECT ON ubefore TO PUBLIC;
SELECT is(usage_tracker.track_usage_events('[]'), '[]'::jsonb, 'an empty batch returns []');
SELECT throws_ok(format($$ SELECT usage_tracker.track_usage_events('[{"org_id": "%s", "event_type": "chat_message", "quantity": -1}]') $$,
    (SELECT batch_ev FROM o)), '22003', 'events[0].quantity: out of range: -1 is not between 0 and 1000000000000000', 'a bad quantity: 22003, named');
SELECT throws_ok(format($$ SELECT usage_tracker.track_usage_events('[{"org_id": "%s", "event_type": "chat_message"}, {"org_id": "%s", "event_type": "nope"}]') $$,
    (SELECT batch_ev FROM o), (SELECT batch_ev FROM o)), '22023', NULL, 'an unknown event type: 22023');
SELECT throws_ok(format($$ SELECT usage_tracker.track_usage_events('[{"org_id": "%s", "event_type": "chat_message", "user_id": "x"}]') $$,
    (SELECT batch_ev FROM o)), '22023', NULL, 'an unknown key: 22023');
SELECT throws_ok($$ SELECT usage_tracker.track_usage_events('[{"event_type": "chat_message"}]') $$, '22004',
    'events[0].org_id: must not be null', 'no organization: 22004');
SELECT throws_ok($$ SELECT usage_tracker.track_usage_events('[{"org_id": "0a0a0a0a-0000-4000-8000-000000000002", "event_type": "chat_message"}]') $$,
    '42501', NULL, 'an organization the caller is not in: 42501');
SELECT throws_ok(format($$ SELECT usage_tracker.track_usage_events(jsonb_build_array(jsonb_build_object('org_id', '%s', 'event_type', 'chat_message',
    'quantity', 999999999999999999), jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999),
    jsonb_build_object('org_id', '%s', 'event_type', 'chat_message', 'quantity', 999999999999999999))) $$,
    (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o),
    (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o), (SELECT batch_ev FROM o)),
    '22003', NULL, 'a batch whose sum passes bigint: 22003');
SELECT is((SELECT row(test_helpers.count_rows('usage_tracker.usage_events'), (SELECT sum(count) FROM usage_tracker.organization_usage))::text),
    (SELECT row(n, c)::text FROM ubefore), 'none of them wrote anything');

SELECT * FROM finish();
ROLLBACK;
