-- Counters, events, plans and quotas reject bad input with a specific
-- SQLSTATE and write nothing.
BEGIN;
SELECT plan(56);

CREATE TEMP TABLE bad_cases (descr text, stmt text, code text);
GRANT SELECT ON bad_cases TO PUBLIC;
INSERT INTO bad_cases VALUES
    ('counter NULL org',            $$SELECT usage_tracker.increment_organization_usage(NULL, 'message')$$, '22004'),
    ('counter NULL type',           $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('counter empty type',          $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), '')$$, '22023'),
    ('counter type too long',       $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), repeat('m', 64))$$, '22001'),
    ('counter type with spaces',    $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'chat message')$$, '22023'),
    ('counter negative',            $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', -1)$$, '22003'),
    ('counter NULL count',          $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', NULL)$$, '22004'),
    ('counter overflowing count',   $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 9223372036854775807)$$, '22003'),
    ('counter future date',         $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, current_date + 2)$$, '22023'),
    ('counter infinite date',       $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, 'infinity')$$, '22023'),
    ('counter metadata array',      $$SELECT usage_tracker.increment_organization_usage(test_helpers.id('org_1'), 'message', 1, NULL, '[]')$$, '22023'),
    ('count unknown period',        $$SELECT usage_tracker.get_usage_count(test_helpers.id('org_1'), 'message', 'fortnight')$$, '22023'),
    ('count NULL period',           $$SELECT usage_tracker.get_message_count(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('summary NULL start',          $$SELECT usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), NULL, current_date)$$, '22004'),
    ('summary reversed range',      $$SELECT usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), current_date, current_date - 1)$$, '22023'),
    ('summary range too long',      $$SELECT usage_tracker.get_organization_usage_summary(test_helpers.id('org_1'), '2000-01-01', '2026-01-01')$$, '22003'),
    ('details limit 0',             $$SELECT * FROM usage_tracker.get_usage_details(test_helpers.id('org_1'), p_limit => 0)$$, '22003'),
    ('details limit too large',     $$SELECT * FROM usage_tracker.get_usage_details(test_helpers.id('org_1'), p_limit => 10001)$$, '22003'),
    ('event NULL org',              $$SELECT usage_tracker.track_usage_event(NULL, 'chat_message')$$, '22004'),
    ('event NULL type',             $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('event unknown type',          $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'teleport')$$, '22023'),
    ('event empty type',            $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), '')$$, '22023'),
    ('event type too long',         $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), repeat('e', 64))$$, '22001'),
    ('event negative quantity',     $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', -5)$$, '22003'),
    ('event NULL quantity',         $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', NULL)$$, '22004'),
    ('event NaN quantity (PostgreSQL refuses the cast)', $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 'NaN'::numeric::bigint)$$, '0A000'),
    ('event overflowing quantity',  $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1e30::numeric::bigint)$$, '22003'),
    ('event quantity over maximum', $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1000000000000000001)$$, '22003'),
    ('event in the future',         $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1, NULL, now() + interval '1 day')$$, '22023'),
    ('event metadata scalar',       $$SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1, '7')$$, '22023'),
    ('check unknown event type',    $$SELECT * FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'teleport')$$, '22023'),
    ('check NULL org',              $$SELECT * FROM usage_tracker.check_usage_limit(NULL, 'chat_message')$$, '22004'),
    ('consume negative',            $$SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', -1)$$, '22003'),
    ('consume unknown type',        $$SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'teleport')$$, '22023'),
    ('summary days 0',              $$SELECT usage_tracker.get_usage_summary(test_helpers.id('org_1'), 0)$$, '22003'),
    ('summary days 366',            $$SELECT usage_tracker.get_usage_summary(test_helpers.id('org_1'), 366)$$, '22003'),
    ('summary days NULL',           $$SELECT usage_tracker.get_usage_summary(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('reserve ttl 0',               $$SELECT usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 1, 0)$$, '22003'),
    ('reserve ttl too long',        $$SELECT usage_tracker.reserve_quota(test_helpers.id('org_1'), 'chat_message', 1, 86401)$$, '22003'),
    ('commit unknown reservation',  $$SELECT usage_tracker.commit_reservation(test_helpers.id('org_1'), gen_random_uuid())$$, '22023'),
    ('commit NULL reservation',     $$SELECT usage_tracker.commit_reservation(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('unknown plan',                $$SELECT usage_tracker.set_org_plan(test_helpers.id('org_1'), 'platinum')$$, '22023'),
    ('NULL plan',                   $$SELECT usage_tracker.set_org_plan(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('unknown time zone',           $$SELECT usage_tracker.set_org_settings(test_helpers.id('org_1'), 'Mars/Olympus')$$, '22023'),
    ('anchor day 32',               $$SELECT usage_tracker.set_org_settings(test_helpers.id('org_1'), NULL, 32)$$, '22003'),
    ('plan limit below -1',         $$SELECT usage_tracker.set_plan_limit('trial', 'chat_messages', -2)$$, '22003'),
    ('budget NULL amount',          $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('budget zero',                 $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 0)$$, '22003'),
    ('budget NaN',                  $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 'NaN')$$, '22003'),
    ('budget too many decimals',    $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 0.0000001)$$, '22023'),
    ('budget eleven thresholds',    $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 5, NULL, '{1,2,3,4,5,6,7,8,9,10,11}')$$, '22023'),
    ('budget threshold 1001',       $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 5, NULL, '{1001}')$$, '22003'),
    ('budget NULL threshold',       $$SELECT usage_tracker.set_budget(test_helpers.id('org_1'), 5, NULL, '{80,NULL}')$$, '22004'),
    ('alert NULL id',               $$SELECT usage_tracker.mark_alert_delivered(test_helpers.id('org_1'), NULL)$$, '22004'),
    ('pending alerts limit 0',      $$SELECT usage_tracker.get_pending_alerts(0)$$, '22003');

CREATE TEMP TABLE before_counts AS SELECT (test_helpers.count_rows('usage_tracker.usage_events') + test_helpers.count_rows('usage_tracker.organization_usage')
        + test_helpers.count_rows('usage_tracker_private.quota_usage') + test_helpers.count_rows('usage_tracker.quota_reservations')
        + test_helpers.count_rows('usage_tracker.organizations') + test_helpers.count_rows('usage_tracker.budgets')
        + (SELECT count(*) FROM usage_tracker.plan_limits WHERE NOT shipped)) AS n;

SELECT test_helpers.login_as_service();
SELECT throws_ok(c.stmt, c.code, NULL, c.descr) FROM bad_cases c ORDER BY c.descr;
SELECT test_helpers.logout();

SELECT is((test_helpers.count_rows('usage_tracker.usage_events') + test_helpers.count_rows('usage_tracker.organization_usage')
        + test_helpers.count_rows('usage_tracker_private.quota_usage') + test_helpers.count_rows('usage_tracker.quota_reservations')
        + test_helpers.count_rows('usage_tracker.organizations') + test_helpers.count_rows('usage_tracker.budgets')
        + (SELECT count(*) FROM usage_tracker.plan_limits WHERE NOT shipped)), (SELECT n FROM before_counts), 'no bad call wrote anything');

SELECT * FROM finish();
ROLLBACK;
