-- README's reference tables, made from the shipped data of a fresh install
-- (tests/docs/run.sh checks README.md holds each one exactly; print them
-- with: tests/docs/run.sh CLUSTER PORT --print-reference).
\pset format unaligned
\pset tuples_only on
\pset fieldsep ''

SELECT '@@ request types';
SELECT '| request type | description |';
SELECT '|---|---|';
SELECT format('| `%s` | %s |', r.request_type, r.description)
  FROM usage_tracker.request_types r WHERE r.shipped ORDER BY r.request_type;

SELECT '@@ event types';
SELECT '| event type | unit | description |';
SELECT '|---|---|---|';
SELECT format('| `%s` | %s | %s |', t.event_type, t.unit, t.description)
  FROM usage_tracker.event_types t WHERE t.shipped ORDER BY t.event_type;

SELECT '@@ plans and limits';
SELECT '| limit | trial | pilot | subscription | period | counts | source |';
SELECT '|---|---:|---:|---:|---|---|---|';
SELECT format('| `%s` | %s | %s | %s | %s | %s | %s |', d.limit_key,
              v.trial, v.pilot, v.subscription,
              CASE WHEN d.per_user THEN 'billing period, per user' WHEN d.period = 'total' THEN 'total' ELSE 'billing period' END,
              array_to_string(d.event_types, ' + '), d.source)
  FROM usage_tracker.limit_definitions d
  CROSS JOIN LATERAL (
      SELECT max(CASE WHEN l.plan = 'trial' THEN f.v END) AS trial, max(CASE WHEN l.plan = 'pilot' THEN f.v END) AS pilot,
             max(CASE WHEN l.plan = 'subscription' THEN f.v END) AS subscription
        FROM usage_tracker.plan_limits l
        CROSS JOIN LATERAL (SELECT CASE WHEN l.max_quantity < 0 THEN 'unlimited'
                                        ELSE to_char(l.max_quantity, 'FM999,999,999,999,999,999') END AS v) f
       WHERE l.limit_key = d.limit_key AND l.shipped) v
 WHERE d.shipped ORDER BY d.limit_key;

SELECT '@@ retention';
SELECT '| relation | kept |';
SELECT '|---|---|';
SELECT format('| `%s` | %s |', r.relation, coalesce(replace(r.keep::text, 'mon', 'month'), 'forever'))
  FROM usage_tracker.retention_policies r WHERE r.shipped ORDER BY r.relation;

SELECT '@@ limits';
SELECT '| limit (`usage_tracker.limits()`) | value |';
SELECT '|---|---|';
SELECT format('| `%s` | %s |', k,
              CASE jsonb_typeof(v)
                   WHEN 'object' THEN format('%s bytes (as jsonb), depth %s',
                                             to_char((v ->> 'max_bytes')::bigint, 'FM999,999,999'), v ->> 'max_depth')
                   ELSE to_char((v #>> '{}')::numeric, 'FM999,999,999,999,999,999') END)
  FROM jsonb_each(usage_tracker.limits()) AS e(k, v) ORDER BY k;
SELECT '@@ end';
