-- Incremental rollups of the AI usage log (issue 4, first part): a daily
-- cube folded by run_maintenance() from rows not yet rolled up.
CREATE TABLE usage_tracker_private.rollup_progress (
    rollup          text        NOT NULL,
    folded_through  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT rollup_progress_pkey PRIMARY KEY (rollup)
);
ALTER TABLE usage_tracker_private.rollup_progress ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE usage_tracker_private.rollup_progress IS
    'How far each rollup has folded the log: every row with ingest_seq <= folded_through is in it, none above';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.rollup IS 'Rollup name';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.folded_through IS 'Highest ingest_seq folded';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.updated_at IS 'When it last advanced';

CREATE TABLE usage_tracker.ai_usage_daily (
    org_id             uuid        NOT NULL,
    day                date        NOT NULL,
    user_id            uuid        NOT NULL,
    customer_id        bigint,
    project_id         uuid,
    cached             boolean     NOT NULL,
    requests           bigint      NOT NULL,
    input_tokens       bigint      NOT NULL,
    output_tokens      bigint      NOT NULL,
    cache_read_tokens  bigint      NOT NULL,
    cache_write_tokens bigint      NOT NULL,
    reasoning_tokens   bigint      NOT NULL,
    total_tokens       bigint      NOT NULL,
    latency_count      bigint      NOT NULL,
    latency_sum        bigint      NOT NULL,
    first_at           timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    status             text        NOT NULL,
    request_type       text        NOT NULL,
    model_used         text        NOT NULL,
    provider           text,
    input_cost_usd     numeric     NOT NULL,
    output_cost_usd    numeric     NOT NULL,
    total_cost_usd     numeric     NOT NULL,
    potential_cost_usd numeric     NOT NULL,
    user_email         text,
    customer_name      text,
    CONSTRAINT ai_usage_daily_key UNIQUE NULLS NOT DISTINCT
        (org_id, day, user_id, customer_id, project_id, cached, status, request_type, model_used, provider,
         user_email, customer_name)
);
CREATE INDEX ai_usage_daily_user_idx ON usage_tracker.ai_usage_daily (user_id, day);
COMMENT ON TABLE usage_tracker.ai_usage_daily IS
    'Daily (UTC) totals of ai_usage_log per organization, user, customer, project, cached, status, request type, model and provider; folded incrementally by run_maintenance(); the dashboards read it plus the rows not yet folded; check with verify_rollups(), repair with rebuild_rollups()';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.day IS 'UTC day of created_at';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.user_id IS 'User';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.customer_id IS 'Customer context';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.project_id IS 'Project';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.cached IS 'Served from the application''s cache';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.input_tokens IS 'Sum of input tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.output_tokens IS 'Sum of output tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.cache_read_tokens IS 'Sum of cache-read tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.cache_write_tokens IS 'Sum of cache-write tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.reasoning_tokens IS 'Sum of reasoning tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.latency_count IS 'Requests with a latency';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.latency_sum IS 'Sum of their latencies, ms';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.first_at IS 'Earliest request';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.last_at IS 'Latest request';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.request_type IS 'Request type';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.model_used IS 'Model';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.provider IS 'Provider';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.input_cost_usd IS 'Sum of input costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.output_cost_usd IS 'Sum of output costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.potential_cost_usd IS 'Sum of what it would have cost without the cache, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.user_email IS 'User email as logged (the dashboards group by it, like seed 001)';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.customer_name IS 'Customer name as logged (the dashboards group by it, like seed 001)';
