-- Reservations racing with consumers: reserve 2, then commit 1 of them or
-- release them, then consume 1.
\set commit random(0, 1)
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-00000000000a","role":"authenticated"}', true);
WITH r AS (SELECT usage_tracker.reserve_quota('0c0c0c0c-0000-4000-8000-000000000003', 'csv_upload', 2) AS j)
SELECT CASE WHEN (j ->> 'allowed')::boolean AND :commit = 1
            THEN usage_tracker.commit_reservation('0c0c0c0c-0000-4000-8000-000000000003', (j ->> 'reservation_id')::uuid, 1)::text
            WHEN (j ->> 'allowed')::boolean
            THEN usage_tracker.release_reservation('0c0c0c0c-0000-4000-8000-000000000003', (j ->> 'reservation_id')::uuid)::text
       END
  FROM r;
SELECT usage_tracker.consume_quota('0c0c0c0c-0000-4000-8000-000000000003', 'csv_upload', 1);
COMMIT;
