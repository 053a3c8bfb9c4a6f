-- Report runs (seed 004): lifecycle, delivery tracking and monthly limits.
CREATE TABLE usage_tracker.report_runs (
    org_id                    uuid        NOT NULL,
    id                        uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    user_id                   uuid        NOT NULL,
    repository_id             uuid,
    report_configuration_id   uuid,
    started_at                timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at              timestamptz,
    tokens_used               bigint      NOT NULL DEFAULT 0,
    commits_processed         integer     NOT NULL DEFAULT 0,
    webhook_delivery_attempts integer     NOT NULL DEFAULT 0,
    webhook_response_status   integer,
    webhook_delivered         boolean     NOT NULL DEFAULT false,
    webhook_last_attempt_at   timestamptz,
    created_at                timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at                timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status                    text        NOT NULL DEFAULT 'running',
    cost_usd                  numeric     NOT NULL DEFAULT 0,
    model_used                text,
    commit_range_from         text,
    commit_range_to           text,
    report_format             text        NOT NULL DEFAULT 'markdown',
    error_message             text,
    error_code                text,
    configuration_snapshot    jsonb,
    report_content            text,
    CONSTRAINT report_runs_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT report_runs_status_check CHECK (status IN ('running', 'success', 'failed', 'cancelled')),
    CONSTRAINT report_runs_format_check CHECK (report_format IN ('markdown', 'html', 'text', 'json')),
    CONSTRAINT report_runs_numbers_check CHECK (tokens_used >= 0 AND cost_usd >= 0 AND commits_processed >= 0
                                                AND webhook_delivery_attempts >= 0),
    CONSTRAINT report_runs_completed_check CHECK ((status = 'running') = (completed_at IS NULL))
);
CREATE INDEX report_runs_user_idx ON usage_tracker.report_runs (user_id, started_at);
CREATE INDEX report_runs_id_idx ON usage_tracker.report_runs (id);
CREATE INDEX report_runs_running_idx ON usage_tracker.report_runs (started_at) WHERE status = 'running';
COMMENT ON TABLE usage_tracker.report_runs IS
    'Every report generation attempt (seed 004): running -> success / failed / cancelled, with the configuration snapshot, tokens, cost, commits, output, errors and webhook delivery. Written through the report run functions; users read their own runs.';
COMMENT ON COLUMN usage_tracker.report_runs.org_id IS 'Organization (the user''s personal organization by default)';
COMMENT ON COLUMN usage_tracker.report_runs.id IS 'Run id';
COMMENT ON COLUMN usage_tracker.report_runs.user_id IS 'User the run is for';
COMMENT ON COLUMN usage_tracker.report_runs.repository_id IS 'Repository (the application''s id; not a foreign key)';
COMMENT ON COLUMN usage_tracker.report_runs.report_configuration_id IS 'Report configuration (the application''s id; not a foreign key)';
COMMENT ON COLUMN usage_tracker.report_runs.started_at IS 'When the run started';
COMMENT ON COLUMN usage_tracker.report_runs.completed_at IS 'When it reached a final state';
COMMENT ON COLUMN usage_tracker.report_runs.tokens_used IS 'LLM tokens used';
COMMENT ON COLUMN usage_tracker.report_runs.commits_processed IS 'Commits processed';
COMMENT ON COLUMN usage_tracker.report_runs.webhook_delivery_attempts IS 'Webhook delivery attempts';
COMMENT ON COLUMN usage_tracker.report_runs.webhook_response_status IS 'HTTP status of the last attempt';
COMMENT ON COLUMN usage_tracker.report_runs.webhook_delivered IS 'True once a delivery succeeded';
COMMENT ON COLUMN usage_tracker.report_runs.webhook_last_attempt_at IS 'When the last attempt was made';
COMMENT ON COLUMN usage_tracker.report_runs.created_at IS 'When the row was created';
COMMENT ON COLUMN usage_tracker.report_runs.updated_at IS 'When it last changed';
COMMENT ON COLUMN usage_tracker.report_runs.status IS 'running, success, failed or cancelled; only running can change, the others are final';
COMMENT ON COLUMN usage_tracker.report_runs.cost_usd IS 'Cost in USD (given, or computed from the price catalog)';
COMMENT ON COLUMN usage_tracker.report_runs.model_used IS 'LLM model';
COMMENT ON COLUMN usage_tracker.report_runs.commit_range_from IS 'First commit of the range';
COMMENT ON COLUMN usage_tracker.report_runs.commit_range_to IS 'Last commit of the range';
COMMENT ON COLUMN usage_tracker.report_runs.report_format IS 'markdown, html, text or json';
COMMENT ON COLUMN usage_tracker.report_runs.error_message IS 'Error message of a failed run';
COMMENT ON COLUMN usage_tracker.report_runs.error_code IS 'Error code of a failed run (TIMEOUT when maintenance expired it)';
COMMENT ON COLUMN usage_tracker.report_runs.configuration_snapshot IS 'The configuration the run used';
COMMENT ON COLUMN usage_tracker.report_runs.report_content IS 'The report (at most 1,048,576 characters)';

-- Seed 004's monthly statistics per user (UTC calendar months), read under
-- the caller's RLS.
CREATE VIEW usage_tracker.user_monthly_usage WITH (security_invoker = true) AS
SELECT r.user_id,
       pg_catalog.date_trunc('month', r.started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month,
       count(*) AS total_runs,
       count(*) FILTER (WHERE r.status = 'success') AS successful_runs,
       count(*) FILTER (WHERE r.status = 'failed') AS failed_runs,
       coalesce(sum(r.tokens_used), 0)::bigint AS total_tokens,
       coalesce(sum(r.cost_usd), 0) AS total_cost_usd,
       max(r.started_at) AS last_run_at
  FROM usage_tracker.report_runs r
 GROUP BY 1, 2;
COMMENT ON VIEW usage_tracker.user_monthly_usage IS
    'Seed 004''s user_monthly_usage: runs, successful and failed runs, tokens, cost and last run per user and UTC month (security invoker: you see your own)';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.user_id IS 'User';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.month IS 'Start of the UTC month';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.total_runs IS 'Runs started';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.successful_runs IS 'Runs that succeeded';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.failed_runs IS 'Runs that failed';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.total_tokens IS 'Tokens used';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.total_cost_usd IS 'Cost, USD';
COMMENT ON COLUMN usage_tracker.user_monthly_usage.last_run_at IS 'Latest run start';
