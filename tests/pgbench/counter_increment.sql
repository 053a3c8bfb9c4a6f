-- Many members incrementing one organization counter at once.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT usage_tracker.increment_organization_usage('0c0c0c0c-0000-4000-8000-000000000001', 'message', 1);
COMMIT;
