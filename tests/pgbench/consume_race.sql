-- Many members racing for the last units of a quota.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT usage_tracker.consume_quota('0c0c0c0c-0000-4000-8000-000000000002', 'csv_upload', 1);
COMMIT;
