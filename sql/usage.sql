-- Organizations, usage events and counters (seeds 000 and 002), plans,
-- limits and race-free quotas.

------------------------------------------------------------------------------
-- Event types, plans and limits (reference data)
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.event_types (
    event_type  text        NOT NULL,
    unit        text        NOT NULL DEFAULT 'events',
    description text,
    shipped     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT event_types_pkey PRIMARY KEY (event_type),
    CONSTRAINT event_types_name_check CHECK (event_type ~ '^[a-z][a-z0-9_]{0,62}$')
);
COMMENT ON TABLE usage_tracker.event_types IS
    'Usage event types track_usage_event and the limit checks accept; add more with add_event_type (service_role). Counter types of increment_organization_usage need no registration.';
COMMENT ON COLUMN usage_tracker.event_types.event_type IS 'Name: lower case letters, digits and _, starting with a letter, at most 63 characters';
COMMENT ON COLUMN usage_tracker.event_types.unit IS 'What one unit of quantity is (uploads, rows, tokens, ...)';
COMMENT ON COLUMN usage_tracker.event_types.description IS 'What the event is';
COMMENT ON COLUMN usage_tracker.event_types.shipped IS 'True for the types installed with the extension';
COMMENT ON COLUMN usage_tracker.event_types.created_at IS 'When the type was added';

INSERT INTO usage_tracker.event_types (event_type, unit, description, shipped) VALUES
    ('csv_upload',              'uploads',    'A CSV file uploaded', true),
    ('csv_row_processed',       'rows',       'CSV rows processed', true),
    ('analysis_run',            'analyses',   'An analysis run', true),
    ('analyzer_execution',      'executions', 'One analyzer executed within a run', true),
    ('chat_message',            'messages',   'A chat message answered', true),
    ('ai_tokens_input',         'tokens',     'AI input tokens', true),
    ('ai_tokens_output',        'tokens',     'AI output tokens', true),
    ('mapping_profile_created', 'profiles',   'A mapping profile created', true),
    ('mapping_profile_used',    'uses',       'A mapping profile applied', true),
    ('export_pdf',              'exports',    'A PDF export', true),
    ('export_csv',              'exports',    'A CSV export', true),
    ('report_run',              'runs',       'A successful report run', true);

CREATE TABLE usage_tracker.limit_definitions (
    limit_key   text        NOT NULL,
    event_types text[]      NOT NULL,
    unit        text        NOT NULL,
    period      text        NOT NULL DEFAULT 'billing_period',
    shipped     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    per_user    boolean     NOT NULL DEFAULT false,
    source      text        NOT NULL DEFAULT 'events',
    CONSTRAINT limit_definitions_pkey PRIMARY KEY (limit_key),
    CONSTRAINT limit_definitions_source_check CHECK (source IN ('events', 'ai_log', 'both')),
    CONSTRAINT limit_definitions_name_check CHECK (limit_key ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT limit_definitions_types_check CHECK (pg_catalog.cardinality(event_types) BETWEEN 1 AND 32),
    CONSTRAINT limit_definitions_period_check CHECK (period IN ('billing_period', 'total'))
);
COMMENT ON TABLE usage_tracker.limit_definitions IS
    'What a plan can limit: a name, the event types whose quantities count against it, and whether it resets every billing period or counts the total';
COMMENT ON COLUMN usage_tracker.limit_definitions.limit_key IS 'Name of the limit (as in get_usage_limits: csv_uploads, chat_messages, ai_tokens, ...)';
COMMENT ON COLUMN usage_tracker.limit_definitions.event_types IS 'Event types whose quantities count against the limit';
COMMENT ON COLUMN usage_tracker.limit_definitions.unit IS 'Unit shown with the limit';
COMMENT ON COLUMN usage_tracker.limit_definitions.period IS 'billing_period (resets every period) or total (never resets)';
COMMENT ON COLUMN usage_tracker.limit_definitions.shipped IS 'True for the definitions installed with the extension';
COMMENT ON COLUMN usage_tracker.limit_definitions.created_at IS 'When the definition was added';
COMMENT ON COLUMN usage_tracker.limit_definitions.source IS 'What counts against the limit by default: events (usage events of its event types), ai_log (the tokens of logged AI requests, for limits on ai_tokens_input / ai_tokens_output) or both; limit_settings overrides it';
COMMENT ON COLUMN usage_tracker.limit_definitions.per_user IS 'True for a limit per user rather than per organization (report_runs_per_user, enforced by start_report_run); quota checks skip it';

-- ai_tokens counts both the ai_tokens_input / ai_tokens_output events
-- (seed 002) and the tokens of requests logged with log_ai_usage: one meter
-- for a new user. A caller that tracks those events for the same requests
-- it logs sets the source to events (or ai_log) with set_limit_source.
INSERT INTO usage_tracker.limit_definitions (limit_key, event_types, unit, period, shipped, source) VALUES
    ('csv_uploads',      '{csv_upload}',                        'uploads',  'billing_period', true, 'events'),
    ('csv_rows',         '{csv_row_processed}',                 'rows',     'billing_period', true, 'events'),
    ('analyses',         '{analysis_run}',                      'analyses', 'billing_period', true, 'events'),
    ('chat_messages',    '{chat_message}',                      'messages', 'billing_period', true, 'events'),
    ('ai_tokens',        '{ai_tokens_input,ai_tokens_output}',  'tokens',   'billing_period', true, 'both'),
    ('mapping_profiles', '{mapping_profile_created}',           'profiles', 'total',          true, 'events');
-- Seed 004's monthly report run limit, per user: start_report_run holds
-- users to it (the seed's default of 50 on every shipped plan).
INSERT INTO usage_tracker.limit_definitions (limit_key, event_types, unit, period, shipped, per_user) VALUES
    ('report_runs_per_user', '{report_run}', 'runs', 'billing_period', true, true);

-- The source of a limit as the operator set it (overrides the definition's
-- default; kept by pg_dump, unlike the shipped definitions).
CREATE TABLE usage_tracker.limit_settings (
    limit_key  text        NOT NULL,
    source     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT limit_settings_pkey PRIMARY KEY (limit_key),
    CONSTRAINT limit_settings_limit_fkey FOREIGN KEY (limit_key) REFERENCES usage_tracker.limit_definitions (limit_key) ON DELETE CASCADE,
    CONSTRAINT limit_settings_source_check CHECK (source IN ('events', 'ai_log', 'both'))
);
COMMENT ON TABLE usage_tracker.limit_settings IS
    'Per-limit settings set with set_limit_source (service_role): what counts against the limit, overriding limit_definitions.source';
COMMENT ON COLUMN usage_tracker.limit_settings.limit_key IS 'Limit';
COMMENT ON COLUMN usage_tracker.limit_settings.source IS 'events, ai_log or both';
COMMENT ON COLUMN usage_tracker.limit_settings.updated_at IS 'When it was set';

CREATE TABLE usage_tracker.plans (
    plan        text        NOT NULL,
    description text,
    is_default  boolean     NOT NULL DEFAULT false,
    shipped     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT plans_pkey PRIMARY KEY (plan),
    CONSTRAINT plans_name_check CHECK (plan ~ '^[a-z][a-z0-9_]{0,62}$')
);
-- Shipped rows are never modified (pg_dump skips them and CREATE EXTENSION
-- recreates them); a custom default plan overrides the shipped one.
CREATE UNIQUE INDEX plans_one_default ON usage_tracker.plans (shipped) WHERE is_default;
COMMENT ON TABLE usage_tracker.plans IS
    'Plans (tiers). An organization without a plan is on the default plan: trial, unless a custom plan was created with p_is_default => true.';
COMMENT ON COLUMN usage_tracker.plans.plan IS 'Plan name';
COMMENT ON COLUMN usage_tracker.plans.description IS 'What the plan is';
COMMENT ON COLUMN usage_tracker.plans.is_default IS 'The plan of organizations that have none (a custom default wins over the shipped one)';
COMMENT ON COLUMN usage_tracker.plans.shipped IS 'True for trial, pilot and subscription';
COMMENT ON COLUMN usage_tracker.plans.created_at IS 'When the plan was added';

CREATE TABLE usage_tracker.plan_limits (
    plan         text        NOT NULL,
    limit_key    text        NOT NULL,
    max_quantity bigint      NOT NULL,
    shipped      boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT plan_limits_pkey PRIMARY KEY (plan, limit_key, shipped),
    CONSTRAINT plan_limits_plan_fkey FOREIGN KEY (plan) REFERENCES usage_tracker.plans (plan) ON DELETE CASCADE,
    CONSTRAINT plan_limits_limit_fkey FOREIGN KEY (limit_key) REFERENCES usage_tracker.limit_definitions (limit_key),
    CONSTRAINT plan_limits_max_check CHECK (max_quantity >= -1)
);
CREATE INDEX plan_limits_limit_idx ON usage_tracker.plan_limits (limit_key);
COMMENT ON TABLE usage_tracker.plan_limits IS
    'The maximum of each limit in each plan; -1 is unlimited. A limit a plan does not list is unlimited on that plan. Shipped rows are never modified: a custom row (shipped = false) for the same plan and limit overrides it.';
COMMENT ON COLUMN usage_tracker.plan_limits.plan IS 'Plan';
COMMENT ON COLUMN usage_tracker.plan_limits.limit_key IS 'Limit (usage_tracker.limit_definitions)';
COMMENT ON COLUMN usage_tracker.plan_limits.max_quantity IS 'Maximum per billing period (or in total, per the definition); -1 = unlimited';
COMMENT ON COLUMN usage_tracker.plan_limits.shipped IS 'True for the limits installed with the extension (overridden by a custom row)';
COMMENT ON COLUMN usage_tracker.plan_limits.updated_at IS 'When the limit was last set';

-- Seed 002's limits table, exactly.
INSERT INTO usage_tracker.plans (plan, description, is_default, shipped) VALUES
    ('trial',        'Trial: small monthly limits', true,  true),
    ('pilot',        'Pilot: generous monthly limits', false, true),
    ('subscription', 'Subscription: unlimited', false, true);
INSERT INTO usage_tracker.plan_limits (plan, limit_key, max_quantity, shipped)
SELECT p.plan, l.limit_key, l.max_quantity, true
  FROM (VALUES
        ('trial', 'csv_uploads', 5), ('trial', 'csv_rows', 1000), ('trial', 'analyses', 10),
        ('trial', 'chat_messages', 50), ('trial', 'ai_tokens', 100000), ('trial', 'mapping_profiles', 3),
        ('pilot', 'csv_uploads', 50), ('pilot', 'csv_rows', 50000), ('pilot', 'analyses', 100),
        ('pilot', 'chat_messages', 500), ('pilot', 'ai_tokens', 1000000), ('pilot', 'mapping_profiles', 20),
        ('subscription', 'csv_uploads', -1), ('subscription', 'csv_rows', -1), ('subscription', 'analyses', -1),
        ('subscription', 'chat_messages', -1), ('subscription', 'ai_tokens', -1), ('subscription', 'mapping_profiles', -1),
        ('trial', 'report_runs_per_user', 50), ('pilot', 'report_runs_per_user', 50), ('subscription', 'report_runs_per_user', 50)
       ) AS l (plan, limit_key, max_quantity)
  JOIN usage_tracker.plans p ON p.plan = l.plan;

------------------------------------------------------------------------------
-- Organizations
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.organizations (
    org_id             uuid        NOT NULL,
    plan               text,
    time_zone          text        NOT NULL DEFAULT 'UTC',
    billing_anchor_day smallint    NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT organizations_pkey PRIMARY KEY (org_id),
    CONSTRAINT organizations_plan_fkey FOREIGN KEY (plan) REFERENCES usage_tracker.plans (plan),
    CONSTRAINT organizations_anchor_check CHECK (billing_anchor_day BETWEEN 1 AND 31)
);
CREATE INDEX organizations_plan_idx ON usage_tracker.organizations (plan);
COMMENT ON TABLE usage_tracker.organizations IS
    'Per-organization settings: plan, time zone and billing anchor day. An organization without a row is on the default plan, in UTC, billed from the 1st.';
COMMENT ON COLUMN usage_tracker.organizations.org_id IS 'Organization id';
COMMENT ON COLUMN usage_tracker.organizations.plan IS 'Plan; NULL means the default plan';
COMMENT ON COLUMN usage_tracker.organizations.time_zone IS 'IANA time zone in which days and billing periods start';
COMMENT ON COLUMN usage_tracker.organizations.billing_anchor_day IS 'Day of the month billing periods start (29-31 fall back to the month''s last day)';
COMMENT ON COLUMN usage_tracker.organizations.created_at IS 'When the row was created';
COMMENT ON COLUMN usage_tracker.organizations.updated_at IS 'When a setting last changed';

------------------------------------------------------------------------------
-- Usage events (seed 002) and their seed 000 view (usage_detail)
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.usage_events (
    org_id      uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    id          uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    user_id     uuid,
    quantity    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    event_type  text        NOT NULL,
    source      text        NOT NULL,
    metadata    jsonb,
    CONSTRAINT usage_events_pkey PRIMARY KEY (org_id, occurred_at, id),
    CONSTRAINT usage_events_quantity_check CHECK (quantity >= 0),
    CONSTRAINT usage_events_source_check CHECK (source IN ('event', 'counter', 'quota', 'reservation'))
);
CREATE INDEX usage_events_user_idx ON usage_tracker.usage_events (user_id, occurred_at);
CREATE INDEX usage_events_type_idx ON usage_tracker.usage_events (org_id, event_type, occurred_at);
COMMENT ON TABLE usage_tracker.usage_events IS
    'Every usage event and counter increment with its quantity and metadata (seed 002''s usage_events, seed 000''s usage_detail). Append-only; written by track_usage_event, increment_organization_usage, consume_quota and commit_reservation.';
COMMENT ON COLUMN usage_tracker.usage_events.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.usage_events.occurred_at IS 'When the usage happened';
COMMENT ON COLUMN usage_tracker.usage_events.id IS 'Event id';
COMMENT ON COLUMN usage_tracker.usage_events.user_id IS 'User who recorded it (JWT sub), if a user did';
COMMENT ON COLUMN usage_tracker.usage_events.quantity IS 'Quantity (events, tokens, rows, ...)';
COMMENT ON COLUMN usage_tracker.usage_events.recorded_at IS 'When it was recorded';
COMMENT ON COLUMN usage_tracker.usage_events.event_type IS 'Event type (seed 002) or counter type (seed 000)';
COMMENT ON COLUMN usage_tracker.usage_events.source IS 'Which API recorded it: event, counter, quota or reservation';
COMMENT ON COLUMN usage_tracker.usage_events.metadata IS 'Free-form JSON object';

CREATE VIEW usage_tracker.usage_detail WITH (security_invoker = true) AS
SELECT e.id, e.org_id, e.event_type AS type, e.quantity AS count, e.occurred_at AS "timestamp",
       e.metadata, e.recorded_at AS created_at, e.user_id
  FROM usage_tracker.usage_events e;
COMMENT ON VIEW usage_tracker.usage_detail IS
    'Seed 000''s usage_detail: the usage events under seed 000''s column names (security invoker: RLS of usage_events applies)';
COMMENT ON COLUMN usage_tracker.usage_detail.id IS 'Event id';
COMMENT ON COLUMN usage_tracker.usage_detail.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.usage_detail.type IS 'Usage type';
COMMENT ON COLUMN usage_tracker.usage_detail.count IS 'Count';
COMMENT ON COLUMN usage_tracker.usage_detail."timestamp" IS 'When the usage happened';
COMMENT ON COLUMN usage_tracker.usage_detail.metadata IS 'Free-form JSON object';
COMMENT ON COLUMN usage_tracker.usage_detail.created_at IS 'When it was recorded';
COMMENT ON COLUMN usage_tracker.usage_detail.user_id IS 'User who recorded it, if a user did';

------------------------------------------------------------------------------
-- Daily counters (seed 000's organization_usage), fed by every event
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.organization_usage (
    org_id     uuid        NOT NULL,
    type       text        NOT NULL,
    date       date        NOT NULL,
    id         uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    count      bigint      NOT NULL DEFAULT 0,
    events     bigint      NOT NULL DEFAULT 0,
    first_at   timestamptz,
    last_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT organization_usage_pkey PRIMARY KEY (org_id, type, date),
    CONSTRAINT organization_usage_count_check CHECK (count >= 0 AND events >= 0)
);
COMMENT ON TABLE usage_tracker.organization_usage IS
    'Daily counter per organization and type (seed 000), in the organization''s time zone; every usage event adds to it. Limit checks and summaries read these instead of the raw events.';
COMMENT ON COLUMN usage_tracker.organization_usage.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.organization_usage.type IS 'Usage type (message, reasoning, ...) or event type';
COMMENT ON COLUMN usage_tracker.organization_usage.date IS 'Day, in the organization''s time zone';
COMMENT ON COLUMN usage_tracker.organization_usage.id IS 'Row id (seed 000 compatibility)';
COMMENT ON COLUMN usage_tracker.organization_usage.count IS 'Total quantity that day';
COMMENT ON COLUMN usage_tracker.organization_usage.events IS 'Number of increments that day';
COMMENT ON COLUMN usage_tracker.organization_usage.first_at IS 'Earliest event of the day';
COMMENT ON COLUMN usage_tracker.organization_usage.last_at IS 'Latest event of the day';
COMMENT ON COLUMN usage_tracker.organization_usage.created_at IS 'When the row was created';
COMMENT ON COLUMN usage_tracker.organization_usage.updated_at IS 'When it last changed';

------------------------------------------------------------------------------
-- Quotas: one row per organization, limit and period holds what was used
-- and what is reserved; every check-and-consume locks it, so concurrent
-- callers cannot overshoot.
------------------------------------------------------------------------------
CREATE TABLE usage_tracker_private.quota_usage (
    org_id       uuid        NOT NULL,
    limit_key    text        NOT NULL,
    period_start date        NOT NULL,
    period_end   date,
    used         bigint      NOT NULL DEFAULT 0,
    reserved     bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    slot         smallint    NOT NULL DEFAULT 0,
    CONSTRAINT quota_usage_pkey PRIMARY KEY (org_id, limit_key, period_start, slot),
    CONSTRAINT quota_usage_check CHECK (used >= 0 AND reserved >= 0)
);
ALTER TABLE usage_tracker_private.quota_usage ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE usage_tracker_private.quota_usage IS
    'Used quantity per organization, limit and billing period (period_start -infinity for total limits), spread over 16 slots (the period''s usage is their sum): writers add to their backend''s slot, decisions lock them all; internal to the quota functions';
COMMENT ON COLUMN usage_tracker_private.quota_usage.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker_private.quota_usage.limit_key IS 'Limit';
COMMENT ON COLUMN usage_tracker_private.quota_usage.period_start IS 'First day of the billing period (organization''s time zone); -infinity for total limits';
COMMENT ON COLUMN usage_tracker_private.quota_usage.period_end IS 'Day after the period; NULL for total limits';
COMMENT ON COLUMN usage_tracker_private.quota_usage.used IS 'Quantity recorded in the period, in this slot (slot 0 also holds what the period started from)';
COMMENT ON COLUMN usage_tracker_private.quota_usage.slot IS 'Slot 0..15; one busy organization''s writers spread over them';
COMMENT ON COLUMN usage_tracker_private.quota_usage.reserved IS 'Quantity held by open reservations';
COMMENT ON COLUMN usage_tracker_private.quota_usage.updated_at IS 'When it last changed';

CREATE TABLE usage_tracker.quota_reservations (
    org_id             uuid        NOT NULL,
    reservation_id     uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    user_id            uuid,
    event_type         text        NOT NULL,
    quantity           bigint      NOT NULL,
    period_start       date        NOT NULL,
    status             text        NOT NULL DEFAULT 'open',
    expires_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    resolved_at        timestamptz,
    committed_quantity bigint,
    CONSTRAINT quota_reservations_pkey PRIMARY KEY (org_id, reservation_id),
    CONSTRAINT quota_reservations_status_check CHECK (status IN ('open', 'committed', 'released', 'expired')),
    CONSTRAINT quota_reservations_quantity_check CHECK (quantity >= 0 AND (committed_quantity IS NULL OR committed_quantity >= 0))
);
CREATE INDEX quota_reservations_open_idx ON usage_tracker.quota_reservations (org_id, event_type, expires_at)
    WHERE status = 'open';
CREATE INDEX quota_reservations_user_idx ON usage_tracker.quota_reservations (user_id);
COMMENT ON TABLE usage_tracker.quota_reservations IS
    'Quantities reserved before a request (reserve_quota) and then committed with the actual quantity or released; open reservations count against the limit until they expire';
COMMENT ON COLUMN usage_tracker.quota_reservations.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.quota_reservations.reservation_id IS 'Reservation id returned by reserve_quota';
COMMENT ON COLUMN usage_tracker.quota_reservations.user_id IS 'User who reserved, if a user did';
COMMENT ON COLUMN usage_tracker.quota_reservations.event_type IS 'Event type reserved for';
COMMENT ON COLUMN usage_tracker.quota_reservations.quantity IS 'Quantity reserved';
COMMENT ON COLUMN usage_tracker.quota_reservations.period_start IS 'Billing period it was reserved in';
COMMENT ON COLUMN usage_tracker.quota_reservations.status IS 'open, committed, released or expired';
COMMENT ON COLUMN usage_tracker.quota_reservations.expires_at IS 'When an open reservation stops counting';
COMMENT ON COLUMN usage_tracker.quota_reservations.created_at IS 'When it was made';
COMMENT ON COLUMN usage_tracker.quota_reservations.resolved_at IS 'When it was committed, released or expired';
COMMENT ON COLUMN usage_tracker.quota_reservations.committed_quantity IS 'Actual quantity recorded at commit';

------------------------------------------------------------------------------
-- Budgets in USD per organization or per user and billing period, fed by
-- the cost of logged AI usage, with threshold alerts raised once.
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.budgets (
    org_id         uuid          NOT NULL,
    budget_id      uuid          NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    user_id        uuid,
    amount_usd     numeric(20,6) NOT NULL,
    thresholds_pct integer[]     NOT NULL DEFAULT '{80,100}',
    created_at     timestamptz   NOT NULL DEFAULT pg_catalog.now(),
    updated_at     timestamptz   NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT budgets_pkey PRIMARY KEY (org_id, budget_id),
    CONSTRAINT budgets_scope_key UNIQUE NULLS NOT DISTINCT (org_id, user_id),
    CONSTRAINT budgets_amount_check CHECK (amount_usd > 0),
    CONSTRAINT budgets_thresholds_check CHECK (pg_catalog.cardinality(thresholds_pct) BETWEEN 1 AND 10)
);
CREATE INDEX budgets_user_idx ON usage_tracker.budgets (user_id);
COMMENT ON TABLE usage_tracker.budgets IS
    'Spending budgets in USD per billing period, for a whole organization (user_id NULL) or one user in it; AI usage cost counts against them and crossing a threshold raises one alert per period';
COMMENT ON COLUMN usage_tracker.budgets.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.budgets.budget_id IS 'Budget id';
COMMENT ON COLUMN usage_tracker.budgets.user_id IS 'The user the budget is for; NULL for the whole organization';
COMMENT ON COLUMN usage_tracker.budgets.amount_usd IS 'Budget per billing period, USD';
COMMENT ON COLUMN usage_tracker.budgets.thresholds_pct IS 'Percentages of the amount that raise an alert (default 80 and 100)';
COMMENT ON COLUMN usage_tracker.budgets.created_at IS 'When the budget was created';
COMMENT ON COLUMN usage_tracker.budgets.updated_at IS 'When it last changed';

CREATE TABLE usage_tracker_private.budget_spend (
    org_id       uuid        NOT NULL,
    budget_id    uuid        NOT NULL,
    period_start date        NOT NULL,
    spent_usd    numeric     NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    slot         smallint    NOT NULL DEFAULT 0,
    CONSTRAINT budget_spend_pkey PRIMARY KEY (org_id, budget_id, period_start, slot)
);
ALTER TABLE usage_tracker_private.budget_spend ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE usage_tracker_private.budget_spend IS
    'Spend per budget and billing period, spread over 16 slots (the spend is their sum: a busy organization''s requests do not queue on one row); the thresholds alerted are the budget_alerts rows, whose unique key makes each alert fire once';
COMMENT ON COLUMN usage_tracker_private.budget_spend.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker_private.budget_spend.budget_id IS 'Budget';
COMMENT ON COLUMN usage_tracker_private.budget_spend.period_start IS 'First day of the billing period';
COMMENT ON COLUMN usage_tracker_private.budget_spend.spent_usd IS 'Cost of AI usage in the period, USD';
COMMENT ON COLUMN usage_tracker_private.budget_spend.slot IS 'Slot 0..15 (slot 0 also holds what the period started from)';
COMMENT ON COLUMN usage_tracker_private.budget_spend.updated_at IS 'When it last changed';

CREATE TABLE usage_tracker.budget_alerts (
    org_id        uuid        NOT NULL,
    alert_id      uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    budget_id     uuid        NOT NULL,
    user_id       uuid,
    period_start  date        NOT NULL,
    threshold_pct integer     NOT NULL,
    spent_usd     numeric     NOT NULL,
    amount_usd    numeric     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    delivered_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    CONSTRAINT budget_alerts_pkey PRIMARY KEY (org_id, alert_id),
    CONSTRAINT budget_alerts_once UNIQUE (org_id, budget_id, period_start, threshold_pct)
);
CREATE INDEX budget_alerts_pending_idx ON usage_tracker.budget_alerts (created_at) WHERE delivered_at IS NULL;
CREATE INDEX budget_alerts_user_idx ON usage_tracker.budget_alerts (user_id);
COMMENT ON TABLE usage_tracker.budget_alerts IS
    'Outbox of budget alerts: one row per budget, period and threshold crossed, also sent with pg_notify on channel usage_tracker_budget_alerts; an edge function reads pending ones (get_pending_alerts) and marks them delivered';
COMMENT ON COLUMN usage_tracker.budget_alerts.org_id IS 'Organization';
COMMENT ON COLUMN usage_tracker.budget_alerts.alert_id IS 'Alert id';
COMMENT ON COLUMN usage_tracker.budget_alerts.budget_id IS 'Budget';
COMMENT ON COLUMN usage_tracker.budget_alerts.user_id IS 'User of a per-user budget; NULL for an organization budget';
COMMENT ON COLUMN usage_tracker.budget_alerts.period_start IS 'Billing period';
COMMENT ON COLUMN usage_tracker.budget_alerts.threshold_pct IS 'Threshold crossed, percent of the amount';
COMMENT ON COLUMN usage_tracker.budget_alerts.spent_usd IS 'Spend when it was crossed, USD';
COMMENT ON COLUMN usage_tracker.budget_alerts.amount_usd IS 'Budget amount, USD';
COMMENT ON COLUMN usage_tracker.budget_alerts.created_at IS 'When the threshold was crossed';
COMMENT ON COLUMN usage_tracker.budget_alerts.delivered_at IS 'When delivery succeeded; NULL while pending';
COMMENT ON COLUMN usage_tracker.budget_alerts.attempts IS 'Delivery attempts so far';
COMMENT ON COLUMN usage_tracker.budget_alerts.last_error IS 'Error of the last failed attempt';

------------------------------------------------------------------------------
-- Retention, applied by run_maintenance()
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.retention_policies (
    relation   text        NOT NULL,
    keep       interval,
    shipped    boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT retention_policies_pkey PRIMARY KEY (relation, shipped),
    CONSTRAINT retention_policies_relation_check CHECK (relation IN
        ('ai_usage_log', 'ai_usage_hourly', 'ai_usage_daily', 'usage_events', 'quota_reservations', 'budget_alerts', 'report_runs'))
);
COMMENT ON TABLE usage_tracker.retention_policies IS
    'How long run_maintenance() keeps each kind of row (NULL: forever). Shipped rows are never modified: set_retention adds a row that overrides them. The log loses whole monthly partitions once all their rows are older than its retention.';
COMMENT ON COLUMN usage_tracker.retention_policies.relation IS 'ai_usage_log (with its idempotency keys), ai_usage_hourly (every hourly rollup), ai_usage_daily (every daily rollup), usage_events, quota_reservations (resolved ones), budget_alerts (delivered ones) or report_runs (finished ones)';
COMMENT ON COLUMN usage_tracker.retention_policies.keep IS 'How long rows are kept; NULL keeps them forever';
COMMENT ON COLUMN usage_tracker.retention_policies.shipped IS 'True for the defaults installed with the extension';
COMMENT ON COLUMN usage_tracker.retention_policies.updated_at IS 'When it was last set';

INSERT INTO usage_tracker.retention_policies (relation, keep, shipped) VALUES
    ('ai_usage_log', '13 months', true),
    ('ai_usage_hourly', '90 days', true),
    ('ai_usage_daily', NULL, true),
    ('usage_events', '13 months', true),
    ('quota_reservations', '90 days', true),
    ('budget_alerts', '1 year', true),
    ('report_runs', NULL, true);
