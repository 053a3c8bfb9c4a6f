-- Month boundaries: the last millisecond of a month and the first of the
-- next land in different periods, in UTC and in each organization's own
-- time zone (Asia/Tokyo, America/Los_Angeles, Asia/Kolkata at +5:30),
-- whatever the session's TimeZone. The boundary is the start of last month
-- (always in the past and within retention).
SELECT to_char(d, 'YYYY-MM-DD') AS first, to_char(d - 1, 'YYYY-MM-DD') AS last, to_char(d - 1, 'YYYY-MM-01') AS prev_first,
       to_char(d - 1, '"y"YYYY"m"MM') AS prev_part, to_char(d, '"y"YYYY"m"MM') AS part
  FROM (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date AS d) x \gset
BEGIN;
SELECT plan(22);
SET LOCAL TimeZone = 'Pacific/Chatham';  -- +13:45: wrong for everybody

CREATE TEMP TABLE zones (org uuid, tz text);
INSERT INTO zones VALUES ('0a0a0a0a-0000-4000-8000-0000000000c1', 'UTC'),
                         ('0a0a0a0a-0000-4000-8000-0000000000c2', 'Asia/Tokyo'),
                         ('0a0a0a0a-0000-4000-8000-0000000000c3', 'America/Los_Angeles'),
                         ('0a0a0a0a-0000-4000-8000-0000000000c4', 'Asia/Kolkata');
SELECT usage_tracker.set_org_settings(org, tz, 1) FROM zones;

-- In each organization's own time: 2026-10-31 23:59:59.999 and 2026-11-01 00:00.
SELECT usage_tracker.track_usage_event(z.org, 'chat_message', q,
           p_occurred_at => (t::timestamp AT TIME ZONE z.tz))
  FROM zones z, (VALUES (:'last' || ' 23:59:59.999', 1), (:'first' || ' 00:00:00', 10)) v(t, q);
-- And one UTC instant that is still October in Los Angeles but November in Tokyo and Kolkata.
SELECT usage_tracker.track_usage_event(z.org, 'chat_message', 100, p_occurred_at => (:'last' || ' 23:59:59.999+00')::timestamptz)
  FROM zones z;

CREATE FUNCTION pg_temp.day_count(o uuid, d date) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(count), 0)::bigint FROM usage_tracker.organization_usage
     WHERE org_id = o AND type = 'chat_message' AND date = d $$;
CREATE FUNCTION pg_temp.period_used(o uuid, d date) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(used), 0)::bigint FROM usage_tracker_private.quota_usage
     WHERE org_id = o AND period_start = d AND limit_key IN (SELECT limit_key FROM usage_tracker.limit_definitions
                                                              WHERE 'chat_message' = ANY (event_types)) $$;

SELECT is(pg_temp.day_count(org, :'last'), CASE WHEN tz IN ('UTC', 'America/Los_Angeles') THEN 101 ELSE 1 END::bigint,
          tz || ': the last millisecond of October counts on October 31 (local)') FROM zones ORDER BY tz;
SELECT is(pg_temp.day_count(org, :'first'), CASE WHEN tz IN ('UTC', 'America/Los_Angeles') THEN 10 ELSE 110 END::bigint,
          tz || ': local midnight starts November 1') FROM zones ORDER BY tz;
SELECT is(pg_temp.period_used(org, :'prev_first'), CASE WHEN tz IN ('UTC', 'America/Los_Angeles') THEN 101 ELSE 1 END::bigint,
          tz || ': the October billing period') FROM zones ORDER BY tz;
SELECT is(pg_temp.period_used(org, :'first'), CASE WHEN tz IN ('UTC', 'America/Los_Angeles') THEN 10 ELSE 110 END::bigint,
          tz || ': the November billing period') FROM zones ORDER BY tz;
SELECT is(usage_tracker.get_organization_usage_summary(org, :'prev_first', :'last') -> 'chat_message',
          to_jsonb(CASE WHEN tz IN ('UTC', 'America/Los_Angeles') THEN 101 ELSE 1 END),
          tz || ': the October summary') FROM zones ORDER BY tz;

-- The AI log is UTC (seed 001): its last October millisecond is October everywhere.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 7, p_occurred_at => (:'last' || ' 23:59:59.999+00')::timestamptz,
    p_session_id => 'edge');
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_input_tokens => 9, p_occurred_at => (:'first' || ' 00:00:00+00')::timestamptz,
    p_session_id => 'edge');
SELECT is((SELECT string_agg(tableoid::regclass::text, ',' ORDER BY created_at) FROM usage_tracker.ai_usage_log WHERE session_id = 'edge'),
    'usage_tracker_private.ai_usage_log_' || :'prev_part' || ',usage_tracker_private.ai_usage_log_' || :'part', 'each in its own month''s partition');
SELECT usage_tracker.run_maintenance();
SELECT results_eq(
    format($$ SELECT day, sum(input_tokens) FROM usage_tracker.ai_usage_user_daily
               WHERE user_id = test_helpers.id('user_a') AND day IN (%L, %L) GROUP BY day ORDER BY day $$, :'last', :'first'),
    format($$ VALUES (%L::date, 7::numeric), (%L::date, 9::numeric) $$, :'last', :'first'),
    'and in its own UTC day of the rollups');

SELECT * FROM finish();
ROLLBACK;
