-- Schedulers starting runs for one user at once, with the monthly limit
-- enforced (the private body answers {started: false} instead of PT429, so
-- pgbench counts every attempt).
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"cccccccc-0000-4000-8000-00000000000c","role":"authenticated"}', true);
SELECT usage_tracker_private.start_report_run('cccccccc-0000-4000-8000-00000000000c', NULL, NULL, NULL, NULL, true, 10);
COMMIT;
