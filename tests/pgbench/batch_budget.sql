-- Batches of 10 requests and single requests at once against one budget.
\set batch random(0, 1)
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
\if :batch
SELECT usage_tracker.log_ai_usage_batch((
    SELECT jsonb_agg(jsonb_build_object('user_id', 'aaaaaaaa-0000-4000-8000-00000000000a',
                                        'org_id', '0c0c0c0c-0000-4000-8000-000000000006',
                                        'input_tokens', 1000, 'session_id', 'pgb-budget-batch'))
      FROM generate_series(1, 10)));
\else
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_org_id => '0c0c0c0c-0000-4000-8000-000000000006',
                                  p_input_tokens => 1000, p_session_id => 'pgb-budget-single');
\endif
COMMIT;
