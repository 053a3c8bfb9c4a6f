-- Concurrent backfills into the 9 months from 3 to 11 months ago, which have
-- no partition yet: each is created exactly once and no call fails.
\set m random(3, 11)
\set d random(1, 27)
SELECT usage_tracker.log_ai_usage('bbbbbbbb-0000-4000-8000-00000000000b', p_input_tokens => 1,
    p_occurred_at => date_trunc('month', now()) - make_interval(months => :m) + make_interval(days => :d),
    p_session_id => 'pgb-backfill');
