-- Every privilege on usage_tracker's objects for PUBLIC and the API roles,
-- one line each, sorted: functions (EXECUTE), relations (table privileges,
-- RLS, policies), sequences and schemas. tests/privileges/run.sh compares
-- it with expected.txt; a change shows up as a diff to review.
WITH roles(role) AS (VALUES ('PUBLIC'), ('anon'), ('authenticated'), ('service_role')),
objs AS (
    SELECT n.nspname, c.relname, c.oid, c.relkind, c.relacl, c.relowner, c.relrowsecurity
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private') AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND NOT c.relispartition
),
lines AS (
    SELECT format('function %s.%s(%s) %s: %s', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), r.role,
                  CASE WHEN EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                     WHERE a.privilege_type = 'EXECUTE'
                                       AND a.grantee = CASE r.role WHEN 'PUBLIC' THEN 0 ELSE r.role::regrole::oid END)
                       THEN 'EXECUTE' ELSE '-' END) AS line
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, roles r
     WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
    UNION ALL
    SELECT format('%s %s.%s %s: %s', CASE o.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END,
                  o.nspname, o.relname, r.role,
                  coalesce((SELECT string_agg(a.privilege_type, ',' ORDER BY a.privilege_type)
                              FROM aclexplode(coalesce(o.relacl, acldefault((CASE o.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", o.relowner))) a
                             WHERE a.grantee = CASE r.role WHEN 'PUBLIC' THEN 0 ELSE r.role::regrole::oid END), '-'))
      FROM objs o, roles r
    UNION ALL
    SELECT format('rls %s.%s: %s', o.nspname, o.relname, CASE WHEN o.relrowsecurity THEN 'enabled' ELSE 'disabled' END)
      FROM objs o WHERE o.relkind IN ('r', 'p')
    UNION ALL
    SELECT format('policy %s.%s %s %s to %s using %s check %s', p.schemaname, p.tablename, p.policyname, p.cmd,
                  array_to_string(p.roles, ','), coalesce(p.qual, '-'), coalesce(p.with_check, '-'))
      FROM pg_policies p WHERE p.schemaname IN ('usage_tracker', 'usage_tracker_private')
    UNION ALL
    SELECT format('schema %s %s: %s', n.nspname, r.role,
                  coalesce((SELECT string_agg(a.privilege_type, ',' ORDER BY a.privilege_type)
                              FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                             WHERE a.grantee = CASE r.role WHEN 'PUBLIC' THEN 0 ELSE r.role::regrole::oid END), '-'))
      FROM pg_namespace n, roles r WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
    UNION
    -- Log partitions are created at run time (by the extension's owner, so
    -- its default privileges would apply): none may grant anything.
    SELECT format('partitions of usage_tracker.ai_usage_log %s: %s', r.role,
                  coalesce((SELECT string_agg(a.privilege_type, ',' ORDER BY a.privilege_type)
                              FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                             WHERE a.grantee = CASE r.role WHEN 'PUBLIC' THEN 0 ELSE r.role::regrole::oid END), '-'))
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, roles r
     WHERE i.inhparent = 'usage_tracker.ai_usage_log'::regclass
)
SELECT line FROM lines ORDER BY line COLLATE "C";
