-- Seed 001's three JSONB functions, run by the seed's own PL/pgSQL in a
-- separate database (loaded from ../shared/seeds by scripts/load_seed.sh),
-- against ours on the same rows: every key and number must match.
BEGIN;
SELECT plan(14);

-- The rows: 3,000 requests over 75 days from 9 users (one without an email,
-- one with two emails, so 10 by_user rows), 30 customers (some without a name), four request
-- types, ~8% errors, some without latency. Deterministic (hash of i), all on
-- the seed's model, and none within an hour of a p_days window edge (the
-- two databases read now() a moment apart).
CREATE TEMP TABLE gen AS
WITH raw AS (
    SELECT i,
           floor(sqrt(abs(hashint4(i)) % 81))::int AS u,
           abs(hashint4(i + 100000)) % 5 AS no_customer,
           1 + abs(hashint4(i + 200000)) % 30 AS cust,
           abs(hashint4(i + 300000)) % 100 AS rt,
           abs(hashint4(i + 400000)) % 100 AS err,
           100 + abs(hashint4(i + 500000)) % 20000 AS input_tokens,
           50 + abs(hashint4(i + 600000)) % 4000 AS output_tokens,
           CASE WHEN i % 13 = 0 THEN NULL ELSE 200 + abs(hashint4(i + 700000)) % 9000 END AS latency_ms,
           abs(hashint4(i + 800000)) % 5 AS tool_turns,
           make_interval(secs => abs(hashint4(i + 900000)) % (75 * 86400)) + make_interval(secs => i / 1000000.0) AS age
      FROM generate_series(1, 3300) AS i
)
SELECT i,
       ('00000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid AS user_id,
       CASE WHEN u = 0 THEN NULL
            WHEN u = 1 AND i % 2 = 0 THEN 'one+alias@example.com'
            ELSE 'user' || u || '@example.com' END AS user_email,
       CASE WHEN no_customer = 0 THEN NULL ELSE cust END AS customer_id,
       CASE WHEN no_customer = 0 THEN NULL WHEN cust = 7 THEN NULL ELSE 'Customer ' || cust END AS customer_name,
       CASE WHEN rt < 45 THEN 'report' WHEN rt < 75 THEN 'insight' WHEN rt < 92 THEN 'scheduled' ELSE 'widget' END AS request_type,
       'session-' || (i % 97) AS session_id,
       input_tokens::bigint, output_tokens::bigint, latency_ms::int, tool_turns::int,
       CASE WHEN err < 8 THEN 'error' ELSE 'success' END AS status,
       CASE WHEN err < 8 THEN 'upstream timeout' END AS error_message,
       now() - age AS created_at
  FROM raw
 WHERE NOT EXISTS (SELECT 1 FROM unnest(ARRAY[1, 7, 30, 90]) AS w(d)
                    WHERE age BETWEEN make_interval(days => d) - interval '1 hour'
                                  AND make_interval(days => d) + interval '1 hour')
 LIMIT 3000;

-- 2,500 rows are folded into the daily rollup, the last 500 stay in the raw
-- tail: the functions read both, and a window's partial first day.
CREATE TEMP TABLE logged AS
SELECT g.*, usage_tracker.log_ai_usage(
           g.user_id, g.user_email, g.customer_id, g.customer_name, g.request_type, g.session_id,
           g.input_tokens, g.output_tokens, 'claude-sonnet-4-20250514', g.latency_ms, g.tool_turns,
           g.status, g.error_message, p_occurred_at => g.created_at) AS id
  FROM gen g WHERE g.i <= (SELECT i FROM gen ORDER BY i OFFSET 2499 LIMIT 1);
SELECT (usage_tracker.run_maintenance() -> 'rollups' ->> 'rows_folded') AS folded_rows \gset
INSERT INTO logged
SELECT g.*, usage_tracker.log_ai_usage(
           g.user_id, g.user_email, g.customer_id, g.customer_name, g.request_type, g.session_id,
           g.input_tokens, g.output_tokens, 'claude-sonnet-4-20250514', g.latency_ms, g.tool_turns,
           g.status, g.error_message, p_occurred_at => g.created_at)
  FROM gen g WHERE g.i > (SELECT i FROM gen ORDER BY i OFFSET 2499 LIMIT 1);

CREATE FUNCTION pg_temp.equivalence() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    conn text := (SELECT value FROM test_helpers.config WHERE key = 'seed001');
    stmt text;
    theirs jsonb;
    ours jsonb;
    u uuid;
    d int;
BEGIN
    IF conn IS NULL THEN
        RETURN NEXT skip('seed 001 is not in ../shared/seeds; no baseline to compare with', 14);
        RETURN;
    END IF;
    RETURN NEXT ok((SELECT count(*) FROM logged) = 3000 AND (SELECT sum(requests) FROM usage_tracker.ai_usage_daily) = 2500,
                   'all rows logged: 2,500 folded into the rollup, 500 in the raw tail');

    PERFORM dblink_exec(conn, 'TRUNCATE public.ai_usage_log');
    SELECT 'INSERT INTO public.ai_usage_log (id, user_id, user_email, customer_id, customer_name, request_type, '
           'session_id, input_tokens, output_tokens, model_used, latency_ms, tool_turns, status, error_message, created_at) VALUES '
           || string_agg(format('(%L, %L, %L, %L, %L, %L, %L, %s, %s, %L, %L, %s, %L, %L, %L)',
                  id, user_id, user_email, customer_id, customer_name, request_type, session_id,
                  input_tokens, output_tokens, 'claude-sonnet-4-20250514', latency_ms, tool_turns,
                  status, error_message, created_at), ', ')
      INTO stmt FROM logged;
    PERFORM dblink_exec(conn, stmt);

    FOREACH d IN ARRAY ARRAY[1, 7, 30, 90] LOOP
        SELECT j::jsonb INTO theirs FROM dblink(conn, format('SELECT public.get_ai_usage_dashboard(%s)::text', d)) AS t(j text);
        ours := usage_tracker.get_ai_usage_dashboard(d);
        RETURN NEXT is(ours, theirs, format('get_ai_usage_dashboard(%s) matches seed 001', d));
    END LOOP;

    FOR u, d IN SELECT x.u, x.d FROM (VALUES
            ('00000000-0000-4000-8000-000000000000'::uuid, 30),
            ('00000000-0000-4000-8000-000000000001'::uuid, 30),
            ('00000000-0000-4000-8000-000000000008'::uuid, 7),
            ('00000000-0000-4000-8000-000000000004'::uuid, 90),
            ('00000000-0000-4000-8000-000000000005'::uuid, 1),
            ('00000000-0000-4000-8000-000000000099'::uuid, 30)) AS x(u, d) LOOP
        SELECT j::jsonb INTO theirs FROM dblink(conn, format('SELECT public.get_user_ai_usage(%L, %s)::text', u, d)) AS t(j text);
        ours := usage_tracker.get_user_ai_usage(u, d);
        RETURN NEXT is(ours, theirs, format('get_user_ai_usage(%s, %s) matches seed 001', u, d));
    END LOOP;

    SELECT j::jsonb INTO theirs FROM dblink(conn, 'SELECT public.get_ai_cost_summary()::text') AS t(j text);
    RETURN NEXT is(usage_tracker.get_ai_cost_summary(), theirs, 'get_ai_cost_summary() matches seed 001');

    -- Non-trivial data: every section has content.
    ours := usage_tracker.get_ai_usage_dashboard(30);
    RETURN NEXT ok(jsonb_array_length(ours->'by_user') = 10 AND jsonb_array_length(ours->'by_customer') = 25
                   AND jsonb_array_length(ours->'by_request_type') = 4
                   AND (ours->'summary'->>'failed_requests')::int > 0,
                   'the comparison covers every section');
    -- Same numbers, same text: rounding and scale as the seed prints them.
    SELECT j INTO stmt FROM dblink(conn, 'SELECT public.get_ai_cost_summary()::text') AS t(j text);
    RETURN NEXT is(usage_tracker.get_ai_cost_summary()::text, stmt, 'cost summary is the same text');
END
$$;

SELECT * FROM pg_temp.equivalence();

SELECT * FROM finish();
ROLLBACK;
