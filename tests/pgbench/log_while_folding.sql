-- Writers logging AI usage while maintenance folds the rollup.
\set u random(1, 20)
\set t random(1, 5000)
\set back random(0, 72)
SELECT usage_tracker.log_ai_usage(('dddddddd-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, p_input_tokens => :t,
    p_customer_id => :u % 4 + 1, p_customer_name => 'Customer ' || (:u % 4 + 1),
    p_occurred_at => now() - make_interval(hours => :back), p_session_id => 'pgb-fold');
