//! Seed 001's three JSONB reads, each one pass over the caller's rows:
//! whole days from the daily rollup plus the raw rows it does not hold yet.
//!
//! The definer bodies run with `TimeZone = UTC` (set in finalize.sql), so
//! days, weeks and months — and the timestamps in the JSON — are UTC
//! whatever the session's TimeZone. Keys, nesting, rounding and ordering
//! follow seed 001's PL/pgSQL; ties are broken deterministically.

use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{caller, org_read_scope, user_read_scope, Scope};

pub const MAX_DAYS: i32 = 3660;

pub fn check_days(days: Option<i32>) -> Result<i32> {
    let d = days.ok_or(UsageError::NullValue("p_days"))?;
    if !(1..=MAX_DAYS).contains(&d) {
        return Err(UsageError::out_of_range(
            "p_days",
            format!("{d} is not between 1 and {MAX_DAYS}"),
        ));
    }
    Ok(d)
}

fn run_json(sql: &str, scope: &Scope, days: Option<i32>) -> Result<JsonB> {
    let (orgs, user) = scope.args();
    let json: Option<JsonB> = Spi::connect(|c| {
        let t = c.select(sql, Some(1), &[orgs.into(), user.into(), days.into()])?;
        crate::spi_util::first(t)
    })?;
    json.ok_or_else(|| UsageError::Internal("dashboard query returned nothing".into()))
}

/// Which rollup families a read needs.
#[derive(Clone, Copy)]
struct Need {
    /// org totals: summary, request types, months, cost summary
    tot: bool,
    /// per user: by_user, daily unique users, per-user reads
    usr: bool,
    /// per customer: by_customer
    cus: bool,
}

/// The rows a read aggregates, each tagged with its family (`fam`):
/// whole days from the daily rollups, whole hours of the window's first
/// day from the hourly rollups, and raw log rows for the rest — those not
/// folded yet (the tail) and the window's first partial hour (or every
/// hour of the first day the hourly rollups no longer hold). Each rollup
/// branch is already grouped down to what its questions need, so the
/// facts stay small whatever the number of organizations. Rows in scope
/// only because of their user (a member's own rows) cannot come from
/// rollups without a user column: org totals take them from the per-user
/// rollup (`usr_t`), customers from the raw log (`raw_u`).
/// `kind`: 'd' a day (window and calendar months), 'h' inside the window
/// only, 'r' raw (decided by its time).
/// Parameters: $1 orgs, $2 user (the scope), `start` the window start. The
/// bounds are scalar subqueries so that they drive index scans and
/// partition pruning.
fn facts_cte(scope: &Scope, start: &str, need: Need) -> String {
    let full = |a: &str| scope.predicate(a, 1, 2);
    let org = |a: &str| scope.org_part(a, 1);
    let usr = |a: &str| scope.user_part(a, 1, 2);
    let raw_cols = "(l.created_at AT TIME ZONE 'UTC')::date, l.created_at, l.user_id, l.user_email, l.customer_id, \
        l.customer_name, l.request_type, l.status, 1::numeric, l.input_tokens, l.output_tokens, l.total_tokens, \
        l.input_cost_usd, l.output_cost_usd, l.total_cost_usd, (l.latency_ms IS NOT NULL)::integer::numeric, \
        coalesce(l.latency_ms, 0)::numeric, l.created_at";
    // Raw rows are grouped before they become facts: at high ingest rates
    // the unfolded tail holds hundreds of thousands of rows, and the facts
    // are read three times. A group keeps every column a read uses and is
    // split at each time bound a read compares with (window start, this and
    // last month), so its latest time `ts` falls on the same side of each
    // bound as every row in it.
    let grouped = |folded: bool, filter: &str| {
        format!(
            "SELECT 'raw'::text AS fam, g.org_part, {folded} AS folded, 'r'::text AS kind, g.day, g.ts, g.user_id, \
                    g.user_email, g.customer_id, g.customer_name, g.request_type, g.status, g.n, g.in_tok, g.out_tok, \
                    g.tok, g.in_cost, g.out_cost, g.cost, g.lat_n, g.lat_sum, g.ts AS last_at \
               FROM (SELECT {o} AS org_part, (l.created_at AT TIME ZONE 'UTC')::date AS day, max(l.created_at) AS ts, \
                            l.user_id, l.user_email, l.customer_id, l.customer_name, l.request_type, l.status, \
                            count(*)::numeric AS n, sum(l.input_tokens)::numeric AS in_tok, \
                            sum(l.output_tokens)::numeric AS out_tok, sum(l.total_tokens)::numeric AS tok, \
                            sum(l.input_cost_usd) AS in_cost, sum(l.output_cost_usd) AS out_cost, \
                            sum(l.total_cost_usd) AS cost, count(l.latency_ms)::numeric AS lat_n, \
                            coalesce(sum(l.latency_ms), 0)::numeric AS lat_sum \
                       FROM usage_tracker.ai_usage_log l \
                      WHERE {f} AND {filter} \
                      GROUP BY 1, 2, l.user_id, l.user_email, l.customer_id, l.customer_name, l.request_type, l.status, \
                               l.created_at >= (SELECT p.start_ts FROM p), l.created_at >= (SELECT p.cur_ts FROM p), \
                               l.created_at >= (SELECT p.prev_ts FROM p)) g",
            o = org("l"),
            f = full("l")
        )
    };
    let mut parts = vec![grouped(
        false,
        "l.ingest_seq > (SELECT p.f FROM p) AND l.created_at >= (SELECT p.tail_lo FROM p)",
    )];
    parts.push(grouped(
        true,
        "l.ingest_seq <= (SELECT p.f FROM p) AND l.created_at >= (SELECT p.start_ts FROM p) \
         AND l.created_at < (SELECT p.raw_hi FROM p)",
    ));
    // Sums of a rollup's measures; `x` the alias.
    let sums = |x: &str| {
        format!(
            "sum({x}.requests), sum({x}.input_tokens), sum({x}.output_tokens), sum({x}.total_tokens), \
             sum({x}.input_cost_usd), sum({x}.output_cost_usd), sum({x}.total_cost_usd), sum({x}.latency_count), \
             sum({x}.latency_sum), max({x}.last_at)"
        )
    };
    // Daily and hourly branch of one rollup family, grouped by `dims`
    // (columns 7-12 of the facts: user, email, customer, name, type, status).
    struct Branch<'a> {
        fam: &'a str,
        daily: &'a str,
        hourly: &'a str,
        pred: String,
        dims: [&'a str; 6],
        group: &'a str,
        /// first day taken from the daily rollup
        from_day: &'a str,
    }
    let branch = |b: Branch<'_>, parts: &mut Vec<String>| {
        let dims = b.dims.join(", ");
        parts.push(format!(
            "SELECT '{fam}', true, true, 'd', x.day, NULL, {dims}, {sums} FROM usage_tracker.{daily} x \
              WHERE {pred} AND x.day {from_day} GROUP BY x.day, {group}",
            fam = b.fam,
            daily = b.daily,
            pred = b.pred,
            from_day = b.from_day,
            group = b.group,
            sums = sums("x"),
        ));
        parts.push(format!(
            "SELECT '{fam}', true, true, 'h', NULL, NULL, {dims}, {sums} FROM usage_tracker.{hourly} x \
              WHERE {pred} AND x.hour >= (SELECT p.hour_lo FROM p) AND x.hour < (SELECT p.next_ts FROM p) \
              GROUP BY {group}",
            fam = b.fam,
            hourly = b.hourly,
            pred = b.pred,
            group = b.group,
            sums = sums("x"),
        ));
    };
    let null6 = ["NULL", "NULL", "NULL", "NULL", "x.request_type", "x.status"];
    if need.tot {
        branch(
            Branch {
                fam: "tot",
                daily: "ai_usage_daily",
                hourly: "ai_usage_hourly",
                pred: org("x"),
                dims: null6,
                group: "x.request_type, x.status",
                from_day: ">= (SELECT p.d_lo FROM p)",
            },
            &mut parts,
        );
        branch(
            Branch {
                fam: "usr_t",
                daily: "ai_usage_user_daily",
                hourly: "ai_usage_user_hourly",
                pred: usr("x"),
                dims: null6,
                group: "x.request_type, x.status",
                from_day: ">= (SELECT p.d_lo FROM p)",
            },
            &mut parts,
        );
    }
    if need.usr {
        // Per user and day: by_user, unique users per day, a user's usage.
        parts.push(format!(
            "SELECT 'usr', true, true, 'd', x.day, NULL, x.user_id, x.user_email, NULL, NULL, NULL, x.status, {sums} \
               FROM usage_tracker.ai_usage_user_daily x \
              WHERE {pred} AND x.day > (SELECT p.start_day FROM p) GROUP BY x.day, x.user_id, x.user_email, x.status",
            pred = full("x"),
            sums = sums("x"),
        ));
        parts.push(format!(
            "SELECT 'usr', true, true, 'h', (x.hour AT TIME ZONE 'UTC')::date, NULL, x.user_id, x.user_email, NULL, NULL, \
                    NULL, x.status, {sums} \
               FROM usage_tracker.ai_usage_user_hourly x \
              WHERE {pred} AND x.hour >= (SELECT p.hour_lo FROM p) AND x.hour < (SELECT p.next_ts FROM p) \
              GROUP BY 5, x.user_id, x.user_email, x.status",
            pred = full("x"),
            sums = sums("x"),
        ));
    }
    if need.cus {
        let cus_sums = "sum(x.requests), NULL::numeric, NULL::numeric, sum(x.total_tokens), NULL::numeric, NULL::numeric, \
                        sum(x.total_cost_usd), NULL::numeric, NULL::numeric, NULL::timestamptz";
        parts.push(format!(
            "SELECT 'cus', true, true, 'h', NULL, NULL, NULL, NULL, x.customer_id, x.customer_name, NULL, NULL, {cus_sums} \
               FROM usage_tracker.ai_usage_customer_daily x \
              WHERE {o} AND x.day > (SELECT p.start_day FROM p) GROUP BY x.customer_id, x.customer_name",
            o = org("x")
        ));
        parts.push(format!(
            "SELECT 'cus', true, true, 'h', NULL, NULL, NULL, NULL, x.customer_id, x.customer_name, NULL, NULL, {cus_sums} \
               FROM usage_tracker.ai_usage_customer_hourly x \
              WHERE {o} AND x.hour >= (SELECT p.hour_lo FROM p) AND x.hour < (SELECT p.next_ts FROM p) \
              GROUP BY x.customer_id, x.customer_name",
            o = org("x")
        ));
        parts.push(format!(
            "SELECT 'pair', true, true, 'h', NULL, NULL, u.user_id, NULL, u.customer_id, u.customer_name, NULL, NULL, \
                    0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
               FROM usage_tracker.ai_usage_customer_users u \
              WHERE {o} AND u.last_at >= (SELECT p.start_ts FROM p)",
            o = org("u")
        ));
        parts.push(format!(
            "SELECT 'raw_u', false, true, 'r', {raw_cols} FROM usage_tracker.ai_usage_log l \
              WHERE {u} AND l.ingest_seq <= (SELECT p.f FROM p) AND l.created_at >= (SELECT p.raw_hi FROM p)",
            u = usr("l")
        ));
    }
    format!(
        r#"
p AS (
    SELECT s.*, LEAST(s.hour_lo, s.next_ts) AS raw_hi, LEAST(s.start_ts, s.prev_ts) AS tail_lo,
           LEAST(s.start_day + 1, s.prev_day) AS d_lo
      FROM (SELECT t.*, GREATEST(t.ceil_h, t.kept) AS hour_lo,
                   (t.start_day + 1)::timestamp AT TIME ZONE 'UTC' AS next_ts,
                   t.prev_day::timestamp AT TIME ZONE 'UTC' AS prev_ts,
                   t.cur_day::timestamp AT TIME ZONE 'UTC' AS cur_ts
              FROM (SELECT x.start_ts, (x.start_ts AT TIME ZONE 'UTC')::date AS start_day,
                           CASE WHEN date_trunc('hour', x.start_ts, 'UTC') = x.start_ts THEN x.start_ts
                                ELSE date_trunc('hour', x.start_ts, 'UTC') + interval '1 hour' END AS ceil_h,
                           date_trunc('month', CURRENT_DATE)::date AS cur_day,
                           date_trunc('month', CURRENT_DATE - INTERVAL '1 month')::date AS prev_day,
                           coalesce(r.folded_through, 0) AS f, coalesce(r.hourly_kept_from, '-infinity') AS kept
                      FROM (SELECT {start} AS start_ts) x
                      LEFT JOIN usage_tracker_private.rollup_progress r ON r.rollup = 'ai_usage') t) s
), facts AS (
    {parts}
), flagged AS (
    SELECT f.*,
           CASE f.kind WHEN 'd' THEN f.day > p.start_day WHEN 'h' THEN true ELSE f.ts >= p.start_ts END AS in_win,
           CASE f.kind WHEN 'd' THEN f.day >= p.cur_day WHEN 'h' THEN false
                ELSE NOT f.folded AND f.ts >= p.cur_ts END AS in_cur,
           CASE f.kind WHEN 'd' THEN f.day >= p.prev_day AND f.day < p.cur_day WHEN 'h' THEN false
                ELSE NOT f.folded AND f.ts >= p.prev_ts AND f.ts < p.cur_ts END AS in_prev
      FROM facts f, p
)"#,
        parts = parts.join("\n    UNION ALL\n    ")
    )
}

/// Facts for org totals, per user, per customer.
const TOT: &str = "fam IN ('tot', 'usr_t', 'raw')";
const USR: &str = "fam IN ('usr', 'raw')";
const CUS: &str = "fam IN ('cus', 'pair', 'raw', 'raw_u') AND customer_id IS NOT NULL";

fn dashboard_sql(scope: &Scope) -> String {
    let facts = facts_cte(
        scope,
        "now() - make_interval(days => $3)",
        Need {
            tot: true,
            usr: true,
            cus: true,
        },
    );
    format!(
        r#"
WITH {facts}, gt AS (
    SELECT GROUPING(request_type) AS gs, request_type,
           coalesce(sum(n) FILTER (WHERE in_win), 0) AS n,
           coalesce(sum(n) FILTER (WHERE in_win AND status = 'success'), 0) AS n_ok,
           coalesce(sum(n) FILTER (WHERE in_win AND status = 'error'), 0) AS n_err,
           sum(in_tok) FILTER (WHERE in_win) AS in_tok,
           sum(out_tok) FILTER (WHERE in_win) AS out_tok,
           sum(tok) FILTER (WHERE in_win) AS tok,
           sum(in_cost) FILTER (WHERE in_win) AS in_cost,
           sum(out_cost) FILTER (WHERE in_win) AS out_cost,
           sum(cost) FILTER (WHERE in_win) AS cost,
           sum(tok) FILTER (WHERE in_win AND status = 'success')
             / NULLIF(sum(n) FILTER (WHERE in_win AND status = 'success'), 0) AS avg_tok_ok,
           sum(cost) FILTER (WHERE in_win AND status = 'success')
             / NULLIF(sum(n) FILTER (WHERE in_win AND status = 'success'), 0) AS avg_cost_ok,
           sum(lat_sum) FILTER (WHERE in_win AND status = 'success')::numeric
             / NULLIF(sum(lat_n) FILTER (WHERE in_win AND status = 'success'), 0) AS avg_lat_ok,
           sum(lat_sum) FILTER (WHERE in_win)::numeric / NULLIF(sum(lat_n) FILTER (WHERE in_win), 0) AS avg_lat,
           coalesce(sum(n) FILTER (WHERE in_cur), 0) AS cur_n,
           sum(tok) FILTER (WHERE in_cur) AS cur_tok,
           sum(cost) FILTER (WHERE in_cur) AS cur_cost,
           coalesce(sum(n) FILTER (WHERE in_prev), 0) AS prev_n,
           sum(tok) FILTER (WHERE in_prev) AS prev_tok,
           sum(cost) FILTER (WHERE in_prev) AS prev_cost
      FROM flagged WHERE {TOT}
     GROUP BY GROUPING SETS ((), (request_type))
), gu AS (
    SELECT GROUPING(user_id, user_email, day) AS gs, user_id, user_email, day,
           sum(n) AS n, sum(in_tok) AS in_tok, sum(out_tok) AS out_tok, sum(tok) AS tok, sum(cost) AS cost,
           sum(cost) / NULLIF(sum(n), 0) AS avg_cost, max(last_at) AS last_at, count(DISTINCT user_id) AS users
      FROM flagged WHERE {USR} AND in_win
     GROUP BY GROUPING SETS ((user_id, user_email), (day))
), gc AS (
    SELECT customer_id, customer_name, sum(n) AS n, sum(tok) AS tok, sum(cost) AS cost,
           count(DISTINCT user_id) AS users
      FROM flagged WHERE {CUS} AND in_win
     GROUP BY customer_id, customer_name
)
SELECT jsonb_build_object(
    'summary', jsonb_build_object(
        'total_requests', COALESCE(t.n, 0),
        'successful_requests', COALESCE(t.n_ok, 0),
        'failed_requests', COALESCE(t.n_err, 0),
        'total_input_tokens', COALESCE(t.in_tok, 0),
        'total_output_tokens', COALESCE(t.out_tok, 0),
        'total_tokens', COALESCE(t.tok, 0),
        'total_cost_usd', round(COALESCE(t.cost, 0), 2),
        'avg_tokens_per_request', COALESCE(t.avg_tok_ok, 0)::bigint,
        'avg_cost_per_request', round(COALESCE(t.avg_cost_ok, 0), 4),
        'avg_latency_ms', COALESCE(t.avg_lat_ok, 0)::bigint),
    'costs', jsonb_build_object(
        'input_cost_usd', round(COALESCE(t.in_cost, 0), 2),
        'output_cost_usd', round(COALESCE(t.out_cost, 0), 2),
        'total_cost_usd', round(COALESCE(t.cost, 0), 2),
        'cost_per_1k_tokens', CASE WHEN COALESCE(t.tok, 0) > 0
                                   THEN round(COALESCE(t.cost, 0) / t.tok * 1000, 4) ELSE 0 END),
    'by_user', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'user_id', u.user_id,
                   'user_email', COALESCE(u.user_email, 'Unknown'),
                   'request_count', u.n,
                   'input_tokens', u.in_tok,
                   'output_tokens', u.out_tok,
                   'total_tokens', u.tok,
                   'total_cost', round(u.cost, 4),
                   'avg_cost_per_request', round(u.avg_cost, 6),
                   'last_request', u.last_at)
               ORDER BY round(u.cost, 4) DESC, u.n DESC, u.user_id, u.user_email)
          FROM (SELECT * FROM gu WHERE gu.gs = 1 AND gu.n > 0
                 ORDER BY round(gu.cost, 4) DESC, gu.n DESC, gu.user_id, gu.user_email LIMIT 25) u),
        '[]'::jsonb),
    'by_customer', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'customer_id', c.customer_id,
                   'customer_name', COALESCE(c.customer_name, 'Unknown'),
                   'request_count', c.n,
                   'total_tokens', c.tok,
                   'total_cost', round(c.cost, 4),
                   'unique_users', c.users)
               ORDER BY round(c.cost, 4) DESC, c.n DESC, c.customer_id, c.customer_name)
          FROM (SELECT * FROM gc WHERE gc.n > 0
                 ORDER BY round(gc.cost, 4) DESC, gc.n DESC, gc.customer_id, gc.customer_name LIMIT 25) c),
        '[]'::jsonb),
    'daily_trend', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'date', d.day,
                   'requests', d.n,
                   'tokens', d.tok,
                   'cost', round(d.cost, 4),
                   'unique_users', d.users)
               ORDER BY d.day)
          FROM gu d WHERE d.gs = 6 AND d.n > 0),
        '[]'::jsonb),
    'by_request_type', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'request_type', r.request_type,
                   'count', r.n,
                   'tokens', r.tok,
                   'cost', round(r.cost, 4),
                   'avg_latency', r.avg_lat::bigint)
               ORDER BY r.n DESC, r.request_type)
          FROM gt r WHERE r.gs = 0 AND r.n > 0),
        '[]'::jsonb),
    'current_month', jsonb_build_object(
        'requests', COALESCE(t.cur_n, 0),
        'tokens', COALESCE(t.cur_tok, 0),
        'cost_usd', round(COALESCE(t.cur_cost, 0), 2)),
    'previous_month', jsonb_build_object(
        'requests', COALESCE(t.prev_n, 0),
        'tokens', COALESCE(t.prev_tok, 0),
        'cost_usd', round(COALESCE(t.prev_cost, 0), 2)))
  FROM (SELECT 1) one LEFT JOIN gt t ON t.gs = 1
"#
    )
}

fn user_usage_sql(scope: &Scope) -> String {
    let facts = facts_cte(
        scope,
        "now() - make_interval(days => $3)",
        Need {
            tot: false,
            usr: true,
            cus: false,
        },
    );
    let l = scope.predicate("l", 1, 2);
    format!(
        r#"
WITH {facts}, g AS (
    SELECT GROUPING(day) AS gs, day,
           coalesce(sum(n), 0) AS n, sum(tok) AS tok, sum(cost) AS cost,
           sum(tok) FILTER (WHERE status = 'success') / NULLIF(sum(n) FILTER (WHERE status = 'success'), 0) AS avg_tok_ok
      FROM flagged WHERE {USR} AND in_win
     GROUP BY GROUPING SETS ((), (day))
)
SELECT jsonb_build_object(
    'summary', (
        SELECT jsonb_build_object(
                   'total_requests', COALESCE(t.n, 0),
                   'total_tokens', COALESCE(t.tok, 0),
                   'total_cost_usd', round(COALESCE(t.cost, 0), 4),
                   'avg_tokens_per_request', COALESCE(t.avg_tok_ok, 0)::bigint)
          FROM (SELECT 1) one LEFT JOIN g t ON t.gs = 1),
    'recent_requests', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', r.id,
                   'customer_name', r.customer_name,
                   'request_type', r.request_type,
                   'input_tokens', r.input_tokens,
                   'output_tokens', r.output_tokens,
                   'total_tokens', r.total_tokens,
                   'cost', round(r.total_cost_usd, 6),
                   'latency_ms', r.latency_ms,
                   'status', r.status,
                   'created_at', r.created_at)
               ORDER BY r.created_at DESC, r.id DESC)
          FROM (SELECT l.* FROM usage_tracker.ai_usage_log l
                 WHERE {l} AND l.created_at >= now() - make_interval(days => $3)
                 ORDER BY l.created_at DESC, l.id DESC LIMIT 50) r),
        '[]'::jsonb),
    'daily_usage', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'date', d.day,
                   'requests', d.n,
                   'tokens', d.tok,
                   'cost', round(d.cost, 4))
               ORDER BY d.day)
          FROM g d WHERE d.gs = 0),
        '[]'::jsonb))
"#
    )
}

fn cost_summary_sql(scope: &Scope) -> String {
    // Calendar days only, so no partial day: a window start far in the past.
    let facts = facts_cte(
        scope,
        "'-infinity'::timestamptz",
        Need {
            tot: true,
            usr: false,
            cus: false,
        },
    );
    format!(
        r#"
WITH {facts}, x AS (
    SELECT f.n, f.cost,
           CASE WHEN f.ts IS NULL THEN f.day::timestamp AT TIME ZONE 'UTC' ELSE f.ts END AS at,
           f.ts IS NULL AS whole_day
      FROM flagged f WHERE {TOT} AND (f.kind = 'd' OR NOT f.folded)
)
SELECT jsonb_build_object(
    'today', round(COALESCE(sum(cost) FILTER (WHERE at >= CURRENT_DATE), 0), 2),
    'yesterday', round(COALESCE(sum(cost) FILTER (
        WHERE at >= CURRENT_DATE - INTERVAL '1 day' AND at < CURRENT_DATE), 0), 2),
    'this_week', round(COALESCE(sum(cost) FILTER (WHERE at >= date_trunc('week', CURRENT_DATE)), 0), 2),
    'this_month', round(COALESCE(sum(cost) FILTER (WHERE at >= date_trunc('month', CURRENT_DATE)), 0), 2),
    'last_month', round(COALESCE(sum(cost) FILTER (
        WHERE at >= date_trunc('month', CURRENT_DATE - INTERVAL '1 month')
          AND at < date_trunc('month', CURRENT_DATE)), 0), 2),
    'all_time', round(COALESCE(sum(cost), 0), 2),
    'requests_today', COALESCE(sum(n) FILTER (WHERE at >= CURRENT_DATE), 0),
    'requests_this_month', COALESCE(sum(n) FILTER (WHERE at >= date_trunc('month', CURRENT_DATE)), 0))
  FROM x
"#
    )
}

/// Seed 001's admin dashboard over the last `p_days` days, scoped to what
/// the caller may see (see `org_read_scope`).
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_ai_usage_dashboard"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_ai_usage_dashboard(p_days: Option<i32>, p_org_id: Option<Uuid>) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            let who = caller()?;
            let scope = org_read_scope(who, p_org_id)?;
            let days = check_days(p_days)?;
            run_json(&dashboard_sql(&scope), &scope, Some(days))
        })()
    })
}

/// Seed 001's per-user usage: yourself, or a member of an organization you
/// administer (then only their usage in those organizations).
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_user_ai_usage"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_user_ai_usage(p_user_id: Option<Uuid>, p_days: Option<i32>) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            let who = caller()?;
            let target = p_user_id.ok_or(UsageError::NullValue("p_user_id"))?;
            let scope = user_read_scope(who, target)?;
            let days = check_days(p_days)?;
            run_json(&user_usage_sql(&scope), &scope, Some(days))
        })()
    })
}

/// Seed 001's cost totals (today, yesterday, this week, this and last month,
/// all time), scoped like the dashboard.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_ai_cost_summary"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_ai_cost_summary(p_org_id: Option<Uuid>) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            let scope = org_read_scope(caller()?, p_org_id)?;
            run_json(&cost_summary_sql(&scope), &scope, None)
        })()
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn days_bounds() {
        assert!(check_days(None).is_err());
        assert!(check_days(Some(0)).is_err());
        assert!(check_days(Some(3661)).is_err());
        assert_eq!(check_days(Some(1)).unwrap(), 1);
        assert_eq!(check_days(Some(3660)).unwrap(), 3660);
    }

    #[pg_test]
    fn empty_dashboard_has_the_seed_shape() {
        let j: Option<JsonB> =
            Spi::get_one("SELECT usage_tracker.get_ai_usage_dashboard(30)").unwrap();
        let j = j.unwrap().0;
        for key in [
            "summary",
            "costs",
            "by_user",
            "by_customer",
            "daily_trend",
            "by_request_type",
            "current_month",
            "previous_month",
        ] {
            assert!(j.get(key).is_some(), "{key}");
        }
        assert_eq!(j["by_user"], serde_json::json!([]));
        assert_eq!(j["summary"]["total_requests"].to_string(), "0");
    }
}
