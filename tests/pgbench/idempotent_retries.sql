-- A client retrying calls: 200 keys, many concurrent calls per key (each
-- retry sends the same request), as a signed-in user through the public
-- wrapper.
\set k random(1, 200)
\set tokens :k * 5
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_input_tokens => :tokens,
                                  p_idempotency_key => 'pgb-' || :k);
COMMIT;
