-- The catalog rules behind "Supabase's Security Advisor shows nothing" for a
-- project exposing usage_tracker through PostgREST, checked the way its
-- splinter lints check them, plus the project's own rules (DESIGN.md).
BEGIN;
SELECT plan(19);
SET LOCAL pgrst.db_schemas = 'usage_tracker';
-- Some log partitions, so that their indexes and RLS are checked too.
SELECT usage_tracker.run_maintenance();

CREATE TEMP VIEW our_functions AS
SELECT p.oid, n.nspname, p.proname, p.prosecdef, p.proconfig, p.provolatile, p.proparallel,
       p.oid::regprocedure::text AS signature
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private');

CREATE TEMP VIEW our_tables AS
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relispartition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND c.relkind IN ('r', 'p', 'v', 'm');

-- splinter 0028/0029: no SECURITY DEFINER function in an exposed schema that
-- anon or authenticated can execute.
SELECT is_empty($$
    SELECT signature FROM our_functions
     WHERE prosecdef AND nspname = ANY (string_to_array(current_setting('pgrst.db_schemas'), ','))
$$, 'no SECURITY DEFINER function in the exposed schema');

SELECT ok((SELECT count(*) FROM our_functions WHERE prosecdef AND nspname = 'usage_tracker_private') >= 10,
    'the definer bodies live in usage_tracker_private');

-- splinter 0011 and DESIGN.md: every definer pins search_path.
SELECT is_empty($$
    SELECT signature FROM our_functions
     WHERE prosecdef AND NOT coalesce(proconfig, '{}') && ARRAY['search_path=pg_catalog, pg_temp', 'search_path=""']
$$, 'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');

SELECT is_empty($$
    SELECT signature FROM our_functions
     WHERE has_function_privilege('public', oid, 'EXECUTE') OR has_function_privilege('anon', oid, 'EXECUTE')
$$, 'no function is executable by PUBLIC or anon');

SELECT ok(NOT has_schema_privilege('anon', 'usage_tracker', 'USAGE')
      AND NOT has_schema_privilege('anon', 'usage_tracker_private', 'USAGE'),
    'anon has no usage on our schemas');

-- splinter 0013/0007/0008: RLS on every table, and policies where enabled.
SELECT is_empty($$
    SELECT nspname || '.' || relname FROM our_tables WHERE relkind IN ('r', 'p') AND NOT relrowsecurity
$$, 'every table (and log partition) has RLS enabled');

SELECT is_empty($$
    SELECT t.nspname || '.' || t.relname FROM our_tables t
     WHERE t.nspname = 'usage_tracker' AND t.relkind IN ('r', 'p')
       AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid)
$$, 'every exposed table has at least one policy');

-- splinter 0010/0016: views are security_invoker, no materialized views exposed.
SELECT is_empty($$
    SELECT t.relname FROM our_tables t JOIN pg_class c ON c.oid = t.oid
     WHERE t.nspname = 'usage_tracker' AND (t.relkind = 'm'
        OR (t.relkind = 'v' AND NOT coalesce(c.reloptions, '{}') @> ARRAY['security_invoker=true']))
$$, 'no SECURITY DEFINER views or materialized views in the exposed schema');

-- splinter 0024: no always-true write policy.
SELECT is_empty($$
    SELECT tablename || '.' || policyname FROM pg_policies
     WHERE schemaname IN ('usage_tracker', 'usage_tracker_private') AND cmd IN ('INSERT', 'UPDATE', 'DELETE', 'ALL')
       AND (replace(coalesce(qual, ''), ' ', '') IN ('true', '(true)') OR replace(coalesce(with_check, ''), ' ', '') IN ('true', '(true)')
            OR (cmd = 'INSERT' AND with_check IS NULL))
$$, 'no always-true write policy');

-- splinter 0006: one permissive policy per table, role and action.
SELECT is_empty($$
    SELECT p.schemaname, p.tablename, r.role, p.cmd
      FROM pg_policies p, unnest(p.roles) AS r(role)
     WHERE p.schemaname IN ('usage_tracker', 'usage_tracker_private') AND p.permissive = 'PERMISSIVE'
     GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
$$, 'no multiple permissive policies for one role and action');

-- Citus rejects subqueries in policies; splinter 0030 flags IS NULL disjuncts.
SELECT is_empty($$
    SELECT tablename || '.' || policyname FROM pg_policies
     WHERE schemaname IN ('usage_tracker', 'usage_tracker_private')
       AND (coalesce(qual, '') || coalesce(with_check, '')) ~* '(select|is null)'
$$, 'no policy has a subquery or an IS NULL disjunct');

-- Every column a policy filters on leads an index (on a partitioned
-- table: on every partition).
SELECT is_empty($$
    SELECT DISTINCT coalesce(part.relid, d.refobjid)::regclass::text || '.' || a.attname
      FROM pg_depend d
      JOIN pg_policy p ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
      JOIN pg_class c ON c.oid = d.refobjid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      LEFT JOIN LATERAL (SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf) part ON c.relkind = 'p'
     WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND d.refobjsubid > 0
       AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute ia ON ia.attrelid = i.indrelid AND ia.attnum = i.indkey[0]
                        WHERE i.indrelid = coalesce(part.relid, d.refobjid) AND ia.attname = a.attname)
$$, 'every column a policy compares leads an index');

-- Every tenant table has org_id leading its primary key (Citus-ready); a
-- partitioned table's partitions carry it.
SELECT is_empty($$
    SELECT t.nspname || '.' || t.relname FROM our_tables t
     WHERE t.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
       AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = t.oid AND a.attname = 'org_id'
                          AND (i.indisprimary OR (i.indisunique AND i.indnullsnotdistinct)))
$$, 'tenant tables (and log partitions) have org_id first in their primary key (a NULLS NOT DISTINCT key for rollups with nullable dimensions)');

-- Everything is commented.
SELECT is_empty($$
    SELECT nspname || '.' || relname FROM our_tables
     WHERE NOT relispartition AND obj_description(oid, 'pg_class') IS NULL
$$, 'every table has a comment');
SELECT is_empty($$
    SELECT t.nspname || '.' || t.relname || '.' || a.attname
      FROM our_tables t JOIN pg_attribute a ON a.attrelid = t.oid
     WHERE NOT t.relispartition AND a.attnum > 0 AND NOT a.attisdropped AND col_description(t.oid, a.attnum) IS NULL
$$, 'every column has a comment');
SELECT is_empty($$
    SELECT signature FROM our_functions WHERE nspname = 'usage_tracker' AND obj_description(oid, 'pg_proc') IS NULL
$$, 'every public function has a comment');

-- pg_dump keeps every table's rows and every sequence's position.
SELECT is_empty($$
    SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND c.relkind IN ('r', 'S') AND NOT c.relispartition
       AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'usage_tracker')
$$, 'every table and sequence is registered with pg_extension_config_dump');

-- The API roles exist as on Supabase.
SELECT is((SELECT string_agg(format('%s login=%s bypassrls=%s', rolname, rolcanlogin, rolbypassrls), '; ' ORDER BY rolname)
             FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')),
    'anon login=f bypassrls=f; authenticated login=f bypassrls=f; service_role login=f bypassrls=t',
    'anon, authenticated and service_role exist (NOLOGIN; service_role BYPASSRLS)');

-- Every jsonb argument of the public API has documented limits (size,
-- depth) in usage_tracker.limits(): a new one must be added there, checked
-- up front, and listed here.
CREATE TEMP TABLE jsonb_args (param text PRIMARY KEY, limits_key text);
INSERT INTO jsonb_args VALUES ('p_metadata', 'metadata'), ('metadata', 'metadata'),
    ('p_configuration_snapshot', 'configuration_snapshot'), ('p_limits', 'plan_limits'), ('p_prices', 'price_list'),
    ('p_events', 'event_batch');
SELECT is_empty($$
    SELECT p.proname || '(' || a.name || ')'
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
           unnest(p.proargnames, p.proargtypes::oid[]) AS a(name, type)
     WHERE n.nspname = 'usage_tracker' AND a.type = 'jsonb'::regtype
       AND NOT EXISTS (SELECT 1 FROM jsonb_args j WHERE j.param = a.name
                         AND usage_tracker.limits() ? j.limits_key)
$$, 'every jsonb argument has documented limits in usage_tracker.limits()');

SELECT * FROM finish();
ROLLBACK;
