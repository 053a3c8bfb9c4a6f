-- usage_tracker bootstrap: roles, schemas, tables, indexes and comments.
-- Runs before the functions pgrx generates; policies, wrappers and grants
-- that need those functions are in finalize.sql.

-- Supabase's API roles. On Supabase they exist and are used as they are; on
-- plain PostgreSQL they are created here so that the same grants and policies
-- work everywhere. Roles are cluster-wide and outlive DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$roles$;

COMMENT ON SCHEMA usage_tracker IS
    'usage_tracker public API: SECURITY INVOKER functions and RLS-protected relations; safe to expose through PostgREST';

-- Definer bodies, internal tables and log partitions. Never expose this
-- schema through PostgREST: its functions are SECURITY DEFINER.
CREATE SCHEMA usage_tracker_private;
COMMENT ON SCHEMA usage_tracker_private IS
    'usage_tracker internals: SECURITY DEFINER bodies behind the public wrappers, idempotency keys and log partitions; do not expose through PostgREST';

-- From every role the extension knows (a database's default privileges may
-- have granted CREATE on new schemas), then exactly USAGE.
REVOKE ALL ON SCHEMA usage_tracker FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SCHEMA usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
GRANT USAGE ON SCHEMA usage_tracker TO authenticated, service_role;
-- The public wrappers run as the caller and call the definer bodies here.
GRANT USAGE ON SCHEMA usage_tracker_private TO authenticated, service_role;

------------------------------------------------------------------------------
-- Organization membership
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.org_members (
    org_id     uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT org_members_pkey PRIMARY KEY (org_id, user_id),
    CONSTRAINT org_members_role_check CHECK (role IN ('member', 'admin', 'owner'))
);
CREATE INDEX org_members_user_idx ON usage_tracker.org_members (user_id, org_id);

COMMENT ON TABLE usage_tracker.org_members IS
    'Who belongs to which organization and with what role; managed by service_role through set_org_member / remove_org_member. A user is implicitly the owner of their personal organization (org_id = user_id).';
COMMENT ON COLUMN usage_tracker.org_members.org_id IS 'Organization id';
COMMENT ON COLUMN usage_tracker.org_members.user_id IS 'User id (the JWT sub claim)';
COMMENT ON COLUMN usage_tracker.org_members.role IS 'member: sees own usage; admin and owner: see the whole organization''s usage';
COMMENT ON COLUMN usage_tracker.org_members.created_at IS 'When the membership was created';
COMMENT ON COLUMN usage_tracker.org_members.updated_at IS 'When the role was last changed';

------------------------------------------------------------------------------
-- Model price catalog
------------------------------------------------------------------------------
-- Versions are immutable: a price change is a new row. Log rows keep the
-- price_id they were costed with, so history never changes silently.
-- Shipped rows have fixed ids below 1000 so that every install and upgrade
-- path gives them the same ids; rows added by users start at 1,000,000.
CREATE SEQUENCE usage_tracker_private.model_prices_price_id_seq AS integer START 1000000;
COMMENT ON SEQUENCE usage_tracker_private.model_prices_price_id_seq IS
    'Ids of price versions added after installation';

CREATE TABLE usage_tracker.model_prices (
    price_id                 integer       NOT NULL DEFAULT pg_catalog.nextval('usage_tracker_private.model_prices_price_id_seq'),
    provider                 text          NOT NULL,
    model                    text          NOT NULL,
    effective_from           timestamptz   NOT NULL,
    input_usd_per_mtok       numeric(18,9) NOT NULL,
    output_usd_per_mtok      numeric(18,9) NOT NULL,
    cache_read_usd_per_mtok  numeric(18,9),
    cache_write_usd_per_mtok numeric(18,9),
    reasoning_usd_per_mtok   numeric(18,9),
    shipped                  boolean       NOT NULL DEFAULT false,
    created_at               timestamptz   NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT model_prices_pkey PRIMARY KEY (price_id),
    CONSTRAINT model_prices_provider_check CHECK (provider ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    CONSTRAINT model_prices_model_check CHECK (pg_catalog.length(model) BETWEEN 1 AND 200),
    CONSTRAINT model_prices_price_range CHECK (
        input_usd_per_mtok BETWEEN 0 AND 100000 AND output_usd_per_mtok BETWEEN 0 AND 100000
        AND cache_read_usd_per_mtok BETWEEN 0 AND 100000 AND cache_write_usd_per_mtok BETWEEN 0 AND 100000
        AND reasoning_usd_per_mtok BETWEEN 0 AND 100000)
);
CREATE INDEX model_prices_lookup_idx
    ON usage_tracker.model_prices (model, effective_from DESC, price_id DESC);

COMMENT ON TABLE usage_tracker.model_prices IS
    'Model price catalog, in USD per million tokens. The price in force for an event is the row of the provider given (or, without one, of the model''s default provider: the one that priced it first, lowest price_id) with the latest effective_from not after the event (and the highest price_id among equal effective_from). Rows are never updated: set_model_price adds a version.';
COMMENT ON COLUMN usage_tracker.model_prices.price_id IS 'Id of this price version, stored with every log row costed with it';
COMMENT ON COLUMN usage_tracker.model_prices.provider IS 'Provider, lower case (anthropic, openai, ...)';
COMMENT ON COLUMN usage_tracker.model_prices.model IS 'Model name exactly as logged in ai_usage_log.model_used';
COMMENT ON COLUMN usage_tracker.model_prices.effective_from IS 'First instant this price applies to';
COMMENT ON COLUMN usage_tracker.model_prices.input_usd_per_mtok IS 'USD per million uncached input tokens';
COMMENT ON COLUMN usage_tracker.model_prices.output_usd_per_mtok IS 'USD per million output tokens';
COMMENT ON COLUMN usage_tracker.model_prices.cache_read_usd_per_mtok IS 'USD per million input tokens read from the provider''s prompt cache; NULL: no price (such tokens cost nothing and are listed by list_unknown_models, never charged at another rate)';
COMMENT ON COLUMN usage_tracker.model_prices.cache_write_usd_per_mtok IS 'USD per million input tokens written to the provider''s prompt cache; NULL: no price (see cache_read_usd_per_mtok)';
COMMENT ON COLUMN usage_tracker.model_prices.reasoning_usd_per_mtok IS 'USD per million reasoning (thinking) tokens; NULL: no price (see cache_read_usd_per_mtok)';
COMMENT ON COLUMN usage_tracker.model_prices.shipped IS 'True for the prices installed with the extension (not dumped by pg_dump; the extension script recreates them)';
COMMENT ON COLUMN usage_tracker.model_prices.created_at IS 'When this version was added';

-- The prices the replaced systems used. They apply to all history unless a
-- dated version is added with set_model_price.
INSERT INTO usage_tracker.model_prices
    (price_id, provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok,
     cache_read_usd_per_mtok, cache_write_usd_per_mtok, reasoning_usd_per_mtok, shipped)
VALUES
    (1, 'anthropic', 'claude-sonnet-4-20250514',   '2000-01-01 00:00:00+00', 3,    15,   0.30,  3.75, 15,   true),
    (2, 'anthropic', 'claude-3-5-sonnet-20241022', '2000-01-01 00:00:00+00', 3,    15,   0.30,  3.75, 15,   true),
    (3, 'openai',    'gpt-4o-mini',                '2000-01-01 00:00:00+00', 0.15, 0.60, 0.075, 0.15, 0.60, true),
    (4, 'openai',    'gpt-4o',                     '2000-01-01 00:00:00+00', 5,    15,   2.50,  5,    15,   true);

------------------------------------------------------------------------------
-- Request types (extendable set)
------------------------------------------------------------------------------
CREATE TABLE usage_tracker.request_types (
    request_type text        NOT NULL,
    description  text,
    shipped      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT request_types_pkey PRIMARY KEY (request_type),
    CONSTRAINT request_types_name_check CHECK (request_type ~ '^[a-z][a-z0-9_]{0,62}$')
);
COMMENT ON TABLE usage_tracker.request_types IS
    'The request types log_ai_usage accepts; add more with add_request_type (service_role)';
COMMENT ON COLUMN usage_tracker.request_types.request_type IS 'Name: lower case letters, digits and _, starting with a letter, at most 63 characters';
COMMENT ON COLUMN usage_tracker.request_types.description IS 'What requests of this type are';
COMMENT ON COLUMN usage_tracker.request_types.shipped IS 'True for types installed with the extension';
COMMENT ON COLUMN usage_tracker.request_types.created_at IS 'When the type was added';

INSERT INTO usage_tracker.request_types (request_type, description, shipped) VALUES
    ('report',     'Generated report', true),
    ('insight',    'Insight on a record or dashboard', true),
    ('scheduled',  'Request made by a scheduled job', true),
    ('widget',     'Embedded widget request', true),
    ('chat',       'Chat message', true),
    ('completion', 'Plain completion', true),
    ('embedding',  'Embedding request', true),
    ('agent',      'Agent step or tool call', true);

------------------------------------------------------------------------------
-- AI usage log (seed 001, improved)
------------------------------------------------------------------------------
CREATE SEQUENCE usage_tracker_private.ai_usage_log_ingest_seq AS bigint;
COMMENT ON SEQUENCE usage_tracker_private.ai_usage_log_ingest_seq IS
    'Ingestion order of ai_usage_log rows, for incremental maintenance';

-- Columns are ordered fixed-width first to keep rows small. The log is
-- partitioned by month of created_at; partitions live in
-- usage_tracker_private and are created on demand and ahead of time.
-- Only log_ai_usage writes it, after validating every value, so the table
-- carries no CHECK constraints and no generated column: Postgres re-reads
-- and plans each of them on every insert (measured: +50% ingest throughput
-- without them).
CREATE TABLE usage_tracker.ai_usage_log (
    id                   uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    org_id               uuid        NOT NULL,
    user_id              uuid        NOT NULL,
    project_id           uuid,
    created_at           timestamptz NOT NULL,
    ingest_seq           bigint      NOT NULL DEFAULT pg_catalog.nextval('usage_tracker_private.ai_usage_log_ingest_seq'),
    customer_id          bigint,
    input_tokens         bigint      NOT NULL DEFAULT 0,
    output_tokens        bigint      NOT NULL DEFAULT 0,
    cache_read_tokens    bigint      NOT NULL DEFAULT 0,
    cache_write_tokens   bigint      NOT NULL DEFAULT 0,
    reasoning_tokens     bigint      NOT NULL DEFAULT 0,
    total_tokens         bigint      NOT NULL DEFAULT 0,
    latency_ms           integer,
    tool_turns           integer     NOT NULL DEFAULT 0,
    price_id             integer,
    cached               boolean     NOT NULL DEFAULT false,
    status               text        NOT NULL DEFAULT 'success',
    request_type         text        NOT NULL DEFAULT 'report',
    provider             text,
    model_used           text        NOT NULL DEFAULT 'claude-sonnet-4-20250514',
    input_cost_usd       numeric     NOT NULL DEFAULT 0,
    output_cost_usd      numeric     NOT NULL DEFAULT 0,
    cache_read_cost_usd  numeric     NOT NULL DEFAULT 0,
    cache_write_cost_usd numeric     NOT NULL DEFAULT 0,
    reasoning_cost_usd   numeric     NOT NULL DEFAULT 0,
    total_cost_usd       numeric     NOT NULL DEFAULT 0,
    potential_cost_usd   numeric     NOT NULL DEFAULT 0,
    user_email           text,
    customer_name        text,
    session_id           text,
    error_message        text,
    idempotency_key      text,
    metadata             jsonb,
    unpriced_buckets     text[]
) PARTITION BY RANGE (created_at);

-- No primary key or index on the parent itself: each partition gets its
-- primary key (org_id, created_at, id) and indexes when it is created (see
-- src/partitions.rs). Partitions are not extension members, so pg_dump
-- recreates them with their own indexes; an index on this parent would be
-- created twice on restore.

COMMENT ON TABLE usage_tracker.ai_usage_log IS
    'One row per AI request (seed 001''s ai_usage_log plus org, provider, cache and reasoning tokens, idempotency and exact costs). Append-only; written by log_ai_usage. Users read their own rows; org admins read their organization through the dashboard functions. Partitioned by month of created_at; each partition has primary key (org_id, created_at, id).';
COMMENT ON COLUMN usage_tracker.ai_usage_log.id IS 'Row id returned by log_ai_usage';
COMMENT ON COLUMN usage_tracker.ai_usage_log.org_id IS 'Organization the usage belongs to (the user''s personal organization, org_id = user_id, when none was given)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.user_id IS 'The logged-in user who made the request (not the customer being viewed)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.project_id IS 'Optional project (a dimension within the organization)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.created_at IS 'When the usage happened';
COMMENT ON COLUMN usage_tracker.ai_usage_log.ingest_seq IS 'Ingestion order, for incremental maintenance';
COMMENT ON COLUMN usage_tracker.ai_usage_log.customer_id IS 'Customer context being viewed, for audit only';
COMMENT ON COLUMN usage_tracker.ai_usage_log.input_tokens IS 'Uncached input tokens (billed at the input price)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.output_tokens IS 'Output tokens, excluding reasoning tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_log.cache_read_tokens IS 'Input tokens read from the provider''s prompt cache';
COMMENT ON COLUMN usage_tracker.ai_usage_log.cache_write_tokens IS 'Input tokens written to the provider''s prompt cache';
COMMENT ON COLUMN usage_tracker.ai_usage_log.reasoning_tokens IS 'Reasoning (thinking) tokens';
COMMENT ON COLUMN usage_tracker.ai_usage_log.total_tokens IS 'Sum of all five token counts (set by log_ai_usage)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.latency_ms IS 'Request latency in milliseconds';
COMMENT ON COLUMN usage_tracker.ai_usage_log.tool_turns IS 'Number of tool-use turns in the request';
COMMENT ON COLUMN usage_tracker.ai_usage_log.price_id IS 'model_prices version the costs were computed with; NULL when the model had no price (costs are then zero)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.cached IS 'True when the response came from the application''s cache: nothing was paid, potential_cost_usd holds what it would have cost';
COMMENT ON COLUMN usage_tracker.ai_usage_log.status IS 'success or error';
COMMENT ON COLUMN usage_tracker.ai_usage_log.request_type IS 'One of usage_tracker.request_types';
COMMENT ON COLUMN usage_tracker.ai_usage_log.provider IS 'Model provider (given, or taken from the price catalog)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.model_used IS 'Model name';
COMMENT ON COLUMN usage_tracker.ai_usage_log.input_cost_usd IS 'Exact cost of the input tokens, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.output_cost_usd IS 'Exact cost of the output tokens, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.cache_read_cost_usd IS 'Exact cost of the cache-read tokens, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.cache_write_cost_usd IS 'Exact cost of the cache-write tokens, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.reasoning_cost_usd IS 'Exact cost of the reasoning tokens, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.total_cost_usd IS 'What was paid, USD: the sum of the five costs (zero for cached responses)';
COMMENT ON COLUMN usage_tracker.ai_usage_log.potential_cost_usd IS 'What the request would have cost without the application''s cache, USD';
COMMENT ON COLUMN usage_tracker.ai_usage_log.user_email IS 'User email, cached for reporting';
COMMENT ON COLUMN usage_tracker.ai_usage_log.customer_name IS 'Customer name, cached for reporting';
COMMENT ON COLUMN usage_tracker.ai_usage_log.session_id IS 'Groups the turns of one conversation';
COMMENT ON COLUMN usage_tracker.ai_usage_log.error_message IS 'Error message when status = error';
COMMENT ON COLUMN usage_tracker.ai_usage_log.idempotency_key IS 'Idempotency key given by the caller, if any';
COMMENT ON COLUMN usage_tracker.ai_usage_log.metadata IS 'Free-form JSON object';
COMMENT ON COLUMN usage_tracker.ai_usage_log.unpriced_buckets IS 'Token buckets with tokens but no rate in the price version used (cache_read, cache_write, reasoning): they cost nothing here; list_unknown_models shows them. NULL when everything was priced';

-- Idempotency keys need a home of their own: a unique index on the
-- partitioned log would have to include created_at, and a retry may carry a
-- different time. Kept as long as the raw rows.
CREATE TABLE usage_tracker_private.ai_usage_idempotency (
    org_id          uuid        NOT NULL,
    idempotency_key text        NOT NULL,
    log_id          uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    payload_digest  bytea,
    CONSTRAINT ai_usage_idempotency_pkey PRIMARY KEY (org_id, idempotency_key)
);
ALTER TABLE usage_tracker_private.ai_usage_idempotency ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE usage_tracker_private.ai_usage_idempotency IS
    'Idempotency keys of ai_usage_log rows, unique per organization; internal to log_ai_usage';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.org_id IS 'Organization the key belongs to';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.idempotency_key IS 'Key given by the caller';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.log_id IS 'ai_usage_log.id of the first call with this key';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.user_id IS 'User of the first call with this key';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.created_at IS 'created_at of the logged row (drives retention)';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.recorded_at IS 'When the key was first seen';
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.payload_digest IS 'SHA-256 (first 16 bytes) of what the first call sent; a retry with the same key and a different payload is refused (23505). NULL for keys recorded before 0.3.0 (any payload matches)';
