-- Concurrent backfills into months that have no partition yet: each month's
-- partition is created exactly once and no call fails.
\set m random(1, 12)
\set d random(1, 28)
SELECT usage_tracker.log_ai_usage('bbbbbbbb-0000-4000-8000-00000000000b', p_input_tokens => 1,
    p_occurred_at => make_timestamptz(2017, :m, :d, 12, 0, 0, 'UTC'), p_session_id => 'pgb-backfill');
