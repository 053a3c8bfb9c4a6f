-- Everything that makes up the installed extension, one sorted line per
-- item, to compare a fresh install with an upgraded one.
WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('usage_tracker', 'usage_tracker_private')),
lines AS (
    SELECT format('function %s.%s(%s) returns %s lang=%s secdef=%s vol=%s strict=%s parallel=%s config=%s src=%s comment=%s',
                  n.nspname, p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname,
                  p.prosecdef, p.provolatile, p.proisstrict, p.proparallel, p.proconfig, md5(p.prosrc),
                  md5(coalesce(obj_description(p.oid, 'pg_proc'), ''))) AS line
      FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
    UNION ALL
    SELECT format('relation %s.%s kind=%s rls=%s options=%s comment=%s', n.nspname, c.relname, c.relkind, c.relrowsecurity,
                  c.reloptions, md5(coalesce(obj_description(c.oid, 'pg_class'), '')))
      FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'S', 'm') AND NOT c.relispartition
    UNION ALL
    SELECT format('column %s.%s.%s %s notnull=%s default=%s comment=%s', n.nspname, c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
                  md5(coalesce(col_description(c.oid, a.attnum), '')))
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns n ON n.oid = c.relnamespace WHERE NOT c.relispartition
    UNION ALL
    SELECT format('constraint %s.%s %s', c.relname, con.conname, pg_get_constraintdef(con.oid))
      FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN ns n ON n.oid = c.relnamespace
     WHERE NOT c.relispartition
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('view %s.%s %s', n.nspname, c.relname, md5(pg_get_viewdef(c.oid)))
      FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind = 'v'
    UNION ALL
    SELECT format('dumped %s %s', c.oid::regclass, x.cond)
      FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond) JOIN pg_class c ON c.oid = x.cfg
     WHERE e.extname = 'usage_tracker'
    UNION ALL
    SELECT format('member %s', pg_describe_object(d.classid, d.objid, 0))
      FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'usage_tracker' AND d.deptype = 'e'
)
SELECT line FROM lines ORDER BY line COLLATE "C";
