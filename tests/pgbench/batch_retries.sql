-- Clients sending batches of 20 keyed requests drawn from 300 keys (a key
-- may repeat inside a batch and across concurrent batches, in any order);
-- each key always carries the same request.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT usage_tracker.log_ai_usage_batch((
    SELECT jsonb_agg(jsonb_build_object('user_id', 'aaaaaaaa-0000-4000-8000-00000000000a',
                                        'org_id', '0c0c0c0c-0000-4000-8000-000000000005',
                                        'input_tokens', k * 5, 'idempotency_key', 'pgb-b-' || k))
      FROM (SELECT 1 + (random() * 299)::int AS k FROM generate_series(1, 20)) s));
COMMIT;
