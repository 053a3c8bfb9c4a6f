-- Incremental rollups of the AI usage log: one small rollup per question
-- the reads ask, each hourly and daily (UTC), folded together by
-- run_maintenance() from the rows not yet rolled up (see src/rollups.rs).
--   ai_usage_hourly / ai_usage_daily                    org totals by project, request type, status, model, provider, cached
--   ai_usage_user_hourly / ai_usage_user_daily          per user (and email as logged) by request type and status
--   ai_usage_customer_hourly / ai_usage_customer_daily  per customer (and name as logged)
--   ai_usage_customer_users                             the last request of each (customer, user) pair
-- Reads add the raw rows past rollup_progress.folded_through, so they are
-- exact whether or not maintenance ran.
-- Token and latency sums are numeric: a bigint sum of one organization's
-- busy day could overflow and make the shared fold fail for every tenant.
CREATE TABLE usage_tracker_private.rollup_progress (
    rollup           text        NOT NULL,
    folded_through   bigint      NOT NULL DEFAULT 0,
    hourly_kept_from timestamptz NOT NULL DEFAULT '-infinity',
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    marks_seq        bigint[]    NOT NULL DEFAULT '{}',
    marks_at         timestamptz[] NOT NULL DEFAULT '{}',
    CONSTRAINT rollup_progress_pkey PRIMARY KEY (rollup)
);
ALTER TABLE usage_tracker_private.rollup_progress ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE usage_tracker_private.rollup_progress IS
    'How far the rollups have folded the log: every row with ingest_seq <= folded_through is in them, none above';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.rollup IS 'Rollup family (ai_usage: every ai_usage_* rollup)';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.folded_through IS 'Highest ingest_seq folded';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.hourly_kept_from IS 'Hourly rollups hold every hour from here on (retention deleted the older ones)';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.updated_at IS 'When it last advanced';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.marks_seq IS 'Positions of ingest_seq read by recent passes (ascending); any row numbered above a mark was written after its time, which bounds the fold lag';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.marks_at IS 'When each position in marks_seq was read';

-- Org totals ------------------------------------------------------------------
CREATE TABLE usage_tracker.ai_usage_hourly (
    org_id                 uuid        NOT NULL,
    hour                   timestamptz NOT NULL,
    project_id             uuid,
    cached                 boolean     NOT NULL,
    requests               bigint      NOT NULL,
    input_tokens           numeric     NOT NULL,
    output_tokens          numeric     NOT NULL,
    cache_read_tokens      numeric     NOT NULL,
    cache_write_tokens     numeric     NOT NULL,
    reasoning_tokens       numeric     NOT NULL,
    total_tokens           numeric     NOT NULL,
    latency_count          bigint      NOT NULL,
    latency_sum            numeric     NOT NULL,
    last_at                timestamptz NOT NULL,
    status                 text        NOT NULL,
    request_type           text        NOT NULL,
    model_used             text        NOT NULL,
    provider               text,
    input_cost_usd         numeric     NOT NULL,
    output_cost_usd        numeric     NOT NULL,
    total_cost_usd         numeric     NOT NULL,
    potential_cost_usd     numeric     NOT NULL,
    cache_write_extra_usd  numeric     NOT NULL,
    CONSTRAINT ai_usage_hourly_key UNIQUE NULLS NOT DISTINCT
        (org_id, hour, project_id, cached, status, request_type, model_used, provider)
);
CREATE TABLE usage_tracker.ai_usage_daily (LIKE usage_tracker.ai_usage_hourly);
ALTER TABLE usage_tracker.ai_usage_daily RENAME COLUMN hour TO day;
ALTER TABLE usage_tracker.ai_usage_daily ALTER COLUMN day TYPE date;
ALTER TABLE usage_tracker.ai_usage_daily ADD CONSTRAINT ai_usage_daily_key UNIQUE NULLS NOT DISTINCT
        (org_id, day, project_id, cached, status, request_type, model_used, provider);
-- Rows arrive in time order, so BRIN ranges serve reads over all
-- organizations (trusted callers) at almost no cost.
CREATE INDEX ai_usage_hourly_hour_idx ON usage_tracker.ai_usage_hourly USING brin (hour);
CREATE INDEX ai_usage_daily_day_idx ON usage_tracker.ai_usage_daily USING brin (day);
CREATE INDEX ai_usage_hourly_project_idx ON usage_tracker.ai_usage_hourly (project_id, hour) WHERE project_id IS NOT NULL;
CREATE INDEX ai_usage_daily_project_idx ON usage_tracker.ai_usage_daily (project_id, day) WHERE project_id IS NOT NULL;

-- Per user --------------------------------------------------------------------
CREATE TABLE usage_tracker.ai_usage_user_hourly (
    org_id          uuid        NOT NULL,
    hour            timestamptz NOT NULL,
    user_id         uuid        NOT NULL,
    requests        bigint      NOT NULL,
    input_tokens    numeric     NOT NULL,
    output_tokens   numeric     NOT NULL,
    total_tokens    numeric     NOT NULL,
    latency_count   bigint      NOT NULL,
    latency_sum     numeric     NOT NULL,
    last_at         timestamptz NOT NULL,
    status          text        NOT NULL,
    request_type    text        NOT NULL,
    user_email      text,
    input_cost_usd  numeric     NOT NULL,
    output_cost_usd numeric     NOT NULL,
    total_cost_usd  numeric     NOT NULL,
    CONSTRAINT ai_usage_user_hourly_key UNIQUE NULLS NOT DISTINCT
        (org_id, hour, user_id, user_email, status, request_type)
);
CREATE TABLE usage_tracker.ai_usage_user_daily (LIKE usage_tracker.ai_usage_user_hourly);
ALTER TABLE usage_tracker.ai_usage_user_daily RENAME COLUMN hour TO day;
ALTER TABLE usage_tracker.ai_usage_user_daily ALTER COLUMN day TYPE date;
ALTER TABLE usage_tracker.ai_usage_user_daily ADD CONSTRAINT ai_usage_user_daily_key UNIQUE NULLS NOT DISTINCT
        (org_id, day, user_id, user_email, status, request_type);
CREATE INDEX ai_usage_user_hourly_hour_idx ON usage_tracker.ai_usage_user_hourly USING brin (hour);
CREATE INDEX ai_usage_user_daily_day_idx ON usage_tracker.ai_usage_user_daily USING brin (day);
CREATE INDEX ai_usage_user_hourly_user_idx ON usage_tracker.ai_usage_user_hourly (user_id, hour);
CREATE INDEX ai_usage_user_daily_user_idx ON usage_tracker.ai_usage_user_daily (user_id, day);

-- Per customer ----------------------------------------------------------------
CREATE TABLE usage_tracker.ai_usage_customer_hourly (
    org_id         uuid        NOT NULL,
    hour           timestamptz NOT NULL,
    customer_id    bigint      NOT NULL,
    requests       bigint      NOT NULL,
    total_tokens   numeric     NOT NULL,
    customer_name  text,
    total_cost_usd numeric     NOT NULL,
    CONSTRAINT ai_usage_customer_hourly_key UNIQUE NULLS NOT DISTINCT (org_id, hour, customer_id, customer_name)
);
CREATE TABLE usage_tracker.ai_usage_customer_daily (LIKE usage_tracker.ai_usage_customer_hourly);
ALTER TABLE usage_tracker.ai_usage_customer_daily RENAME COLUMN hour TO day;
ALTER TABLE usage_tracker.ai_usage_customer_daily ALTER COLUMN day TYPE date;
ALTER TABLE usage_tracker.ai_usage_customer_daily ADD CONSTRAINT ai_usage_customer_daily_key UNIQUE NULLS NOT DISTINCT
        (org_id, day, customer_id, customer_name);
CREATE INDEX ai_usage_customer_hourly_hour_idx ON usage_tracker.ai_usage_customer_hourly USING brin (hour);
CREATE INDEX ai_usage_customer_daily_day_idx ON usage_tracker.ai_usage_customer_daily USING brin (day);

CREATE TABLE usage_tracker.ai_usage_customer_users (
    org_id        uuid        NOT NULL,
    customer_id   bigint      NOT NULL,
    user_id       uuid        NOT NULL,
    last_at       timestamptz NOT NULL,
    customer_name text,
    CONSTRAINT ai_usage_customer_users_key UNIQUE NULLS NOT DISTINCT (org_id, customer_id, customer_name, user_id)
);
CREATE INDEX ai_usage_customer_users_user_idx ON usage_tracker.ai_usage_customer_users (user_id);

-- Comments ----------------------------------------------------------------------
COMMENT ON TABLE usage_tracker.ai_usage_hourly IS
    'Hourly (UTC) totals of ai_usage_log per organization, project, cached, status, request type, model and provider; folded by run_maintenance(); reads add the rows not folded yet. Kept 90 days by default (retention_policies)';
COMMENT ON TABLE usage_tracker.ai_usage_daily IS
    'Daily (UTC) totals of ai_usage_log per organization, project, cached, status, request type, model and provider; folded by run_maintenance(); kept forever by default';
COMMENT ON TABLE usage_tracker.ai_usage_user_hourly IS
    'Hourly (UTC) totals of ai_usage_log per organization, user and email as logged, status and request type';
COMMENT ON TABLE usage_tracker.ai_usage_user_daily IS
    'Daily (UTC) totals of ai_usage_log per organization, user and email as logged, status and request type';
COMMENT ON TABLE usage_tracker.ai_usage_customer_hourly IS
    'Hourly (UTC) totals of ai_usage_log rows with a customer, per organization, customer and name as logged';
COMMENT ON TABLE usage_tracker.ai_usage_customer_daily IS
    'Daily (UTC) totals of ai_usage_log rows with a customer, per organization, customer and name as logged';
COMMENT ON TABLE usage_tracker.ai_usage_customer_users IS
    'Last request of each (organization, customer, customer name, user): a window ending now has a user iff last_at is inside it, so unique users per customer need no per-day pairs';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.hour IS 'UTC hour the requests started in';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.project_id IS 'Project (NULL: none)';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.cached IS 'Served from the application''s cache';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.input_tokens IS 'Sum of input tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.output_tokens IS 'Sum of output tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.cache_read_tokens IS 'Sum of cache-read tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.cache_write_tokens IS 'Sum of cache-write tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.reasoning_tokens IS 'Sum of reasoning tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.latency_count IS 'Requests with a latency';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.latency_sum IS 'Sum of their latencies, ms';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.last_at IS 'Latest request';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.request_type IS 'Request type';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.model_used IS 'Model';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.provider IS 'Provider';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.input_cost_usd IS 'Sum of input costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.output_cost_usd IS 'Sum of output costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.potential_cost_usd IS 'Sum of what it would have cost without the application''s cache, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_hourly.cache_write_extra_usd IS 'Paid for prompt-cache writes beyond the plain input price, USD (subtracted from savings to get net savings)';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.day IS 'UTC day of the requests';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.project_id IS 'Project (NULL: none)';
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
COMMENT ON COLUMN usage_tracker.ai_usage_daily.last_at IS 'Latest request';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.request_type IS 'Request type';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.model_used IS 'Model';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.provider IS 'Provider';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.input_cost_usd IS 'Sum of input costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.output_cost_usd IS 'Sum of output costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.potential_cost_usd IS 'Sum of what it would have cost without the application''s cache, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_daily.cache_write_extra_usd IS 'Paid for prompt-cache writes beyond the plain input price, USD (subtracted from savings to get net savings)';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.hour IS 'UTC hour the requests started in';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.user_id IS 'User';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.input_tokens IS 'Sum of input tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.output_tokens IS 'Sum of output tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.latency_count IS 'Requests with a latency';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.latency_sum IS 'Sum of their latencies, ms';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.last_at IS 'Latest request';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.request_type IS 'Request type';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.user_email IS 'User email as logged (seed 001 groups by it)';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.input_cost_usd IS 'Sum of input costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.output_cost_usd IS 'Sum of output costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_user_hourly.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.day IS 'UTC day of the requests';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.user_id IS 'User';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.input_tokens IS 'Sum of input tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.output_tokens IS 'Sum of output tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.latency_count IS 'Requests with a latency';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.latency_sum IS 'Sum of their latencies, ms';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.last_at IS 'Latest request';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.request_type IS 'Request type';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.user_email IS 'User email as logged (seed 001 groups by it)';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.input_cost_usd IS 'Sum of input costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.output_cost_usd IS 'Sum of output costs, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_user_daily.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.hour IS 'UTC hour the requests started in';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.customer_id IS 'Customer';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.customer_name IS 'Customer name as logged (seed 001 groups by it)';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_hourly.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.day IS 'UTC day of the requests';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.customer_id IS 'Customer';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.requests IS 'Requests';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.total_tokens IS 'Sum of all tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.customer_name IS 'Customer name as logged (seed 001 groups by it)';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_daily.total_cost_usd IS 'Sum of what was paid, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_users.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_users.customer_id IS 'Customer';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_users.user_id IS 'User who made requests for the customer';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_users.last_at IS 'Their latest request for the customer (folded rows)';
COMMENT ON COLUMN usage_tracker.ai_usage_customer_users.customer_name IS 'Customer name as logged';
