-- The ingest functions' public wrappers are C invoker functions (no SQL
-- body to inline on every plan): each calls the definer body of the same
-- name and arguments, only for callers who may execute that body.
BEGIN;
SELECT plan(6);

SELECT is_empty($$
    SELECT w.proname FROM pg_proc w
     WHERE w.pronamespace = 'usage_tracker'::regnamespace AND w.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
       AND w.proname NOT IN ('uid')
       AND NOT EXISTS (SELECT 1 FROM pg_proc b WHERE b.pronamespace = 'usage_tracker_private'::regnamespace
                         AND b.proname = w.proname AND b.proargtypes = w.proargtypes AND b.prosecdef)
$$, 'every C wrapper has a definer body of the same name and arguments');
SELECT is((SELECT string_agg(format('%s secdef=%s vol=%s', proname, prosecdef, provolatile), '; ' ORDER BY proname)
             FROM pg_proc WHERE pronamespace = 'usage_tracker'::regnamespace AND prosrc::text LIKE '%\_invoker'),
    'log_ai_usage secdef=f vol=v; log_ai_usage_batch secdef=f vol=v; track_usage_event secdef=f vol=v; track_usage_events secdef=f vol=v',
    'the ingest functions are C invoker wrappers');

-- A role allowed the wrapper but not the body is refused, and nothing is written.
CREATE ROLE ut_wrapper_only NOLOGIN;
GRANT USAGE ON SCHEMA usage_tracker TO ut_wrapper_only;
GRANT EXECUTE ON FUNCTION usage_tracker.log_ai_usage(uuid, text, bigint, text, text, text, bigint, bigint, text, integer,
    integer, text, text, uuid, timestamptz, text, text, bigint, bigint, bigint, boolean, jsonb, uuid) TO ut_wrapper_only;
GRANT EXECUTE ON FUNCTION usage_tracker.track_usage_events(jsonb) TO ut_wrapper_only;
CREATE TEMP TABLE n0 AS SELECT (SELECT count(*) FROM usage_tracker.ai_usage_log) AS log,
                               (SELECT count(*) FROM usage_tracker.usage_events) AS events;
SET LOCAL ROLE ut_wrapper_only;
SELECT throws_ok($$ SELECT usage_tracker.log_ai_usage(gen_random_uuid(), p_input_tokens => 5) $$, '42501', NULL,
    'log_ai_usage: the body''s EXECUTE privilege is checked');
SELECT throws_ok($$ SELECT usage_tracker.track_usage_events('[]') $$, '42501', NULL, 'track_usage_events too');
RESET ROLE;
SELECT is((SELECT row((SELECT count(*) FROM usage_tracker.ai_usage_log), (SELECT count(*) FROM usage_tracker.usage_events))::text),
    (SELECT row(log, events)::text FROM n0), 'nothing was written');

-- Same answers as the body, NULL results included (a defaulted call).
SELECT test_helpers.login_as('user_a');
SELECT is(usage_tracker.log_ai_usage_batch('[]'), usage_tracker_private.log_ai_usage_batch('[]'), 'the wrapper returns what the body returns');

SELECT * FROM finish();
ROLLBACK;
