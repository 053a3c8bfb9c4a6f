-- A realistic demo data set: two organizations, five users, twelve
-- customers, four models (one without a price), 30 days of requests with
-- errors and cached responses. Loaded once by scripts/demo.sh.
\set ON_ERROR_STOP on
\o /dev/null
BEGIN;

CREATE TEMP TABLE people (name text, id uuid, email text, org uuid, role text);
INSERT INTO people VALUES
    ('alice', '11111111-1111-4111-8111-111111111111', 'alice@acme.test',  'ac000000-0000-4000-8000-000000000001', 'admin'),
    ('bob',   '22222222-2222-4222-8222-222222222222', 'bob@acme.test',    'ac000000-0000-4000-8000-000000000001', 'member'),
    ('carol', '33333333-3333-4333-8333-333333333333', 'carol@globex.test','91000000-0000-4000-8000-000000000002', 'owner'),
    ('dave',  '44444444-4444-4444-8444-444444444444', 'dave@globex.test', '91000000-0000-4000-8000-000000000002', 'member'),
    ('erin',  '55555555-5555-4555-8555-555555555555', 'erin@solo.test',   NULL, NULL);

SELECT usage_tracker.set_org_member(org, id, role) FROM people WHERE org IS NOT NULL;
-- Acme's requests belong to a project (seed 003's cache analytics).
SELECT usage_tracker.create_project('ac000000-0000-4000-8000-000000000001', 'Acme assistant', 'ac000000-0000-4000-8000-0000000000a1');

-- 30 days of requests; busier on weekdays and in working hours.
SELECT count(usage_tracker.log_ai_usage(
           p_user_id         => p.id,
           p_user_email      => p.email,
           p_customer_id     => CASE WHEN h % 4 = 0 THEN NULL ELSE 1 + h % 12 END,
           p_customer_name   => CASE WHEN h % 4 = 0 THEN NULL ELSE (ARRAY['Initech','Umbrella','Hooli','Vandelay','Stark','Wayne',
                                    'Wonka','Tyrell','Cyberdyne','Soylent','Duff','Oceanic'])[1 + h % 12] END,
           p_request_type    => (ARRAY['report','report','insight','insight','chat','chat','chat','scheduled','widget'])[1 + h % 9],
           p_session_id      => 'demo-' || (i / 7),
           p_input_tokens    => 200 + h % 12000,
           p_output_tokens   => 50 + (h / 7) % 3000,
           p_model_used      => (ARRAY['claude-sonnet-4-20250514','claude-sonnet-4-20250514','gpt-4o-mini','gpt-4o-mini',
                                       'gpt-4o-mini','gpt-4o','llama-3.1-70b'])[1 + (h / 13) % 7],
           p_latency_ms      => 300 + (h / 3) % 8000,
           p_tool_turns      => (h / 11) % 4,
           p_status          => CASE WHEN h % 37 = 0 THEN 'error' ELSE 'success' END,
           p_error_message   => CASE WHEN h % 37 = 0 THEN 'upstream 529: overloaded' END,
           p_org_id          => coalesce(p.org, p.id),
           p_occurred_at     => ts,
           p_cache_read_tokens => CASE WHEN h % 3 = 0 THEN h % 20000 ELSE 0 END,
           p_cached          => h % 10 = 0,
           p_project_id      => CASE WHEN p.org = 'ac000000-0000-4000-8000-000000000001'
                                     THEN 'ac000000-0000-4000-8000-0000000000a1'::uuid END,
           p_metadata        => jsonb_build_object('demo', true, 'feature', (ARRAY['summary','qa','export'])[1 + h % 3])))
  FROM (
        SELECT i, abs(hashint4(i)) AS h,
               now() - make_interval(secs => abs(hashint4(i * 7 + 1)) % (30 * 86400)) AS ts
          FROM generate_series(1, 8000) AS i
       ) r
  JOIN LATERAL (SELECT * FROM people ORDER BY name OFFSET (r.h / 101) % 5 LIMIT 1) p ON true
 WHERE extract(isodow FROM r.ts) < 6 OR r.h % 3 = 0;

-- Plans, settings, usage events and counters (seeds 000 and 002), a budget.
SELECT usage_tracker.set_org_plan('ac000000-0000-4000-8000-000000000001', 'pilot');
SELECT usage_tracker.set_org_settings('91000000-0000-4000-8000-000000000002', 'America/New_York', 15);
SELECT count(usage_tracker.track_usage_event(l.org_id, 'chat_message', 1, jsonb_build_object('request', l.id), l.created_at))
  FROM usage_tracker.ai_usage_log l WHERE l.request_type = 'chat' AND l.created_at >= now() - interval '20 days';
-- (No ai_tokens_* events: the ai_tokens limit already counts the logged
-- requests; tracking both would count them twice.)
SELECT count(usage_tracker.track_usage_event(l.org_id, 'csv_upload', 1, jsonb_build_object('request', l.id), l.created_at))
  FROM usage_tracker.ai_usage_log l WHERE l.request_type = 'scheduled' AND l.created_at >= now() - interval '3 days'
   AND l.org_id = '91000000-0000-4000-8000-000000000002';
SELECT count(usage_tracker.increment_organization_usage(l.org_id, CASE WHEN l.reasoning_tokens > 0 OR l.tool_turns > 1 THEN 'reasoning' ELSE 'message' END,
                                                         1, (l.created_at AT TIME ZONE 'UTC')::date))
  FROM usage_tracker.ai_usage_log l WHERE l.created_at >= now() - interval '10 days' AND l.created_at < date_trunc('day', now());
SELECT usage_tracker.set_budget('ac000000-0000-4000-8000-000000000001', 40);
-- Bob's own budget is small: his three big reports below ($0.90 each) cross
-- 80% and 100% whatever the day of the month.
SELECT usage_tracker.set_budget('ac000000-0000-4000-8000-000000000001', 2, '22222222-2222-4222-8222-222222222222');
SELECT usage_tracker.log_ai_usage('22222222-2222-4222-8222-222222222222', p_org_id => 'ac000000-0000-4000-8000-000000000001',
                                  p_input_tokens => 200000, p_output_tokens => 20000, p_request_type => 'report')
  FROM generate_series(1, 3);

COMMIT;
\o
