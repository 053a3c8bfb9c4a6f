-- Custom event types and limits, billing anchor days and time zones: "this
-- month" is the organization's billing period, never the session's.
BEGIN;
SELECT plan(12);

-- A custom event type, a custom limit over it, a plan using it.
SELECT is(usage_tracker.add_event_type('widget_render', 'renders', 'A dashboard widget rendered'), true, 'custom event type');
SELECT is(usage_tracker.add_event_type('widget_render'), false, 'adding it again is a no-op');
SELECT ok(usage_tracker.define_limit('widget_renders', '{widget_render}', 'renders'), 'custom limit over it');
SELECT throws_ok($$ SELECT usage_tracker.define_limit('chat_messages', '{widget_render}') $$, '22023', NULL,
    'shipped limit definitions are fixed');
SELECT throws_ok($$ SELECT usage_tracker.define_limit('bogus', '{no_such_type}') $$, '22023', NULL,
    'limits only over known event types');
SELECT usage_tracker.create_plan('widgets', NULL, '{"widget_renders": 3}');
SELECT usage_tracker.set_org_plan(test_helpers.id('org_1'), 'widgets');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'widget_render', 2);
SELECT results_eq($$ SELECT within_limit, current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'widget_render') $$,
    $$ VALUES (true, 2::bigint, 3::bigint) $$, 'custom types count against custom limits');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'widget_render', 2) ->> 'allowed', 'false', 'and are enforced');

-- A limit defined after usage starts from the period's counters.
SELECT usage_tracker.define_limit('widget_renders_total', '{widget_render}', 'renders', 'total');
SELECT usage_tracker.set_plan_limit('widgets', 'widget_renders_total', 100);
SELECT is((usage_tracker.get_usage_limits(test_helpers.id('org_1')) -> 'limits' -> 'widget_renders_total' ->> 'current')::int, 2,
    'a new limit counts what was already used');

-- Billing anchor day: periods run from the 15th to the 15th.
SELECT usage_tracker.set_org_settings(test_helpers.id('org_2'), 'UTC', 15);
SELECT usage_tracker.track_usage_event(test_helpers.id('org_2'), 'chat_message', 7);
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_2'), 'chat_message', 0) ->> 'period_start',
    (CASE WHEN extract(day FROM now() AT TIME ZONE 'UTC') >= 15
          THEN date_trunc('month', now() AT TIME ZONE 'UTC') + interval '14 days'
          ELSE date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month' + interval '14 days' END)::date::text,
    'the billing period starts on the anchor day');
-- An event before the period start (backfill) does not count this period.
SELECT usage_tracker.track_usage_event(test_helpers.id('org_2'), 'chat_message', 100,
    p_occurred_at => ((usage_tracker.consume_quota(test_helpers.id('org_2'), 'chat_message', 0) ->> 'period_start')::date - 1)::timestamp AT TIME ZONE 'UTC');
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'chat_message')), 7::bigint,
    'usage before the period start belongs to the previous period');

-- Time zone: an event at 23:30 UTC on the last day before the period is
-- already in the new period for an organization at UTC+9.
SELECT usage_tracker.set_org_settings(test_helpers.id('user_b'), 'Asia/Tokyo', 1);
SELECT usage_tracker.track_usage_event(test_helpers.id('user_b'), 'chat_message', 5,
    p_occurred_at => date_trunc('month', now() AT TIME ZONE 'Asia/Tokyo') AT TIME ZONE 'Asia/Tokyo' + interval '30 minutes');
SELECT usage_tracker.track_usage_event(test_helpers.id('user_b'), 'chat_message', 50,
    p_occurred_at => date_trunc('month', now() AT TIME ZONE 'Asia/Tokyo') AT TIME ZONE 'Asia/Tokyo' - interval '30 minutes');
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('user_b'), 'chat_message')), 5::bigint,
    'the period starts at midnight in the organization''s time zone');
SET LOCAL TimeZone = 'Pacific/Honolulu';
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('user_b'), 'chat_message')), 5::bigint,
    'whatever the session''s TimeZone');

SELECT * FROM finish();
ROLLBACK;
