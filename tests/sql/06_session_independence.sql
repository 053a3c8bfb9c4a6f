-- Results do not depend on the caller's session: TimeZone, search_path,
-- or temp tables and functions named like ours.
BEGIN;
SELECT plan(14);

-- Rows around UTC midnight and month ends, where local dates differ.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 1000 + n,
           p_occurred_at => ts, p_session_id => 'tz')
  FROM (VALUES (1, date_trunc('day', now()) - interval '30 minutes'),
               (2, date_trunc('day', now()) + interval '10 minutes'),
               (3, date_trunc('day', now()) - interval '1 day' + interval '23 hours 59 minutes'),
               (4, date_trunc('month', now()) - interval '1 second'),
               (5, date_trunc('month', now()) + interval '1 second'),
               (6, date_trunc('week', now()) - interval '1 minute')) AS v(n, ts)
 WHERE ts <= now();

CREATE TEMP TABLE utc AS
SELECT usage_tracker.get_ai_usage_dashboard(40) AS dash,
       usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 40) AS usr,
       usage_tracker.get_ai_cost_summary() AS cost;

CREATE FUNCTION pg_temp.same_in(tz text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('TimeZone', tz, true);
    RETURN NEXT is(usage_tracker.get_ai_usage_dashboard(40), (SELECT dash FROM utc), 'dashboard in ' || tz);
    RETURN NEXT is(usage_tracker.get_user_ai_usage(test_helpers.id('user_a'), 40), (SELECT usr FROM utc), 'user usage in ' || tz);
    RETURN NEXT is(usage_tracker.get_ai_cost_summary(), (SELECT cost FROM utc), 'cost summary in ' || tz);
    PERFORM set_config('TimeZone', 'UTC', true);
END
$$;
SELECT * FROM pg_temp.same_in('Asia/Tokyo');
SELECT * FROM pg_temp.same_in('America/Los_Angeles');
SELECT * FROM pg_temp.same_in('Asia/Kolkata');

SELECT ok((SELECT dash->'daily_trend' @> jsonb_build_array(jsonb_build_object(
               'date', (now() AT TIME ZONE 'UTC')::date - 1)) FROM utc),
    'a request at 23:30 UTC counts on its UTC day');

-- A user who shadows our tables with temp tables and a search_path of
-- their own changes nothing: the definers pin search_path and qualify names.
SELECT test_helpers.login_as('user_b');
CREATE TEMP TABLE org_members (org_id uuid, user_id uuid, role text);
INSERT INTO org_members VALUES (test_helpers.id('user_a'), test_helpers.id('user_b'), 'owner');
CREATE TEMP TABLE ai_usage_log (LIKE usage_tracker.ai_usage_log);
CREATE TEMP TABLE model_prices (LIKE usage_tracker.model_prices);
CREATE TEMP TABLE ai_usage_idempotency (org_id uuid, idempotency_key text, log_id uuid, user_id uuid);
SET LOCAL search_path = pg_temp, usage_tracker, public;
SELECT throws_ok($$ SELECT usage_tracker.get_ai_usage_dashboard(30, test_helpers.id('user_a')) $$, '42501',
    NULL, 'a temp org_members row grants nothing');
SELECT lives_ok($$ SELECT usage_tracker.log_ai_usage(test_helpers.id('user_b'), p_input_tokens => 1000, p_session_id => 'shadow') $$,
    'logging works with everything shadowed');
SELECT test_helpers.logout();
RESET search_path;
SELECT results_eq(
    $$ SELECT total_cost_usd, org_id FROM usage_tracker.ai_usage_log WHERE session_id = 'shadow' $$,
    $$ VALUES (0.003::numeric, test_helpers.id('user_b')) $$,
    'the row went to the real log, priced from the real catalog');
SELECT is((SELECT count(*) FROM pg_temp.ai_usage_log), 0::bigint, 'the temp table was not touched');

SELECT * FROM finish();
ROLLBACK;
