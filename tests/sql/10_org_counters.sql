-- Seed 000: organization counters by type and day, per-period counts,
-- summaries, detail records and the six analyses; scoped to members.
BEGIN;
SELECT plan(30);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- History (service_role may record past dates).
SELECT test_helpers.login_as_service();
SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), t, n, d)
  FROM (VALUES ('message', 100, '2026-01-05'::date), ('message', 50, '2026-01-06'), ('reasoning', 20, '2026-01-06'),
               ('message', 7, '2025-12-31'), ('reasoning', 9, '2025-12-29')) AS v(t, n, d);
SELECT test_helpers.logout();

-- Today, as a member.
SELECT test_helpers.login_as('user_a');
SELECT is(usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message'), 1::bigint, 'count defaults to 1; returns the day''s total');
SELECT is(usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 4, metadata => '{"chat": 42}'), 5::bigint, 'adds up');
SELECT is(usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'reasoning', 3), 3::bigint, 'per type');
SELECT is(usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'image_generation', 2), 2::bigint,
    'any short type name (seed 000''s additional types)');
SELECT is(usage_tracker.get_message_count(test_helpers.id('org_1'), 'day'), 5::bigint, 'messages today');
SELECT is(usage_tracker.get_reasoning_count(test_helpers.id('org_1'), 'day'), 3::bigint, 'reasoning today');
SELECT is(usage_tracker.get_usage_count(test_helpers.id('org_1'), 'image_generation', 'year'), 2::bigint, 'any type, this year');
SELECT is(usage_tracker.get_usage_counts(test_helpers.id('org_1'), 'day'),
    '{"message": 5, "reasoning": 3, "image_generation": 2}'::jsonb, 'summary for today');
SELECT throws_ok($$ SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, current_date - 1) $$,
    '42501', NULL, 'a member cannot record a past date');
SELECT throws_ok($$ SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_2'), 'message') $$,
    '42501', NULL, 'nor count for another organization');
SELECT test_helpers.logout();

SELECT is(usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), '2026-01-01', '2026-01-31'),
    '{"message": 150, "reasoning": 20}'::jsonb, 'summary over a date range (inclusive)');
SELECT is(usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), '2025-12-31', '2026-01-05'),
    '{"message": 107}'::jsonb, 'range edges are inclusive');
SELECT is(usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), '2020-01-01', '2020-01-31'),
    '{}'::jsonb, 'empty range');

-- The counter row matches the detail rows, under seed 000's names.
SELECT results_eq(
    $$ SELECT count, events FROM usage_tracker.organization_usage WHERE org_id = test_helpers.id('org_1') AND type = 'message' AND date = '2026-01-05' $$,
    $$ VALUES (100::bigint, 1::bigint) $$, 'organization_usage holds the daily counter');
SELECT is((SELECT sum(count) FROM usage_tracker.usage_detail WHERE org_id = test_helpers.id('org_1') AND type = 'message'),
    162::numeric, 'usage_detail holds every increment');

-- Details: members see their own rows, admins all.
SELECT test_helpers.login_as('user_a');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1'))), 4::bigint, 'a member sees their own detail rows');
SELECT is((SELECT array_agg(metadata) FROM usage_tracker.get_usage_details(test_helpers.id('org_1'), 'message') WHERE metadata IS NOT NULL),
    ARRAY['{"chat": 42}'::jsonb], 'detail rows carry their metadata');
SELECT test_helpers.login_as('admin_1');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1'))), 9::bigint, 'an admin sees all');
SELECT is((SELECT count(*) FROM usage_tracker.get_usage_details(test_helpers.id('org_1'), 'message', '2026-01-01', '2026-01-31')),
    2::bigint, 'filtered by type and range');
SELECT test_helpers.login_as('user_b');
SELECT throws_ok($$ SELECT * FROM usage_tracker.get_usage_details(test_helpers.id('org_1')) $$, '42501', NULL, 'non-members see nothing');
SELECT throws_ok($$ SELECT usage_tracker.get_message_count(test_helpers.id('org_1'), 'day') $$, '42501', NULL, 'nor counts');
SELECT test_helpers.logout();

-- The six analyses.
SELECT results_eq($$ SELECT date, type, count FROM usage_tracker.usage_daily_by_type(test_helpers.id('org_1'), '2026-01-05', '2026-01-06') $$,
    $$ VALUES ('2026-01-05'::date, 'message', 100::bigint), ('2026-01-06', 'message', 50), ('2026-01-06', 'reasoning', 20) $$,
    'analysis 1: daily usage by type');
SELECT results_eq($$ SELECT week_start, type, count FROM usage_tracker.usage_weekly(test_helpers.id('org_1'), '2025-12-29', '2026-01-11') $$,
    $$ VALUES ('2025-12-29'::date, 'message', 7::bigint), ('2025-12-29', 'reasoning', 9), ('2026-01-05', 'message', 150), ('2026-01-05', 'reasoning', 20) $$,
    'analysis 2: ISO weeks');
SELECT results_eq($$ SELECT month, type, count, previous_count, change_pct FROM usage_tracker.usage_month_over_month(test_helpers.id('org_1'), '2025-12-01', '2026-01-31') $$,
    $$ VALUES ('2025-12-01'::date, 'message', 7::bigint, NULL::bigint, NULL::numeric), ('2025-12-01', 'reasoning', 9, NULL, NULL),
              ('2026-01-01', 'message', 150, 7, 2042.86), ('2026-01-01', 'reasoning', 20, 9, 122.22) $$,
    'analysis 3: month over month');
SELECT results_eq($$ SELECT date, messages, reasoning, reasoning_per_message FROM usage_tracker.usage_message_reasoning_ratio(test_helpers.id('org_1'), '2026-01-05', '2026-01-06') $$,
    $$ VALUES ('2026-01-05'::date, 100::bigint, 0::bigint, 0.0000::numeric), ('2026-01-06', 50, 20, 0.4000) $$,
    'analysis 6: reasoning per message');
SELECT ok((SELECT sum(events) FROM usage_tracker.usage_hourly_pattern(test_helpers.id('org_1'), '2026-01-05', '2026-01-06')) = 3,
    'analysis 5: hourly pattern from the detail records');
SELECT test_helpers.login_as_service();
SELECT is((SELECT count(*) FROM usage_tracker.usage_compare_organizations('2026-01-01', '2026-01-31')), 2::bigint,
    'analysis 4: comparison across organizations (service_role)');
SELECT test_helpers.login_as('admin_1');
SELECT throws_ok($$ SELECT * FROM usage_tracker.usage_compare_organizations('2026-01-01', '2026-01-31') $$, '42501', NULL,
    'comparison across organizations is for trusted callers only');
SELECT test_helpers.logout();

-- The organization's time zone decides the day.
SELECT usage_tracker.set_org_settings(test_helpers.id('org_2'), 'Asia/Tokyo');
SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_2'), 'message', 1);
SELECT is((SELECT date FROM usage_tracker.organization_usage WHERE org_id = test_helpers.id('org_2')),
    (now() AT TIME ZONE 'Asia/Tokyo')::date, 'the counter day is the organization''s local day');
SET LOCAL TimeZone = 'America/Los_Angeles';
SELECT is(usage_tracker.get_message_count(test_helpers.id('org_2'), 'day'), 1::bigint, 'whatever the session''s TimeZone');

SELECT * FROM finish();
ROLLBACK;
