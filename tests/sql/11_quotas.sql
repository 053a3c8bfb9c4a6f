-- Seed 002: usage events, plans as data, limit checks and quota status;
-- atomic consume, PT429, reservations; bad input. As the real roles.
BEGIN;
SELECT plan(52);

SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('user_a'), 'member');
SELECT usage_tracker.set_org_member(test_helpers.id('org_1'), test_helpers.id('admin_1'), 'admin');

-- Plans are data: seed 002's limits table, exactly.
SELECT results_eq(
    $$ SELECT plan, limit_key, max_quantity FROM usage_tracker.plan_limits WHERE shipped AND limit_key <> 'report_runs_per_user'
        ORDER BY plan, limit_key $$,
    $$ VALUES ('pilot', 'ai_tokens', 1000000::bigint), ('pilot', 'analyses', 100), ('pilot', 'chat_messages', 500),
              ('pilot', 'csv_rows', 50000), ('pilot', 'csv_uploads', 50), ('pilot', 'mapping_profiles', 20),
              ('subscription', 'ai_tokens', -1), ('subscription', 'analyses', -1), ('subscription', 'chat_messages', -1),
              ('subscription', 'csv_rows', -1), ('subscription', 'csv_uploads', -1), ('subscription', 'mapping_profiles', -1),
              ('trial', 'ai_tokens', 100000), ('trial', 'analyses', 10), ('trial', 'chat_messages', 50),
              ('trial', 'csv_rows', 1000), ('trial', 'csv_uploads', 5), ('trial', 'mapping_profiles', 3) $$,
    'trial, pilot and subscription with the seed''s limits');
SELECT is((SELECT count(*) FROM usage_tracker.event_types WHERE shipped), 12::bigint, 'the eleven seed event types, plus report_run');
SELECT results_eq(
    $$ SELECT plan, max_quantity FROM usage_tracker.plan_limits WHERE limit_key = 'report_runs_per_user' ORDER BY plan $$,
    $$ VALUES ('pilot', 50::bigint), ('subscription', 50), ('trial', 50) $$,
    'seed 004''s monthly report run limit per user (50) on every shipped plan');

-- A member tracks events; an org without a plan is on trial.
SELECT test_helpers.login_as('user_a');
SELECT isa_ok(usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message'), 'uuid', 'track_usage_event returns the event id');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 38, '{"message_id": "m1"}');
SELECT results_eq($$ SELECT within_limit, current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$,
    $$ VALUES (true, 39::bigint, 50::bigint) $$, 'check_usage_limit: within_limit, current, limit (trial)');
SELECT is((SELECT user_id FROM usage_tracker.usage_events WHERE metadata ->> 'message_id' = 'm1'), test_helpers.id('user_a'),
    'the event records who tracked it');
-- Events over two types count against one limit (ai_tokens = input + output).
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'ai_tokens_input', 12500);
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'ai_tokens_output', 10950);
SELECT results_eq($$ SELECT current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'ai_tokens_output') $$,
    $$ VALUES (23450::bigint, 100000::bigint) $$, 'input and output tokens share the ai_tokens limit');
SELECT is(usage_tracker.get_usage_limits(test_helpers.id('org_1')) -> 'limits' -> 'ai_tokens',
    '{"current": 23450, "limit": 100000, "within_limit": true, "unit": "tokens",
      "breakdown": {"input_tokens": 12500, "output_tokens": 10950}}'::jsonb,
    'get_usage_limits: seed 002''s shape with the token breakdown');
SELECT is(usage_tracker.get_usage_limits(test_helpers.id('org_1')) ->> 'tier', 'trial', 'tier');
SELECT is(usage_tracker.get_usage_limits(test_helpers.id('org_1')) ->> 'period', 'current_month', 'period');
SELECT is(usage_tracker.get_quota_status(test_helpers.id('org_1')) - 'message',
    jsonb_build_object('org_id', test_helpers.id('org_1'), 'tier', 'trial', 'status', 'ok'), 'quota status ok below 80%');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message', 1);
SELECT is(usage_tracker.get_quota_status(test_helpers.id('org_1')) ->> 'status', 'approaching_limit', '80% (40 of 50) is approaching');

-- Atomic consume.
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 9) - 'event_id' - 'period_start' - 'period_end',
    '{"allowed": true, "current": 49, "limit": 50, "remaining": 1, "reserved": 0, "limit_key": "chat_messages", "unit": "messages"}'::jsonb,
    'consume within the limit');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 2) ->> 'allowed', 'false', 'a quantity that does not fit is refused');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 1) ->> 'allowed', 'true', 'the last one fits');
SELECT is((SELECT current FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message')), 50::bigint, 'nothing was recorded for the refused call');
SELECT is(usage_tracker.get_quota_status(test_helpers.id('org_1')) ->> 'status', 'over_limit', 'at the limit: over_limit');
SELECT throws_ok($$ SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message', 1, p_raise_on_limit => true) $$,
    'PT429', NULL, 'p_raise_on_limit raises PT429 (HTTP 429 through PostgREST)');
SELECT is((SELECT within_limit FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message')), false, 'check agrees');
-- Event types without a limit are always allowed; -1 means unlimited.
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_1'), 'export_pdf') ->> 'limit', '-1', 'no limit on export_pdf');
SELECT test_helpers.logout();

-- Plans: upgrade lifts the limit at once; custom plans are data too.
SELECT is(usage_tracker.set_org_plan(test_helpers.id('org_1'), 'pilot'), 'pilot', 'service_role sets the plan');
SELECT results_eq($$ SELECT within_limit, current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$,
    $$ VALUES (true, 50::bigint, 500::bigint) $$, 'pilot: 500 messages, usage kept');
SELECT is(usage_tracker.create_plan('team', 'Team plan', '{"chat_messages": 60, "ai_tokens": -1}'), 'team', 'custom plan');
SELECT usage_tracker.set_org_plan(test_helpers.id('org_1'), 'team');
SELECT results_eq($$ SELECT within_limit, current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$,
    $$ VALUES (true, 50::bigint, 60::bigint) $$, 'custom plan limits');
SELECT is((SELECT "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'csv_upload')), -1::bigint,
    'a limit the plan does not list is unlimited');
SELECT ok(usage_tracker.set_plan_limit('trial', 'chat_messages', 75), 'shipped plans can be given other limits');
SELECT is((SELECT "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'chat_message')), 75::bigint,
    'orgs without a plan are on trial, with the overridden limit');
SELECT is((SELECT count(*) FROM usage_tracker.plan_limits WHERE plan = 'trial' AND limit_key = 'chat_messages' AND shipped), 1::bigint,
    'the shipped row stays as shipped');
-- Total limits never reset: mapping profiles.
SELECT usage_tracker.set_org_plan(test_helpers.id('org_1'), 'trial');
SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'mapping_profile_created', 2, p_occurred_at => now() - interval '400 days');
SELECT results_eq($$ SELECT current, "limit" FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'mapping_profile_created') $$,
    $$ VALUES (2::bigint, 3::bigint) $$, 'mapping profiles count in total, not per month');

-- Reservations.
SELECT usage_tracker.set_org_plan(test_helpers.id('org_2'), 'trial');
SELECT test_helpers.login_as_service();
CREATE TEMP TABLE r AS SELECT usage_tracker.reserve_quota(test_helpers.id('org_2'), 'csv_upload', 3) AS j;
SELECT is((SELECT j ->> 'allowed' FROM r), 'true', 'reserve 3 of 5 uploads');
SELECT results_eq($$ SELECT within_limit, current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'csv_upload') $$,
    $$ VALUES (true, 0::bigint) $$, 'a reservation is not usage');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_2'), 'csv_upload', 3) ->> 'allowed', 'false', 'but it counts against the limit');
SELECT is(usage_tracker.consume_quota(test_helpers.id('org_2'), 'csv_upload', 2) ->> 'allowed', 'true', 'what is left can be consumed');
SELECT is(usage_tracker.commit_reservation(test_helpers.id('org_2'), (SELECT (j ->> 'reservation_id')::uuid FROM r), 1) ->> 'quantity',
    '1', 'commit the actual quantity (less than reserved)');
SELECT results_eq($$ SELECT within_limit, current FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'csv_upload') $$,
    $$ VALUES (true, 3::bigint) $$, 'the unused part is free again');
SELECT throws_ok(format($$ SELECT usage_tracker.commit_reservation(%L, %L) $$, test_helpers.id('org_2'), (SELECT j ->> 'reservation_id' FROM r)),
    '55000', NULL, 'a committed reservation cannot be committed again');
SELECT throws_ok(format($$ SELECT usage_tracker.release_reservation(%L, %L) $$, test_helpers.id('org_2'), (SELECT j ->> 'reservation_id' FROM r)),
    '55000', NULL, 'nor released');
CREATE TEMP TABLE r2 AS SELECT usage_tracker.reserve_quota(test_helpers.id('org_2'), 'csv_upload', 2) AS j;
SELECT is(usage_tracker.release_reservation(test_helpers.id('org_2'), (SELECT (j ->> 'reservation_id')::uuid FROM r2)), true, 'release');
SELECT is(usage_tracker.release_reservation(test_helpers.id('org_2'), (SELECT (j ->> 'reservation_id')::uuid FROM r2)), false, 'release twice: no-op');
SELECT throws_ok(format($$ SELECT usage_tracker.commit_reservation(%L, %L) $$, test_helpers.id('org_2'), (SELECT j ->> 'reservation_id' FROM r2)),
    '55000', NULL, 'a released reservation cannot be committed');
-- Expiry: an expired reservation stops counting at once and cannot be committed.
CREATE TEMP TABLE r3 AS SELECT usage_tracker.reserve_quota(test_helpers.id('org_2'), 'csv_upload', 2, p_ttl_seconds => 60) AS j;
SELECT is(usage_tracker.reserve_quota(test_helpers.id('org_2'), 'csv_upload', 1) ->> 'allowed', 'false', 'open reservations fill the quota');
SELECT test_helpers.logout();
UPDATE usage_tracker.quota_reservations SET expires_at = now() - interval '1 second'
 WHERE reservation_id = (SELECT (j ->> 'reservation_id')::uuid FROM r3);
SELECT test_helpers.login_as_service();
SELECT is((SELECT within_limit FROM usage_tracker.check_usage_limit(test_helpers.id('org_2'), 'csv_upload')), true, 'an expired reservation stops counting');
SELECT throws_ok(format($$ SELECT usage_tracker.commit_reservation(%L, %L) $$, test_helpers.id('org_2'), (SELECT j ->> 'reservation_id' FROM r3)),
    '55000', NULL, 'an expired reservation cannot be committed');
SELECT is((usage_tracker.run_maintenance() ->> 'reservations_expired')::int, 1, 'maintenance marks it expired');
SELECT test_helpers.logout();

-- Summary over days (seed 002's shape).
SELECT is(jsonb_object_keys_sorted, ARRAY['generated_at', 'org_id', 'period_days', 'summary_by_type', 'total_events'],
    'usage summary keys') FROM (SELECT array_agg(k ORDER BY k) AS jsonb_object_keys_sorted
                                  FROM jsonb_object_keys(usage_tracker.get_usage_summary(test_helpers.id('org_1'), 30)) k) s;
SELECT is(usage_tracker.get_usage_summary(test_helpers.id('org_1'), 30) -> 'summary_by_type' -> 'chat_message' -> 'total_quantity',
    '50'::jsonb, 'total quantity per type');
SELECT is((usage_tracker.get_usage_summary(test_helpers.id('org_1'), 365) -> 'summary_by_type' -> 'mapping_profile_created'), NULL,
    'events older than the window are left out');

-- Authorization.
SELECT test_helpers.login_as('user_b');
SELECT throws_ok($$ SELECT usage_tracker.track_usage_event(test_helpers.id('org_1'), 'chat_message') $$, '42501', NULL, 'non-members cannot track');
SELECT throws_ok($$ SELECT * FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$, '42501', NULL, 'nor check');
SELECT throws_ok($$ SELECT usage_tracker.consume_quota(test_helpers.id('org_1'), 'chat_message') $$, '42501', NULL, 'nor consume');
SELECT throws_ok($$ SELECT usage_tracker.set_org_plan(test_helpers.id('user_b'), 'subscription') $$, '42501', NULL, 'users cannot change plans');
SELECT test_helpers.login_as_anon();
SELECT throws_ok($$ SELECT * FROM usage_tracker.check_usage_limit(test_helpers.id('org_1'), 'chat_message') $$, '42501', NULL, 'anon: nothing');
SELECT test_helpers.logout();

SELECT * FROM finish();
ROLLBACK;
