-- DROP EXTENSION removes everything, partitions included, and CREATE
-- EXTENSION works again with the API roles already there.
BEGIN;
SELECT plan(8);

SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_occurred_at => now() - interval '6 months');
SELECT usage_tracker.run_maintenance();
SELECT ok((SELECT count(*) FROM pg_inherits WHERE inhparent = 'usage_tracker.ai_usage_log'::regclass) >= 4,
    'partitions exist (one backfilled, this month and two ahead)');

SELECT lives_ok('DROP EXTENSION usage_tracker', 'DROP EXTENSION without CASCADE');
-- Postgres leaves the schema named in the control file (it is not an
-- extension member); it must be empty.
SELECT is((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'usage_tracker')
        + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'usage_tracker'),
    0::bigint, 'nothing left in usage_tracker');
SELECT hasnt_schema('usage_tracker_private', 'private schema and partitions gone');
SELECT ok(EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role'), 'roles stay (they are cluster-wide)');

SELECT lives_ok('CREATE EXTENSION usage_tracker', 'CREATE EXTENSION again, roles already present');
SELECT is((SELECT count(*) FROM usage_tracker.model_prices WHERE shipped), 4::bigint, 'shipped prices reinstalled');
-- This session's price cache follows the new catalog table.
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'reinstalled-model', p_input_tokens => 1000000);
SELECT usage_tracker.set_model_price('test', 'reinstalled-model', now() - interval '1 day', 2, 2);
SELECT usage_tracker.log_ai_usage(test_helpers.id('user_a'), p_model_used => 'reinstalled-model', p_input_tokens => 1000000);
SELECT is((SELECT array_agg(total_cost_usd ORDER BY ingest_seq) FROM usage_tracker.ai_usage_log WHERE model_used = 'reinstalled-model'),
    ARRAY[0, 2]::numeric[], 'a price set after reinstalling is used at once');

SELECT * FROM finish();
ROLLBACK;
