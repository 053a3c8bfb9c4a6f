-- Batches of usage events (recorded unconditionally) racing consume_quota
-- calls on the same limit: every consume decides on the exact total.
\set batch random(0, 3)
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
\if :batch = 0
SELECT usage_tracker.track_usage_events((
    SELECT jsonb_agg(jsonb_build_object('org_id', '0c0c0c0c-0000-4000-8000-000000000007', 'event_type', 'csv_upload'))
      FROM generate_series(1, 3)));
\else
INSERT INTO public.pgb_consumes SELECT usage_tracker.consume_quota('0c0c0c0c-0000-4000-8000-000000000007', 'csv_upload', 1);
\endif
COMMIT;
