-- Many requests at once against an organization budget.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT usage_tracker.log_ai_usage('aaaaaaaa-0000-4000-8000-00000000000a', p_org_id => '0c0c0c0c-0000-4000-8000-000000000004',
                                  p_input_tokens => 1000, p_session_id => 'pgb-budget');
COMMIT;
