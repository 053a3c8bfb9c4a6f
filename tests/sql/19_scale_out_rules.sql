-- The schema rules that let usage_tracker be distributed by org_id on Citus
-- (docs/SCALING.md): every unique key of a tenant table includes org_id, no
-- foreign key between tenant tables leaves it out, and every public
-- function either takes the organization (or something that names one) as
-- an argument or is not tenant-scoped at all.
BEGIN;
SELECT plan(6);
SELECT usage_tracker.run_maintenance();

CREATE TEMP VIEW tenant_tables AS
SELECT c.oid, c.oid::regclass::text AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped);

SELECT ok((SELECT count(*) FROM tenant_tables) >= 20, 'tenant tables found');

SELECT is_empty($$
    SELECT t.name, i.indexrelid::regclass::text
      FROM tenant_tables t JOIN pg_index i ON i.indrelid = t.oid
     WHERE i.indisunique
       AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k
                        WHERE a.attname = 'org_id')
$$, 'every primary key and unique index of a tenant table includes org_id');

SELECT is_empty($$
    SELECT con.conname
      FROM pg_constraint con JOIN tenant_tables a ON a.oid = con.conrelid JOIN tenant_tables b ON b.oid = con.confrelid
     WHERE con.contype = 'f'
       AND NOT EXISTS (SELECT 1 FROM unnest(con.conkey) k JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k
                        WHERE att.attname = 'org_id')
$$, 'no foreign key between tenant tables leaves out org_id');

-- How each public function finds its organization. A new function must be
-- added here, which makes its author decide.
CREATE TEMP TABLE fn_class (name text PRIMARY KEY, class text NOT NULL);
INSERT INTO fn_class VALUES
    -- org: takes the organization as an argument
    ('check_usage_limit', 'org'), ('commit_reservation', 'org'), ('consume_quota', 'org'), ('create_project', 'org'),
    ('delete_budget', 'org'), ('get_budget_status', 'org'), ('get_message_count', 'org'),
    ('get_organization_usage_summary', 'org'), ('get_quota_status', 'org'), ('get_reasoning_count', 'org'),
    ('get_usage_count', 'org'), ('get_usage_counts', 'org'), ('get_usage_details', 'org'), ('get_usage_limits', 'org'),
    ('get_usage_summary', 'org'), ('increment_organization_usage', 'org'), ('list_projects', 'org'),
    ('mark_alert_delivered', 'org'), ('release_reservation', 'org'), ('remove_org_member', 'org'),
    ('reserve_quota', 'org'), ('set_budget', 'org'), ('set_org_member', 'org'), ('set_org_plan', 'org'),
    ('set_org_settings', 'org'), ('track_usage_event', 'org'), ('usage_daily_by_type', 'org'),
    ('usage_hourly_pattern', 'org'), ('usage_message_reasoning_ratio', 'org'), ('usage_month_over_month', 'org'),
    ('usage_weekly', 'org'),
    -- org or user: the organization, defaulting to the user's personal one
    ('log_ai_usage', 'org_or_user'), ('start_report_run', 'org_or_user'), ('get_monthly_usage', 'org_or_user'),
    ('check_monthly_usage_limit', 'org_or_user'),
    -- user: a user's own rows (across their organizations)
    ('get_user_ai_usage', 'user'), ('get_report_runs', 'user'),
    -- project / run: the row named by the argument carries org_id
    ('aggregate_usage_daily', 'project'), ('aggregate_usage_hourly', 'project'), ('get_dashboard_stats', 'project'),
    ('cancel_report_run', 'run'), ('get_report_run', 'run'), ('mark_run_failed', 'run'), ('mark_run_success', 'run'),
    ('record_webhook_attempt', 'run'), ('update_report_run', 'run'),
    -- optional org: one organization, or everything the caller may see
    ('get_ai_usage_dashboard', 'optional_org'), ('get_ai_cost_summary', 'optional_org'),
    ('list_unknown_models', 'optional_org'),
    -- events: each element of p_events names its organization (a batch may
    -- span several; on Citus it runs on the coordinator, rows routed by org_id)
    ('log_ai_usage_batch', 'events'), ('track_usage_events', 'events'),
    -- not tenant-scoped: catalogs, operations across all tenants, identity
    ('add_event_type', 'global'), ('add_request_type', 'global'), ('create_plan', 'global'), ('define_limit', 'global'),
    ('set_model_price', 'global'), ('set_plan_limit', 'global'), ('set_retention', 'global'),
    ('run_maintenance', 'global'), ('verify_rollups', 'global'), ('rollup_lag', 'global'), ('rebuild_rollups', 'global'),
    ('rollup_gaps', 'global'), ('backfill_potential_cost', 'global'), ('reprice_ai_usage', 'global'),
    ('get_pending_alerts', 'global'), ('usage_compare_organizations', 'global'), ('uid', 'global'),
    ('pre_request', 'global'), ('limits', 'global'), ('set_limit_source', 'global');

SELECT is_empty($$
    SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'usage_tracker'::regnamespace
    EXCEPT SELECT name FROM fn_class
$$, 'every public function says how it finds its organization');

SELECT is_empty($$
    SELECT f.name, f.class FROM fn_class f
     WHERE NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'usage_tracker'::regnamespace AND p.proname = f.name)
$$, 'and no classified function is gone');

SELECT is_empty($$
    SELECT p.proname, f.class FROM pg_proc p JOIN fn_class f ON f.name = p.proname
     WHERE p.pronamespace = 'usage_tracker'::regnamespace AND f.class <> 'global'
       AND NOT coalesce(p.proargnames, '{}') && CASE f.class
             WHEN 'org' THEN ARRAY['p_org_id', 'org_id']
             WHEN 'org_or_user' THEN ARRAY['p_org_id']
             WHEN 'optional_org' THEN ARRAY['p_org_id']
             WHEN 'user' THEN ARRAY['p_user_id']
             WHEN 'project' THEN ARRAY['p_project_id']
             WHEN 'run' THEN ARRAY['p_run_id']
             WHEN 'events' THEN ARRAY['p_events'] END
        OR (f.class = 'org_or_user' AND NOT p.proargnames && ARRAY['p_user_id'])
$$, 'each function takes the argument its class says (the distribution argument on Citus)');

SELECT * FROM finish();
ROLLBACK;
