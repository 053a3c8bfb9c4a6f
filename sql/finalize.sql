-- usage_tracker finalize: public wrappers, row level security, grants and
-- pg_dump registration. Runs after every function pgrx generates.

------------------------------------------------------------------------------
-- Definer bodies compute days and months in UTC, whatever the session says.
------------------------------------------------------------------------------
ALTER FUNCTION usage_tracker_private.get_ai_usage_dashboard(integer, uuid) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_user_ai_usage(uuid, integer) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_ai_cost_summary(uuid) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_dashboard_stats(uuid, integer) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.aggregate_usage_hourly(uuid, timestamptz) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.aggregate_usage_daily(uuid, date) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.rollup_gaps(date, date) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.verify_rollups(date, date) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.list_projects(uuid) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_usage_summary(uuid, integer) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_usage_details(uuid, text, date, date, integer) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.usage_analysis(text, uuid, date, date) SET TimeZone = 'UTC';

-- The bodies' statements are prepared once per session and their parameters
-- change every call: generic plans skip re-planning (measured: track_usage_event
-- 0.68 -> 0.48 ms per call). JIT is off: on a large log the planner's
-- estimates for the raw tail (ingest_seq > $n) cross jit_above_cost and
-- every read paid ~2.5 s of LLVM compilation for a query that runs in
-- milliseconds (measured at 10M rows).
DO $generic$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'usage_tracker_private'
                -- The ingest path keeps only search_path: each setting is
                -- set and restored on every call, and its statements are
                -- simple inserts (generic plans anyway, never JIT).
                AND p.proname <> 'log_ai_usage'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET plan_cache_mode = force_generic_plan', f);
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
END
$generic$;

------------------------------------------------------------------------------
-- Public API: SECURITY INVOKER wrappers with the seeds' names, parameter
-- names and defaults. PostgREST exposes these; the definer bodies they call
-- check who the caller is.
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.log_ai_usage(
    p_user_id            uuid,
    p_user_email         text        DEFAULT NULL,
    p_customer_id        bigint      DEFAULT NULL,
    p_customer_name      text        DEFAULT NULL,
    p_request_type       text        DEFAULT 'report',
    p_session_id         text        DEFAULT NULL,
    p_input_tokens       bigint      DEFAULT 0,
    p_output_tokens      bigint      DEFAULT 0,
    p_model_used         text        DEFAULT 'claude-sonnet-4-20250514',
    p_latency_ms         integer     DEFAULT NULL,
    p_tool_turns         integer     DEFAULT 0,
    p_status             text        DEFAULT 'success',
    p_error_message      text        DEFAULT NULL,
    p_org_id             uuid        DEFAULT NULL,
    p_occurred_at        timestamptz DEFAULT NULL,
    p_idempotency_key    text        DEFAULT NULL,
    p_provider           text        DEFAULT NULL,
    p_cache_read_tokens  bigint      DEFAULT 0,
    p_cache_write_tokens bigint      DEFAULT 0,
    p_reasoning_tokens   bigint      DEFAULT 0,
    p_cached             boolean     DEFAULT false,
    p_metadata           jsonb       DEFAULT NULL,
    p_project_id         uuid        DEFAULT NULL)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'log_ai_usage_invoker';
COMMENT ON FUNCTION usage_tracker.log_ai_usage IS
    'Records one AI request and returns its id. Seed 001''s 13 parameters first, then optional ones. Users record only their own usage (p_user_id = JWT sub) in their personal organization (default) or one they belong to; service_role records anything, including the past (p_occurred_at). A retry with the same p_idempotency_key in the same organization returns the first id and is counted once. Cost is computed exactly from usage_tracker.model_prices at the event time; unknown models are logged at zero cost (see list_unknown_models).';

CREATE FUNCTION usage_tracker.log_ai_usage_batch(p_events jsonb)
RETURNS jsonb
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'log_ai_usage_batch_invoker';
COMMENT ON FUNCTION usage_tracker.log_ai_usage_batch IS
    'Records up to 10,000 AI requests in one call and returns their ids as a JSON array in input order. p_events is a JSON array of objects whose keys are log_ai_usage''s parameter names without p_ (a missing key takes the parameter''s default). Same authorization, checks, prices, idempotency keys, limits and budgets as one log_ai_usage call per event; all or nothing: an invalid event rejects the batch with its usual SQLSTATE and a message naming it (events[i].key), and nothing is written.';

CREATE FUNCTION usage_tracker.get_ai_usage_dashboard(p_days integer DEFAULT 30, p_org_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_ai_usage_dashboard(p_days, p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.get_ai_usage_dashboard IS
    'Seed 001''s dashboard JSON (summary, costs, by_user, by_customer, daily_trend, by_request_type, current_month, previous_month) over the last p_days (1..3660) days, in UTC. With p_org_id: the organization (admins and owners) or your own usage in it (members). Without: your own usage plus every organization you administer; service_role sees everything.';

CREATE FUNCTION usage_tracker.get_user_ai_usage(p_user_id uuid, p_days integer DEFAULT 30)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_user_ai_usage(p_user_id, p_days) $$;
COMMENT ON FUNCTION usage_tracker.get_user_ai_usage IS
    'Seed 001''s per-user JSON (summary, recent_requests, daily_usage) over the last p_days days, in UTC. Your own usage, or a member''s usage in organizations you administer.';

CREATE FUNCTION usage_tracker.get_ai_cost_summary(p_org_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_ai_cost_summary(p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.get_ai_cost_summary IS
    'Seed 001''s cost totals: today, yesterday, this_week, this_month, last_month, all_time, requests_today, requests_this_month (UTC), scoped like get_ai_usage_dashboard.';

CREATE FUNCTION usage_tracker.list_unknown_models(p_org_id uuid DEFAULT NULL)
RETURNS TABLE (provider text, model_used text, requests bigint, total_tokens numeric,
               first_seen timestamptz, last_seen timestamptz, missing text[])
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM usage_tracker_private.list_unknown_models(p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.list_unknown_models IS
    'Models logged without a price (missing: {price}, at zero cost) or with tokens in a bucket their price has no rate for (missing: {cache_read}, {cache_write}, {reasoning}; those tokens cost nothing), scoped like get_ai_usage_dashboard. Add the prices with set_model_price, then reprice_ai_usage.';

CREATE FUNCTION usage_tracker.set_model_price(
    p_provider                 text,
    p_model                    text,
    p_effective_from           timestamptz,
    p_input_usd_per_mtok       numeric,
    p_output_usd_per_mtok      numeric,
    p_cache_read_usd_per_mtok  numeric DEFAULT NULL,
    p_cache_write_usd_per_mtok numeric DEFAULT NULL,
    p_reasoning_usd_per_mtok   numeric DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$
    SELECT usage_tracker_private.set_model_price(
        p_provider, p_model, p_effective_from, p_input_usd_per_mtok, p_output_usd_per_mtok,
        p_cache_read_usd_per_mtok, p_cache_write_usd_per_mtok, p_reasoning_usd_per_mtok)
$$;
COMMENT ON FUNCTION usage_tracker.set_model_price IS
    'Adds a price version, USD per million tokens (service_role). Cache prices default to the input price, the reasoning price to the output price. Returns the price_id.';

CREATE FUNCTION usage_tracker.add_request_type(p_request_type text, p_description text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.add_request_type(p_request_type, p_description) $$;
COMMENT ON FUNCTION usage_tracker.add_request_type IS
    'Adds a request type log_ai_usage accepts (service_role). Returns false when it existed.';

CREATE FUNCTION usage_tracker.set_org_member(p_org_id uuid, p_user_id uuid, p_role text DEFAULT 'member')
RETURNS text
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_org_member(p_org_id, p_user_id, p_role) $$;
COMMENT ON FUNCTION usage_tracker.set_org_member IS
    'Adds a user to an organization or changes their role: member, admin or owner (service_role).';

CREATE FUNCTION usage_tracker.remove_org_member(p_org_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.remove_org_member(p_org_id, p_user_id) $$;
COMMENT ON FUNCTION usage_tracker.remove_org_member IS
    'Removes a user from an organization (service_role); their logged usage stays.';

CREATE FUNCTION usage_tracker.run_maintenance()
RETURNS jsonb
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.run_maintenance() $$;
COMMENT ON FUNCTION usage_tracker.run_maintenance IS
    'All periodic work (service_role, owner or pg_cron): creates log partitions ahead, expires reservations and stuck report runs, folds the rollups, applies retention. Each step succeeds or fails on its own (ok, errors in the result). Safe to call any time, concurrently.';

CREATE FUNCTION usage_tracker.limits()
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.limits() $$;
COMMENT ON FUNCTION usage_tracker.limits IS
    'The documented limits of the API: largest tokens, quantities, prices and budgets, text lengths, day ranges, and the size and depth of each jsonb argument.';

------------------------------------------------------------------------------
-- Organizations, plans and limits
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.set_org_plan(p_org_id uuid, p_plan text)
RETURNS text LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_org_plan($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.set_org_plan IS
    'Puts an organization on a plan: trial, pilot, subscription or a custom one (service_role). Organizations without a plan are on the default plan (trial).';

CREATE FUNCTION usage_tracker.set_org_settings(p_org_id uuid, p_time_zone text DEFAULT NULL, p_billing_anchor_day integer DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_org_settings($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.set_org_settings IS
    'Sets an organization''s IANA time zone (days and periods start at its midnight) and billing anchor day 1..31 (service_role); NULL keeps a setting.';

CREATE FUNCTION usage_tracker.create_plan(p_plan text, p_description text DEFAULT NULL, p_limits jsonb DEFAULT '{}',
                                          p_is_default boolean DEFAULT false, p_base_plan text DEFAULT NULL)
RETURNS text LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.create_plan($1, $2, $3, $4, $5) $$;
COMMENT ON FUNCTION usage_tracker.create_plan IS
    'Creates or updates a custom plan with limits {"chat_messages": 1000, "ai_tokens": -1} (-1 = unlimited), optionally as the default plan (service_role). Limits the plan does not have yet and p_limits does not list come from p_base_plan; without it they are unlimited (a NOTICE lists them).';

CREATE FUNCTION usage_tracker.set_plan_limit(p_plan text, p_limit_key text, p_max_quantity bigint)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_plan_limit($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.set_plan_limit IS 'Sets one limit of a plan; -1 is unlimited (service_role).';

CREATE FUNCTION usage_tracker.define_limit(p_limit_key text, p_event_types text[], p_unit text DEFAULT NULL, p_period text DEFAULT 'billing_period')
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.define_limit($1, $2, $3, $4) $$;
COMMENT ON FUNCTION usage_tracker.define_limit IS
    'Defines a limit: the event types counting against it, its unit, and billing_period (resets) or total (service_role).';

CREATE FUNCTION usage_tracker.set_limit_source(p_limit_key text, p_source text)
RETURNS text LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_limit_source($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.set_limit_source IS
    'What counts against a limit (service_role): events (usage events of its event types), ai_log (the tokens of requests logged with log_ai_usage; limits on ai_tokens_input / ai_tokens_output only) or both (ai_tokens'' default). Period rows are recomputed from history.';

CREATE FUNCTION usage_tracker.add_event_type(p_event_type text, p_unit text DEFAULT NULL, p_description text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.add_event_type($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.add_event_type IS 'Registers a custom event type (service_role). Returns false if it existed.';

------------------------------------------------------------------------------
-- Seed 000: organization counters
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.increment_organization_usage(org_id uuid, type text, count bigint DEFAULT 1, date date DEFAULT NULL, metadata jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.increment_organization_usage($1, $2, $3, $4, $5) $$;
COMMENT ON FUNCTION usage_tracker.increment_organization_usage IS
    'Seed 000: adds count to the organization''s counter of type (message, reasoning, or any short name) for date (today in the organization''s time zone; past dates for service_role only) and records a detail row with metadata. Returns the day''s new total. Members of the organization and service_role.';

CREATE FUNCTION usage_tracker.get_usage_count(p_org_id uuid, p_type text, p_period text DEFAULT 'month')
RETURNS bigint LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_count($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.get_usage_count IS
    'Total of one type in the current day, week (ISO), month or year, in the organization''s time zone.';

CREATE FUNCTION usage_tracker.get_message_count(p_org_id uuid, p_period text DEFAULT 'month')
RETURNS bigint LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_count($1, 'message', $2) $$;
COMMENT ON FUNCTION usage_tracker.get_message_count IS 'Seed 000''s get_message_count(period): day, week, month or year.';

CREATE FUNCTION usage_tracker.get_reasoning_count(p_org_id uuid, p_period text DEFAULT 'month')
RETURNS bigint LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_count($1, 'reasoning', $2) $$;
COMMENT ON FUNCTION usage_tracker.get_reasoning_count IS 'Seed 000''s get_reasoning_count(period): day, week, month or year.';

CREATE FUNCTION usage_tracker.get_usage_counts(p_org_id uuid, p_period text DEFAULT 'month')
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_counts($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.get_usage_counts IS
    'Seed 000''s get_usage_summary(period): {"message": 450, "reasoning": 320, ...} for the current day, week, month or year.';

CREATE FUNCTION usage_tracker.get_organization_usage_summary(org_id uuid, start_date date, end_date date)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_organization_usage_summary($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.get_organization_usage_summary IS
    'Seed 000: {"message": 450, "reasoning": 320, ...} from start_date to end_date inclusive (organization''s days).';

CREATE FUNCTION usage_tracker.get_usage_details(p_org_id uuid, p_usage_type text DEFAULT NULL, p_start_date date DEFAULT NULL,
                                                p_end_date date DEFAULT NULL, p_limit integer DEFAULT 100)
RETURNS TABLE (id uuid, org_id uuid, type text, count bigint, "timestamp" timestamptz, metadata jsonb, created_at timestamptz, user_id uuid)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.get_usage_details($1, $2, $3, $4, $5))
      AS d (id uuid, org_id uuid, type text, count bigint, "timestamp" timestamptz, metadata jsonb, created_at timestamptz, user_id uuid) $$;
COMMENT ON FUNCTION usage_tracker.get_usage_details IS
    'Seed 000''s detail records, newest first, filtered by type and date range, at most p_limit (1..10000). Members see their own, admins the organization''s.';

CREATE FUNCTION usage_tracker.usage_daily_by_type(p_org_id uuid, p_start_date date, p_end_date date)
RETURNS TABLE (date date, type text, count bigint) LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_analysis('daily', $1, $2, $3))
      AS a (date date, type text, count bigint) $$;
COMMENT ON FUNCTION usage_tracker.usage_daily_by_type IS 'Seed 000 analysis 1: daily usage by type.';

CREATE FUNCTION usage_tracker.usage_weekly(p_org_id uuid, p_start_date date, p_end_date date)
RETURNS TABLE (week_start date, type text, count bigint) LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_analysis('weekly', $1, $2, $3))
      AS a (week_start date, type text, count bigint) $$;
COMMENT ON FUNCTION usage_tracker.usage_weekly IS 'Seed 000 analysis 2: weekly (ISO week) usage by type.';

CREATE FUNCTION usage_tracker.usage_month_over_month(p_org_id uuid, p_start_date date, p_end_date date)
RETURNS TABLE (month date, type text, count bigint, previous_count bigint, change_pct numeric)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_analysis('monthly', $1, $2, $3))
      AS a (month date, type text, count bigint, previous_count bigint, change_pct numeric) $$;
COMMENT ON FUNCTION usage_tracker.usage_month_over_month IS 'Seed 000 analysis 3: monthly totals with the previous month and the change in percent.';

CREATE FUNCTION usage_tracker.usage_compare_organizations(p_start_date date, p_end_date date, p_type text DEFAULT NULL)
RETURNS TABLE (org_id uuid, type text, count numeric, share_pct numeric, rank bigint)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_compare_organizations($1, $2, $3))
      AS a (org_id uuid, type text, count numeric, share_pct numeric, rank bigint) $$;
COMMENT ON FUNCTION usage_tracker.usage_compare_organizations IS 'Seed 000 analysis 4: usage across organizations, with share and rank (service_role only). Counts are numeric: one organization''s total past bigint cannot break the comparison for the others.';

CREATE FUNCTION usage_tracker.usage_hourly_pattern(p_org_id uuid, p_start_date date, p_end_date date)
RETURNS TABLE (hour_of_day integer, type text, events bigint, count bigint)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_analysis('hourly', $1, $2, $3))
      AS a (hour_of_day integer, type text, events bigint, count bigint) $$;
COMMENT ON FUNCTION usage_tracker.usage_hourly_pattern IS 'Seed 000 analysis 5: usage by hour of day (organization''s time zone) from the detail records.';

CREATE FUNCTION usage_tracker.usage_message_reasoning_ratio(p_org_id uuid, p_start_date date, p_end_date date)
RETURNS TABLE (date date, messages bigint, reasoning bigint, reasoning_per_message numeric)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_analysis('ratio', $1, $2, $3))
      AS a (date date, messages bigint, reasoning bigint, reasoning_per_message numeric) $$;
COMMENT ON FUNCTION usage_tracker.usage_message_reasoning_ratio IS 'Seed 000 analysis 6: reasoning per message, by day.';

------------------------------------------------------------------------------
-- Seed 002: usage events, limits and quotas
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.track_usage_event(p_org_id uuid, p_event_type text, p_quantity bigint DEFAULT 1,
                                                p_metadata jsonb DEFAULT NULL, p_occurred_at timestamptz DEFAULT now())
RETURNS uuid LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'track_usage_event_invoker';
COMMENT ON FUNCTION usage_tracker.track_usage_event IS
    'Seed 002: records one usage event of a known type (csv_upload, chat_message, ai_tokens_input, ... or a custom one). Always recorded; consume_quota checks first.';

CREATE FUNCTION usage_tracker.track_usage_events(p_events jsonb)
RETURNS jsonb LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'track_usage_events_invoker';
COMMENT ON FUNCTION usage_tracker.track_usage_events IS
    'Records up to 10,000 usage events in one call and returns their ids as a JSON array in input order. p_events is a JSON array of objects with track_usage_event''s parameter names without p_ (org_id, event_type, quantity, metadata, occurred_at; a missing key takes the default). The daily counters and period rows are updated once per organization, type and period. All or nothing: an invalid event rejects the batch with its usual SQLSTATE and a message naming it (events[i].key).';

CREATE FUNCTION usage_tracker.check_usage_limit(p_org_id uuid, p_event_type text,
                                                OUT within_limit boolean, OUT current bigint, OUT "limit" bigint)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$
DECLARE
    j jsonb := usage_tracker_private.check_usage_limit(p_org_id, p_event_type);
BEGIN
    -- PL/pgSQL keeps this plan for the session; a SQL function returning a
    -- record would be planned again on every call.
    within_limit := (j OPERATOR(pg_catalog.->>) 'within_limit')::boolean;
    current := (j OPERATOR(pg_catalog.->>) 'current')::bigint;
    "limit" := (j OPERATOR(pg_catalog.->>) 'limit')::bigint;
END
$$;
COMMENT ON FUNCTION usage_tracker.check_usage_limit IS
    'Seed 002: within_limit, current and limit (-1 = unlimited) of the event type on the organization''s plan this billing period. Constant time.';

CREATE FUNCTION usage_tracker.get_usage_summary(p_org_id uuid, p_days integer DEFAULT 30)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_summary($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.get_usage_summary IS
    'Seed 002''s usage summary over the last p_days (1..365): total_events and, per type, count, total_quantity, first_event, last_event.';

CREATE FUNCTION usage_tracker.get_usage_limits(p_org_id uuid)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_usage_limits($1) $$;
COMMENT ON FUNCTION usage_tracker.get_usage_limits IS
    'Seed 002''s limits: tier and, per limit, current, limit, within_limit, unit (and the input/output token breakdown) for the current billing period.';

CREATE FUNCTION usage_tracker.get_quota_status(p_org_id uuid)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_quota_status($1) $$;
COMMENT ON FUNCTION usage_tracker.get_quota_status IS
    'Seed 002''s quota status: ok, approaching_limit (80% or more of a limit) or over_limit (a limit reached), with a message.';

CREATE FUNCTION usage_tracker.consume_quota(p_org_id uuid, p_event_type text, p_quantity bigint DEFAULT 1,
                                            p_metadata jsonb DEFAULT NULL, p_raise_on_limit boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := usage_tracker_private.consume_quota(p_org_id, p_event_type, p_quantity, p_metadata);
BEGIN
    IF p_raise_on_limit AND NOT (r ->> 'allowed')::boolean THEN
        -- PostgREST answers PTnnn with HTTP status nnn.
        RAISE SQLSTATE 'PT429' USING
            MESSAGE = format('usage limit reached: %s %s of %s used this period', r ->> 'limit_key', r ->> 'current', r ->> 'limit'),
            DETAIL = r::text,
            HINT = 'Upgrade the plan or wait for the next billing period.';
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION usage_tracker.consume_quota IS
    'Checks and records in one atomic step: {allowed, current, limit, remaining, ...}. Concurrent callers at the limit let exactly the remaining quantity through. With p_raise_on_limit, raises SQLSTATE PT429 (HTTP 429 through PostgREST) instead of returning allowed = false.';

CREATE FUNCTION usage_tracker.reserve_quota(p_org_id uuid, p_event_type text, p_quantity bigint,
                                            p_ttl_seconds integer DEFAULT 900, p_raise_on_limit boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := usage_tracker_private.reserve_quota(p_org_id, p_event_type, p_quantity, p_ttl_seconds);
BEGIN
    IF p_raise_on_limit AND NOT (r ->> 'allowed')::boolean THEN
        RAISE SQLSTATE 'PT429' USING
            MESSAGE = format('usage limit reached: cannot reserve %s %s', p_quantity, r ->> 'limit_key'),
            DETAIL = r::text,
            HINT = 'Upgrade the plan or wait for the next billing period.';
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION usage_tracker.reserve_quota IS
    'Reserves an estimated quantity before a request if it fits; the reservation counts against the limit until committed, released, or expired (p_ttl_seconds, default 900, at most 86400). Returns {allowed, reservation_id, expires_at, ...}.';

CREATE FUNCTION usage_tracker.commit_reservation(p_org_id uuid, p_reservation_id uuid, p_quantity bigint DEFAULT NULL, p_metadata jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.commit_reservation($1, $2, $3, $4) $$;
COMMENT ON FUNCTION usage_tracker.commit_reservation IS
    'Records the actual quantity of a reserved request (default: the reserved quantity). A released, committed or expired reservation fails with 55000.';

CREATE FUNCTION usage_tracker.release_reservation(p_org_id uuid, p_reservation_id uuid)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.release_reservation($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.release_reservation IS
    'Releases a reservation without recording usage; false if it was already released or had expired.';

------------------------------------------------------------------------------
-- Budgets and alerts
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.set_budget(p_org_id uuid, p_amount_usd numeric, p_user_id uuid DEFAULT NULL,
                                         p_thresholds_pct integer[] DEFAULT '{80,100}')
RETURNS uuid LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_budget($1, $2, $3, $4) $$;
COMMENT ON FUNCTION usage_tracker.set_budget IS
    'Sets the USD budget per billing period of an organization (p_user_id NULL) or of one user in it, with alert thresholds in percent (org admins, service_role). Logged AI costs count against it; each threshold alerts once per period (budget_alerts, pg_notify channel usage_tracker_budget_alerts).';

CREATE FUNCTION usage_tracker.delete_budget(p_org_id uuid, p_budget_id uuid)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.delete_budget($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.delete_budget IS 'Deletes a budget (org admins, service_role); its alerts stay.';

CREATE FUNCTION usage_tracker.get_budget_status(p_org_id uuid)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_budget_status($1) $$;
COMMENT ON FUNCTION usage_tracker.get_budget_status IS
    'Budgets with amount, spent_usd and used_pct this billing period (members: the organization''s and their own; admins: all).';

CREATE FUNCTION usage_tracker.get_pending_alerts(p_limit integer DEFAULT 100)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_pending_alerts($1) $$;
COMMENT ON FUNCTION usage_tracker.get_pending_alerts IS 'Undelivered budget alerts, oldest first (service_role).';

CREATE FUNCTION usage_tracker.mark_alert_delivered(p_org_id uuid, p_alert_id uuid, p_error text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.mark_alert_delivered($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.mark_alert_delivered IS
    'Records a delivery attempt: delivered when p_error is NULL, else kept pending with the error (service_role).';

------------------------------------------------------------------------------
-- Report runs (seed 004)
------------------------------------------------------------------------------
CREATE FUNCTION usage_tracker.start_report_run(p_user_id uuid, p_repository_id uuid DEFAULT NULL,
        p_report_configuration_id uuid DEFAULT NULL, p_configuration_snapshot jsonb DEFAULT NULL,
        p_org_id uuid DEFAULT NULL, p_enforce_limit boolean DEFAULT NULL, p_monthly_limit integer DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := usage_tracker_private.start_report_run(p_user_id, p_repository_id, p_report_configuration_id,
                                                      p_configuration_snapshot, p_org_id, p_enforce_limit, p_monthly_limit);
BEGIN
    IF NOT (r ->> 'started')::boolean THEN
        RAISE SQLSTATE 'PT429' USING
            MESSAGE = format('monthly report run limit reached: %s of %s', r ->> 'used', r ->> 'limit'),
            DETAIL = r::text, HINT = 'Runs reset with the next billing period; failed and cancelled runs do not count.';
    END IF;
    RETURN (r ->> 'run_id')::uuid;
END
$$;
COMMENT ON FUNCTION usage_tracker.start_report_run IS
    'Starts a report run (status running) in p_org_id (default: the user''s personal organization) and returns its id. Users are always held to their plan''s report_runs_per_user (running and successful runs this billing period; p_monthly_limit may only lower it), atomically; at the limit it raises PT429 (HTTP 429 through PostgREST). service_role chooses: p_enforce_limit (default false) and p_monthly_limit (default the plan''s).';

CREATE FUNCTION usage_tracker.update_report_run(p_run_id uuid, p_commits_processed integer DEFAULT NULL,
        p_commit_range_from text DEFAULT NULL, p_commit_range_to text DEFAULT NULL, p_tokens_used bigint DEFAULT NULL,
        p_model_used text DEFAULT NULL, p_configuration_snapshot jsonb DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.update_report_run($1, $2, $3, $4, $5, $6, $7) $$;
COMMENT ON FUNCTION usage_tracker.update_report_run IS 'Updates a running report run (NULL keeps a value); other states fail with 55000.';

CREATE FUNCTION usage_tracker.mark_run_success(p_run_id uuid, p_tokens_used bigint DEFAULT NULL, p_model_used text DEFAULT NULL,
        p_cost_usd numeric DEFAULT NULL, p_commits_processed integer DEFAULT NULL, p_report_content text DEFAULT NULL,
        p_report_format text DEFAULT NULL, p_input_tokens bigint DEFAULT NULL, p_output_tokens bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.mark_run_success($1, $2, $3, $4, $5, $6, $7, $8, $9) $$;
COMMENT ON FUNCTION usage_tracker.mark_run_success IS
    'Marks a running report run successful with tokens, model, cost (from the price catalog when not given; unsplit tokens priced as input), commits and content (at most 1,048,576 characters). The run then counts in the organization''s usage: event report_run, and its tokens and cost in the AI log.';

CREATE FUNCTION usage_tracker.mark_run_failed(p_run_id uuid, p_error_message text, p_error_code text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.mark_run_failed($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.mark_run_failed IS 'Marks a running report run failed with an error message and code.';

CREATE FUNCTION usage_tracker.cancel_report_run(p_run_id uuid)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.cancel_report_run($1) $$;
COMMENT ON FUNCTION usage_tracker.cancel_report_run IS 'Cancels a running report run.';

CREATE FUNCTION usage_tracker.record_webhook_attempt(p_run_id uuid, p_delivered boolean, p_response_status integer DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.record_webhook_attempt($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.record_webhook_attempt IS 'Records a webhook delivery attempt of a successful run (seed 004''s updateWebhookDelivery).';

CREATE FUNCTION usage_tracker.get_report_runs(p_user_id uuid, p_limit integer DEFAULT 50, p_offset integer DEFAULT 0)
RETURNS SETOF usage_tracker.report_runs LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::usage_tracker.report_runs,
                                                        usage_tracker_private.get_report_runs($1, $2, $3)) $$;
COMMENT ON FUNCTION usage_tracker.get_report_runs IS 'A user''s report runs, newest first, with limit (1..1000) and offset.';

CREATE FUNCTION usage_tracker.get_report_run(p_run_id uuid)
RETURNS SETOF usage_tracker.report_runs LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::usage_tracker.report_runs,
                      pg_catalog.jsonb_build_array(usage_tracker_private.get_report_run($1))) r WHERE r.id IS NOT NULL $$;
COMMENT ON FUNCTION usage_tracker.get_report_run IS 'One report run (no row when there is none or it is not yours).';

CREATE FUNCTION usage_tracker.get_monthly_usage(p_user_id uuid, p_org_id uuid DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_monthly_usage($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.get_monthly_usage IS
    'Seed 004''s monthly usage of a user for the current billing period of p_org_id (default: the user''s personal organization): total, successful and failed runs, tokens, cost, last run. Yourself, or a member of an organization you administer.';

CREATE FUNCTION usage_tracker.check_monthly_usage_limit(p_user_id uuid, p_limit integer DEFAULT NULL, p_org_id uuid DEFAULT NULL)
RETURNS boolean LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.check_monthly_usage_limit($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.check_monthly_usage_limit IS
    'Seed 004: true while the user has fewer than p_limit (default: the plan''s report_runs_per_user, 50 on the shipped plans) successful runs this billing period, in p_org_id (default: the user''s personal organization). Yourself, or a member of an organization you administer.';

CREATE FUNCTION usage_tracker.set_retention(p_relation text, p_keep interval)
RETURNS boolean LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_retention($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.set_retention IS
    'How long run_maintenance keeps ai_usage_log (whole monthly partitions), usage_events, resolved quota_reservations, delivered budget_alerts or finished report_runs; NULL keeps them forever (service_role).';

CREATE FUNCTION usage_tracker.rollup_lag()
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.rollup_lag() $$;
COMMENT ON FUNCTION usage_tracker.rollup_lag IS
    'How far the rollups are behind the log, for monitoring: rows_waiting (at most), lag_seconds (age of the oldest unfolded row, at most; 0 when nothing waits), folded_through, last_fold_at (service_role). Reads stay exact whatever the lag: they add the unfolded rows.';

CREATE FUNCTION usage_tracker.verify_rollups(p_from date, p_to date)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.verify_rollups($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.verify_rollups IS
    'Compares every rollup with the raw log (rows folded so far) per table, organization and UTC day; lists the differences (service_role).';

CREATE FUNCTION usage_tracker.rebuild_rollups(p_from date, p_to date)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.rebuild_rollups($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.rebuild_rollups IS 'Recomputes every rollup for a range of UTC days from the raw log (service_role; refuses days whose raw rows retention may have dropped).';

CREATE FUNCTION usage_tracker.create_project(p_org_id uuid, p_name text, p_project_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.create_project($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.create_project IS
    'Seed 003: creates a project in an organization (org admins, service_role); log_ai_usage(p_project_id => ...) then counts usage against it.';

CREATE FUNCTION usage_tracker.list_projects(p_org_id uuid)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.list_projects($1) $$;
COMMENT ON FUNCTION usage_tracker.list_projects IS 'The projects of an organization, as [{id, name, created_at}] (its members).';

CREATE FUNCTION usage_tracker.aggregate_usage_hourly(p_project_id uuid, p_hour_start timestamptz)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.aggregate_usage_hourly($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.aggregate_usage_hourly IS
    'Seed 003: brings the rollups up to date and returns the project''s stats for the UTC hour containing p_hour_start (org admins, service_role). Not needed for correctness: every read already includes rows not folded yet.';

CREATE FUNCTION usage_tracker.aggregate_usage_daily(p_project_id uuid, p_date date)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.aggregate_usage_daily($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.aggregate_usage_daily IS
    'Seed 003: brings the rollups up to date and returns the project''s stats for the UTC day p_date (org admins, service_role).';

CREATE FUNCTION usage_tracker.get_dashboard_stats(p_project_id uuid, p_days integer DEFAULT 30)
RETURNS TABLE (project_id uuid, date date, total_requests bigint, cached_requests bigint, cache_hit_rate numeric,
               total_tokens_input bigint, total_tokens_output bigint, total_tokens bigint, total_cost_usd numeric,
               total_potential_cost_usd numeric, total_savings_usd numeric, cache_write_extra_usd numeric,
               net_savings_usd numeric, avg_latency_ms numeric, requests_by_provider jsonb, requests_by_model jsonb)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$
    SELECT x.* FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.get_dashboard_stats($1, $2)) AS x(
        project_id uuid, date date, total_requests bigint, cached_requests bigint, cache_hit_rate numeric,
        total_tokens_input bigint, total_tokens_output bigint, total_tokens bigint, total_cost_usd numeric,
        total_potential_cost_usd numeric, total_savings_usd numeric, cache_write_extra_usd numeric,
        net_savings_usd numeric, avg_latency_ms numeric, requests_by_provider jsonb, requests_by_model jsonb)
$$;
COMMENT ON FUNCTION usage_tracker.get_dashboard_stats IS
    'Seed 003: one row per UTC day with requests among the last p_days days (today included, 1 to 3660), oldest first: requests, cache hits and hit rate (%), tokens, cost, potential cost, savings, net savings (minus the prompt-cache write premium), average latency, requests by provider and by model (org admins, service_role).';

CREATE FUNCTION usage_tracker.backfill_potential_cost(p_from date, p_to date, p_prices jsonb DEFAULT NULL,
                                                      p_dry_run boolean DEFAULT false)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.backfill_potential_cost($1, $2, $3, $4) $$;
COMMENT ON FUNCTION usage_tracker.backfill_potential_cost IS
    'Seed 003: fills potential_cost_usd where it is zero for the UTC days p_from..p_to — what was paid for uncached rows, the catalog price at the time (or p_prices: {"model": {"input_usd_per_mtok": n, "output_usd_per_mtok": n}}) for cached rows — and rebuilds the affected rollup days (service_role).';

CREATE FUNCTION usage_tracker.reprice_ai_usage(p_from date, p_to date, p_model text DEFAULT NULL,
                                               p_dry_run boolean DEFAULT true)
RETURNS jsonb LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.reprice_ai_usage($1, $2, $3, $4) $$;
COMMENT ON FUNCTION usage_tracker.reprice_ai_usage IS
    'Recomputes the costs of logged rows (UTC days p_from..p_to, optionally one model) from the price catalog after a price change; a dry run (the default) only reports rows and the difference. Rebuilds the affected rollup days; budgets keep what was counted at ingest (service_role).';

CREATE FUNCTION usage_tracker.rollup_gaps(p_from date, p_to date)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.rollup_gaps($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.rollup_gaps IS
    'Seed 003''s gap check: hours with raw rows the hourly rollup does not hold — not_folded_yet (until the next run_maintenance), trimmed (hourly retention) or missing (run rebuild_rollups) (service_role).';

CREATE FUNCTION usage_tracker.pre_request()
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- On Citus, claims set with set_config() do not reach the workers that
    -- evaluate RLS; a SET LOCAL propagated by Citus does. Elsewhere: nothing.
    IF pg_catalog.current_setting('citus.propagate_set_commands', true) IS NOT NULL THEN
        PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
        EXECUTE pg_catalog.format('SET LOCAL request.jwt.claims = %L',
            COALESCE(pg_catalog.current_setting('request.jwt.claims', true), ''));
    END IF;
END
$$;
COMMENT ON FUNCTION usage_tracker.pre_request IS
    'For PostgREST''s db-pre-request setting: on Citus, re-issues the request''s JWT claims as a propagated SET LOCAL so RLS works on the workers; does nothing elsewhere.';

COMMENT ON FUNCTION usage_tracker.uid IS
    'The request''s user id (JWT sub from request.jwt.claims, else request.jwt.claim.sub), like auth.uid(); NULL for missing, empty or malformed claims.';

------------------------------------------------------------------------------
-- Row level security. Policies decide from the row and the JWT claims only
-- (no subqueries, no lookups: Citus rejects them); org-wide reads for
-- admins go through the functions.
------------------------------------------------------------------------------
ALTER TABLE usage_tracker.org_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_members_select_own ON usage_tracker.org_members
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY org_members_select_service ON usage_tracker.org_members
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.ai_usage_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_log_select_own ON usage_tracker.ai_usage_log
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY ai_usage_log_select_service ON usage_tracker.ai_usage_log
    FOR SELECT TO service_role USING (true);

-- The price catalog and the request types are reference data every
-- signed-in caller may read.
ALTER TABLE usage_tracker.model_prices ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_prices_select ON usage_tracker.model_prices
    FOR SELECT TO authenticated, service_role USING (true);

ALTER TABLE usage_tracker.request_types ENABLE ROW LEVEL SECURITY;
CREATE POLICY request_types_select ON usage_tracker.request_types
    FOR SELECT TO authenticated, service_role USING (true);

ALTER TABLE usage_tracker.organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY organizations_select_own ON usage_tracker.organizations
    FOR SELECT TO authenticated USING (org_id = usage_tracker.uid());
CREATE POLICY organizations_select_service ON usage_tracker.organizations
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.usage_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY usage_events_select_own ON usage_tracker.usage_events
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY usage_events_select_service ON usage_tracker.usage_events
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.organization_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_usage_select_own ON usage_tracker.organization_usage
    FOR SELECT TO authenticated USING (org_id = usage_tracker.uid());
CREATE POLICY organization_usage_select_service ON usage_tracker.organization_usage
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.quota_reservations ENABLE ROW LEVEL SECURITY;
CREATE POLICY quota_reservations_select_own ON usage_tracker.quota_reservations
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY quota_reservations_select_service ON usage_tracker.quota_reservations
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.budgets ENABLE ROW LEVEL SECURITY;
CREATE POLICY budgets_select_own ON usage_tracker.budgets
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY budgets_select_service ON usage_tracker.budgets
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.budget_alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY budget_alerts_select_own ON usage_tracker.budget_alerts
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY budget_alerts_select_service ON usage_tracker.budget_alerts
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.report_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY report_runs_select_own ON usage_tracker.report_runs
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY report_runs_select_service ON usage_tracker.report_runs
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.retention_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY retention_policies_select ON usage_tracker.retention_policies
    FOR SELECT TO authenticated, service_role USING (true);

-- Projects: org-wide rows, read through list_projects.
ALTER TABLE usage_tracker.projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY projects_select_service ON usage_tracker.projects
    FOR SELECT TO service_role USING (true);

-- No user column: org-wide rows, read through the functions.
ALTER TABLE usage_tracker.ai_usage_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_hourly_select_service ON usage_tracker.ai_usage_hourly
    FOR SELECT TO service_role USING (true);
-- No user column: org-wide rows, read through the functions.
ALTER TABLE usage_tracker.ai_usage_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_daily_select_service ON usage_tracker.ai_usage_daily
    FOR SELECT TO service_role USING (true);
-- No user column: org-wide rows, read through the functions.
ALTER TABLE usage_tracker.ai_usage_customer_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_customer_hourly_select_service ON usage_tracker.ai_usage_customer_hourly
    FOR SELECT TO service_role USING (true);
-- No user column: org-wide rows, read through the functions.
ALTER TABLE usage_tracker.ai_usage_customer_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_customer_daily_select_service ON usage_tracker.ai_usage_customer_daily
    FOR SELECT TO service_role USING (true);
ALTER TABLE usage_tracker.ai_usage_user_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_user_hourly_select_own ON usage_tracker.ai_usage_user_hourly
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY ai_usage_user_hourly_select_service ON usage_tracker.ai_usage_user_hourly
    FOR SELECT TO service_role USING (true);
ALTER TABLE usage_tracker.ai_usage_user_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_user_daily_select_own ON usage_tracker.ai_usage_user_daily
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY ai_usage_user_daily_select_service ON usage_tracker.ai_usage_user_daily
    FOR SELECT TO service_role USING (true);
ALTER TABLE usage_tracker.ai_usage_customer_users ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_customer_users_select_own ON usage_tracker.ai_usage_customer_users
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY ai_usage_customer_users_select_service ON usage_tracker.ai_usage_customer_users
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.event_types ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_types_select ON usage_tracker.event_types
    FOR SELECT TO authenticated, service_role USING (true);
ALTER TABLE usage_tracker.limit_definitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY limit_definitions_select ON usage_tracker.limit_definitions
    FOR SELECT TO authenticated, service_role USING (true);
ALTER TABLE usage_tracker.limit_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY limit_settings_select ON usage_tracker.limit_settings
    FOR SELECT TO authenticated, service_role USING (true);
ALTER TABLE usage_tracker.plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY plans_select ON usage_tracker.plans
    FOR SELECT TO authenticated, service_role USING (true);
ALTER TABLE usage_tracker.plan_limits ENABLE ROW LEVEL SECURITY;
CREATE POLICY plan_limits_select ON usage_tracker.plan_limits
    FOR SELECT TO authenticated, service_role USING (true);

-- Every backend keeps a copy of the price catalog and of which
-- organizations have budgets (src/relcache.rs); any change to them, however
-- made, invalidates the copies.
CREATE TRIGGER model_prices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER budgets_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.budgets
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
-- The ingest path keeps each organization's plan and period and each
-- plan's AI-fed limits (src/usage/ai_limits.rs).
CREATE TRIGGER organizations_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.organizations
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER plans_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.plans
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER plan_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.plan_limits
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER limit_definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.limit_definitions
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER limit_settings_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.limit_settings
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC or anon; reads for signed-in callers;
-- writes only through the functions.
------------------------------------------------------------------------------
-- From every role the extension knows, whatever a database's default
-- privileges granted at creation (ALTER DEFAULT PRIVILEGES ... TO
-- authenticated would otherwise give TRUNCATE on the log): then grant
-- exactly what the design says.
REVOKE ALL ON ALL TABLES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;

GRANT SELECT ON usage_tracker.org_members, usage_tracker.ai_usage_log,
                usage_tracker.model_prices, usage_tracker.request_types,
                usage_tracker.organizations, usage_tracker.usage_events, usage_tracker.usage_detail,
                usage_tracker.organization_usage, usage_tracker.quota_reservations,
                usage_tracker.event_types, usage_tracker.limit_definitions, usage_tracker.limit_settings,
                usage_tracker.plans, usage_tracker.plan_limits,
                usage_tracker.budgets, usage_tracker.budget_alerts,
                usage_tracker.report_runs, usage_tracker.user_monthly_usage,
                usage_tracker.retention_policies, usage_tracker.ai_usage_user_hourly,
                usage_tracker.ai_usage_user_daily, usage_tracker.ai_usage_customer_users
    TO authenticated, service_role;
GRANT SELECT ON usage_tracker.ai_usage_hourly, usage_tracker.ai_usage_daily,
                usage_tracker.ai_usage_customer_hourly, usage_tracker.ai_usage_customer_daily,
                usage_tracker.projects
    TO service_role;

DO $grants$
DECLARE
    f regprocedure;
    -- Callable by signed-in users (each checks what the caller may do).
    user_fns text[] := ARRAY['uid', 'limits', 'log_ai_usage', 'log_ai_usage_batch', 'get_ai_usage_dashboard', 'get_user_ai_usage',
                             'get_ai_cost_summary', 'list_unknown_models', 'pre_request',
                             'increment_organization_usage', 'get_usage_count', 'get_message_count',
                             'get_reasoning_count', 'get_usage_counts', 'get_organization_usage_summary',
                             'get_usage_details', 'usage_analysis', 'usage_daily_by_type', 'usage_weekly',
                             'usage_month_over_month', 'usage_hourly_pattern', 'usage_message_reasoning_ratio',
                             'track_usage_event', 'track_usage_events', 'check_usage_limit', 'get_usage_summary', 'get_usage_limits',
                             'get_quota_status', 'consume_quota', 'reserve_quota', 'commit_reservation',
                             'release_reservation', 'set_budget', 'delete_budget', 'get_budget_status',
                             'start_report_run', 'update_report_run', 'mark_run_success', 'mark_run_failed',
                             'cancel_report_run', 'record_webhook_attempt', 'get_report_runs', 'get_report_run',
                             'get_monthly_usage', 'check_monthly_usage_limit', 'create_project',
                             'list_projects', 'aggregate_usage_hourly', 'aggregate_usage_daily',
                             'get_dashboard_stats'];
    -- Trusted callers only.
    service_fns text[] := ARRAY['set_model_price', 'add_request_type', 'set_org_member',
                                'remove_org_member', 'run_maintenance', 'set_org_plan', 'set_org_settings',
                                'create_plan', 'set_plan_limit', 'define_limit', 'add_event_type', 'set_limit_source',
                                'usage_compare_organizations', 'get_pending_alerts', 'mark_alert_delivered',
                                'set_retention', 'verify_rollups', 'rollup_lag', 'rebuild_rollups',
                                'backfill_potential_cost', 'reprice_ai_usage', 'rollup_gaps'];
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
           AND p.proname = ANY (user_fns)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO authenticated, service_role', f);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
           AND p.proname = ANY (service_fns)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
    END LOOP;
END
$grants$;

------------------------------------------------------------------------------
-- pg_dump keeps the rows of the extension's tables (not the shipped ones,
-- which the extension script recreates) and the sequence positions.
-- Log partitions are created after installation, so pg_dump dumps them as
-- ordinary tables.
------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.org_members', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.model_prices', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.request_types', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.ai_usage_idempotency', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.event_types', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.limit_definitions', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.limit_settings', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.plans', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.plan_limits', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.usage_events', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.organization_usage', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.quota_reservations', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.quota_usage', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.budgets', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.budget_spend', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.budget_alerts', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.report_runs', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.retention_policies', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.projects', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_daily', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_user_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_user_daily', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_customer_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_customer_daily', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.ai_usage_customer_users', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.rollup_progress', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.model_prices_price_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.ai_usage_log_ingest_seq', '');
