//! Seed 003: projects, cache savings per hour and day, the project
//! dashboard, backfill of potential costs and repricing.
//!
//! Stats are read like every other read: rollup rows (`ai_usage_hourly`,
//! `ai_usage_daily`, which carry project, cached, model and provider) plus
//! the raw rows not folded yet, so they are exact without any aggregation
//! call. `aggregate_usage_hourly` / `aggregate_usage_daily` keep seed 003's
//! callers working: they bring the rollups up to date and return the bucket.

use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::authorize_admin;
use crate::identity::{caller, require_trusted};
use crate::jsonb::Jsonb;
use crate::projects::org_of as project_org;
use crate::spi_util::read_one;

/// Seed 003's bucket fields for one project, per UTC hour or day, between
/// $3 and $4: rollup rows, raw rows not folded yet, and — hourly — raw rows
/// of hours the hourly rollup no longer holds. One JSON array, oldest first.
const STATS_SQL: &str = "\
WITH p AS (SELECT coalesce(max(r.folded_through), 0) AS f, coalesce(max(r.hourly_kept_from), '-infinity') AS k
             FROM usage_tracker_private.rollup_progress r WHERE r.rollup = 'ai_usage'),
facts AS (
    SELECT (a.day::timestamp AT TIME ZONE 'UTC') AS b, a.cached, a.provider, a.model_used, a.requests AS n,
           a.input_tokens AS in_tok, a.output_tokens AS out_tok, a.total_tokens AS tok, a.total_cost_usd AS cost,
           a.potential_cost_usd AS potential, a.cache_write_extra_usd AS cw_extra, a.latency_count AS lat_n,
           a.latency_sum AS lat_sum
      FROM usage_tracker.ai_usage_daily a
     WHERE $5 = 'day' AND a.org_id = $1 AND a.project_id = $2
       AND a.day >= ($3 AT TIME ZONE 'UTC')::date AND a.day < ($4 AT TIME ZONE 'UTC')::date
    UNION ALL
    SELECT a.hour, a.cached, a.provider, a.model_used, a.requests, a.input_tokens, a.output_tokens, a.total_tokens,
           a.total_cost_usd, a.potential_cost_usd, a.cache_write_extra_usd, a.latency_count, a.latency_sum
      FROM usage_tracker.ai_usage_hourly a
     WHERE $5 = 'hour' AND a.org_id = $1 AND a.project_id = $2
       AND a.hour >= GREATEST($3, (SELECT p.k FROM p)) AND a.hour < $4
    UNION ALL
    SELECT pg_catalog.date_trunc($5, l.created_at, 'UTC'), l.cached, l.provider, l.model_used, 1, l.input_tokens,
           l.output_tokens, l.total_tokens, l.total_cost_usd, l.potential_cost_usd,
           CASE WHEN l.cached THEN 0
                ELSE l.cache_write_cost_usd - l.cache_write_tokens * coalesce(mp.input_usd_per_mtok, 0) * 0.000001 END,
           (l.latency_ms IS NOT NULL)::integer::bigint, coalesce(l.latency_ms, 0)::bigint
      FROM usage_tracker.ai_usage_log l LEFT JOIN usage_tracker.model_prices mp ON mp.price_id = l.price_id
     WHERE l.org_id = $1 AND l.project_id = $2 AND l.created_at >= $3 AND l.created_at < $4
       AND (l.ingest_seq > (SELECT p.f FROM p)
            OR ($5 = 'hour' AND l.created_at < (SELECT p.k FROM p)))
), g AS (
    SELECT f.b, f.cached, f.provider, f.model_used, sum(f.n) AS n, sum(f.in_tok) AS in_tok, sum(f.out_tok) AS out_tok,
           sum(f.tok) AS tok, sum(f.cost) AS cost, sum(f.potential) AS potential, sum(f.cw_extra) AS cw_extra,
           sum(f.lat_n) AS lat_n, sum(f.lat_sum) AS lat_sum
      FROM facts f GROUP BY 1, 2, 3, 4
), t AS (
    SELECT g.b, sum(g.n) AS n, coalesce(sum(g.n) FILTER (WHERE g.cached), 0) AS n_cached, sum(g.in_tok) AS in_tok,
           sum(g.out_tok) AS out_tok, sum(g.tok) AS tok, sum(g.cost) AS cost, sum(g.potential) AS potential,
           sum(g.cw_extra) AS cw_extra, sum(g.lat_n) AS lat_n, sum(g.lat_sum) AS lat_sum
      FROM g GROUP BY g.b HAVING sum(g.n) > 0
)
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           CASE WHEN $5 = 'hour' THEN 'hour_start' ELSE 'date' END,
           CASE WHEN $5 = 'hour' THEN pg_catalog.to_jsonb(t.b) ELSE pg_catalog.to_jsonb((t.b AT TIME ZONE 'UTC')::date) END,
           'project_id', $2,
           'total_requests', t.n,
           'cached_requests', t.n_cached,
           'cache_hit_rate', round(100.0 * t.n_cached / t.n, 2),
           'total_tokens_input', t.in_tok,
           'total_tokens_output', t.out_tok,
           'total_tokens', t.tok,
           'total_cost_usd', round(t.cost, 9),
           'total_potential_cost_usd', round(t.potential, 9),
           'total_savings_usd', round(t.potential - t.cost, 9),
           'cache_write_extra_usd', round(t.cw_extra, 9),
           'net_savings_usd', round(t.potential - t.cost - t.cw_extra, 9),
           'avg_latency_ms', round(t.lat_sum::numeric / NULLIF(t.lat_n, 0), 2),
           'requests_by_provider', (SELECT pg_catalog.jsonb_object_agg(x.k, x.n) FROM (
                SELECT coalesce(g.provider, 'unknown') AS k, sum(g.n) AS n FROM g WHERE g.b = t.b GROUP BY 1) x),
           'requests_by_model', (SELECT pg_catalog.jsonb_object_agg(x.k, x.n) FROM (
                SELECT g.model_used AS k, sum(g.n) AS n FROM g WHERE g.b = t.b GROUP BY 1) x))
         ORDER BY t.b), '[]'::jsonb)
  FROM t";

fn stats(
    org: Uuid,
    project: Uuid,
    from: TimestampWithTimeZone,
    to: TimestampWithTimeZone,
    grain: &str,
) -> Result<Value> {
    let j: Option<JsonB> = read_one(
        STATS_SQL,
        &[
            org.into(),
            project.into(),
            from.into(),
            to.into(),
            grain.into(),
        ],
    )?;
    Ok(j.map(|j| j.0).unwrap_or(json!([])))
}

/// Bounds of one UTC bucket: [start, start + 1 hour/day).
fn bucket(
    at: &str,
    arg: pgrx::datum::DatumWithOid<'_>,
) -> Result<(TimestampWithTimeZone, TimestampWithTimeZone)> {
    let r: Option<(Option<TimestampWithTimeZone>, Option<TimestampWithTimeZone>)> =
        Spi::connect(|c| {
            let t = c.select(at, Some(1), &[arg])?;
            if t.is_empty() {
                return Ok::<_, UsageError>(None);
            }
            Ok(Some(
                t.first()
                    .get_two::<TimestampWithTimeZone, TimestampWithTimeZone>()?,
            ))
        })?;
    match r {
        Some((Some(a), Some(b))) => Ok((a, b)),
        _ => Err(UsageError::Internal("bucket bounds".into())),
    }
}

/// The project's organization, once the caller is known to administer it.
fn admin_project(project: Option<Uuid>) -> Result<(Uuid, Uuid)> {
    let who = caller()?;
    let org = project_org(project)?;
    authorize_admin(who, org)?;
    Ok((org, project.ok_or(UsageError::NullValue("p_project_id"))?))
}

fn aggregate(
    (org, project): (Uuid, Uuid),
    grain: &str,
    bounds: (TimestampWithTimeZone, TimestampWithTimeZone),
) -> Result<JsonB> {
    crate::rollups::fold()?;
    let rows = stats(org, project, bounds.0, bounds.1, grain)?;
    if let Some(row) = rows.as_array().and_then(|a| a.first()) {
        return Ok(JsonB(row.clone()));
    }
    // An empty bucket: the same fields, zero.
    let start: Option<JsonB> = read_one(
        "SELECT CASE WHEN $2 = 'hour' THEN pg_catalog.to_jsonb($1) ELSE pg_catalog.to_jsonb(($1 AT TIME ZONE 'UTC')::date) END",
        &[bounds.0.into(), grain.into()],
    )?;
    let key = if grain == "hour" {
        "hour_start"
    } else {
        "date"
    };
    let mut row = json!({
        "project_id": project.to_string(), "total_requests": 0, "cached_requests": 0,
        "cache_hit_rate": 0, "total_tokens_input": 0, "total_tokens_output": 0, "total_tokens": 0,
        "total_cost_usd": 0, "total_potential_cost_usd": 0, "total_savings_usd": 0,
        "cache_write_extra_usd": 0, "net_savings_usd": 0, "avg_latency_ms": null,
        "requests_by_provider": {}, "requests_by_model": {}
    });
    row[key] = start.map(|j| j.0).unwrap_or(Value::Null);
    Ok(JsonB(row))
}

fn finite_ts(
    t: Option<TimestampWithTimeZone>,
    name: &'static str,
) -> Result<TimestampWithTimeZone> {
    let t = t.ok_or(UsageError::NullValue(name))?;
    if !t.is_finite() {
        return Err(UsageError::invalid(name, "must be a finite time"));
    }
    Ok(t)
}

/// Seed 003's hourly aggregation: brings the rollups up to date and returns
/// the project's stats for the UTC hour containing p_hour_start (org admins,
/// service_role).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "aggregate_usage_hourly"
)]
#[search_path(pg_catalog, pg_temp)]
fn aggregate_usage_hourly(
    p_project_id: Option<Uuid>,
    p_hour_start: Option<TimestampWithTimeZone>,
) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            let project = admin_project(p_project_id)?;
            let at = finite_ts(p_hour_start, "p_hour_start")?;
            let b = bucket(
            "SELECT pg_catalog.date_trunc('hour', $1, 'UTC'), pg_catalog.date_trunc('hour', $1, 'UTC') + interval '1 hour'",
            at.into(),
        )?;
            aggregate(project, "hour", b)
        })()
    })
}

/// Seed 003's daily aggregation: brings the rollups up to date and returns
/// the project's stats for the UTC day p_date (org admins, service_role).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "aggregate_usage_daily"
)]
#[search_path(pg_catalog, pg_temp)]
fn aggregate_usage_daily(p_project_id: Option<Uuid>, p_date: Option<Date>) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            let project = admin_project(p_project_id)?;
            let d = p_date.ok_or(UsageError::NullValue("p_date"))?;
            if !d.is_finite() {
                return Err(UsageError::invalid("p_date", "must be a finite date"));
            }
            let b = bucket(
            "SELECT ($1::timestamp AT TIME ZONE 'UTC'), (($1 + 1)::timestamp AT TIME ZONE 'UTC')",
            d.into(),
        )?;
            aggregate(project, "day", b)
        })()
    })
}

fn dashboard(project: Option<Uuid>, days: Option<i32>) -> Result<JsonB> {
    let (org, project) = admin_project(project)?;
    let days = crate::dashboards::check_days(days)?;
    let b = bucket(
        "SELECT ((CURRENT_DATE - ($1 - 1))::timestamp AT TIME ZONE 'UTC'), ((CURRENT_DATE + 1)::timestamp AT TIME ZONE 'UTC')",
        days.into(),
    )?;
    Ok(JsonB(stats(org, project, b.0, b.1, "day")?))
}

/// Seed 003's dashboard: one row per UTC day with requests among the last
/// p_days days (today included), oldest first. Returned as a JSON array;
/// the public wrapper turns it into rows.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_dashboard_stats"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_dashboard_stats(p_project_id: Option<Uuid>, p_days: Option<i32>) -> PgResult<JsonB> {
    guarded(|| dashboard(p_project_id, p_days))
}

/// Validates p_prices: {"model": {"input_usd_per_mtok": n, "output_usd_per_mtok": n, ...}}
/// (cache_read_, cache_write_, reasoning_usd_per_mtok optional: no rate).
fn check_prices(prices: &Option<Jsonb>) -> Result<()> {
    let Some(j) = prices else {
        return Ok(());
    };
    j.check_object("p_prices", crate::limits::PRICE_LIST)?;
    let v = j.to_value()?;
    let obj = v
        .as_object()
        .ok_or_else(|| UsageError::invalid("p_prices", "must be a JSON object keyed by model"))?;
    for (model, p) in obj {
        let p = p.as_object().ok_or_else(|| {
            UsageError::invalid("p_prices", format!("'{model}' must map to an object"))
        })?;
        for (k, n) in p {
            const KEYS: [&str; 5] = [
                "input_usd_per_mtok",
                "output_usd_per_mtok",
                "cache_read_usd_per_mtok",
                "cache_write_usd_per_mtok",
                "reasoning_usd_per_mtok",
            ];
            if !KEYS.contains(&k.as_str()) {
                return Err(UsageError::invalid(
                    "p_prices",
                    format!("unknown key '{k}' ({})", KEYS.join(", ")),
                ));
            }
            let d = match n {
                Value::Number(x) => {
                    crate::pricing::from_numeric_text(&x.to_string()).map_err(|_| {
                        UsageError::invalid("p_prices", format!("{model}.{k} is not a number"))
                    })?
                }
                _ => {
                    return Err(UsageError::invalid(
                        "p_prices",
                        format!("{model}.{k} must be a number"),
                    ))
                }
            };
            if d.is_sign_negative() || d > rust_decimal::Decimal::from(crate::limits::MAX_RATE) {
                return Err(UsageError::out_of_range(
                    "p_prices",
                    format!(
                        "{model}.{k} must be between 0 and {} USD per million tokens",
                        crate::limits::MAX_RATE
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Rows of the log in [$1, $2] (UTC days) with what they would cost now:
/// the price in force at their time from the catalog (of the row's
/// provider), or p_prices ($3) per model. A bucket without a rate costs
/// nothing and is listed in `unpriced` (never priced at another rate).
const RECOST_CTE: &str = "\
c AS (
    SELECT l.org_id, l.created_at, l.id, l.cached, l.total_cost_usd, l.potential_cost_usd, l.unpriced_buckets, cat.price_id,
           (l.input_tokens * r.i + l.output_tokens * r.o + l.cache_read_tokens * coalesce(r.cr, 0)
              + l.cache_write_tokens * coalesce(r.cw, 0) + l.reasoning_tokens * coalesce(r.rs, 0)) * 0.000001 AS full_cost,
           l.input_tokens * r.i * 0.000001 AS in_cost, l.output_tokens * r.o * 0.000001 AS out_cost,
           l.cache_read_tokens * coalesce(r.cr, 0) * 0.000001 AS cr_cost,
           l.cache_write_tokens * coalesce(r.cw, 0) * 0.000001 AS cw_cost,
           l.reasoning_tokens * coalesce(r.rs, 0) * 0.000001 AS rs_cost,
           nullif(pg_catalog.array_remove(ARRAY[
               CASE WHEN l.cache_read_tokens > 0 AND r.cr IS NULL THEN 'cache_read' END,
               CASE WHEN l.cache_write_tokens > 0 AND r.cw IS NULL THEN 'cache_write' END,
               CASE WHEN l.reasoning_tokens > 0 AND r.rs IS NULL THEN 'reasoning' END], NULL), '{}') AS unpriced
      FROM usage_tracker.ai_usage_log l
      LEFT JOIN LATERAL (
           SELECT mp.* FROM usage_tracker.model_prices mp
            WHERE mp.model = l.model_used AND mp.effective_from <= l.created_at
              AND mp.provider = coalesce(l.provider, (SELECT m0.provider FROM usage_tracker.model_prices m0
                                                       WHERE m0.model = l.model_used ORDER BY m0.price_id LIMIT 1))
            ORDER BY mp.effective_from DESC, mp.price_id DESC LIMIT 1) cat ON true
      CROSS JOIN LATERAL (
           SELECT CASE WHEN $3 ? l.model_used THEN (($3 -> l.model_used) ->> 'input_usd_per_mtok')::numeric
                       ELSE cat.input_usd_per_mtok END AS i,
                  CASE WHEN $3 ? l.model_used THEN (($3 -> l.model_used) ->> 'output_usd_per_mtok')::numeric
                       ELSE cat.output_usd_per_mtok END AS o,
                  CASE WHEN $3 ? l.model_used THEN (($3 -> l.model_used) ->> 'cache_read_usd_per_mtok')::numeric
                       ELSE cat.cache_read_usd_per_mtok END AS cr,
                  CASE WHEN $3 ? l.model_used THEN (($3 -> l.model_used) ->> 'cache_write_usd_per_mtok')::numeric
                       ELSE cat.cache_write_usd_per_mtok END AS cw,
                  CASE WHEN $3 ? l.model_used THEN (($3 -> l.model_used) ->> 'reasoning_usd_per_mtok')::numeric
                       ELSE cat.reasoning_usd_per_mtok END AS rs) r
     WHERE l.created_at >= ($1::timestamp AT TIME ZONE 'UTC') AND l.created_at < (($2 + 1)::timestamp AT TIME ZONE 'UTC')
       AND ($4::text IS NULL OR l.model_used = $4))";

/// Rebuilds the rollups of the UTC days between `lo` and `hi` (timestamps
/// of changed rows), if any.
fn rebuild_changed(
    lo: Option<TimestampWithTimeZone>,
    hi: Option<TimestampWithTimeZone>,
) -> Result<i64> {
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(0);
    };
    let days: Option<(Option<Date>, Option<Date>)> = Spi::connect(|c| {
        let t = c.select(
            "SELECT ($1 AT TIME ZONE 'UTC')::date, ($2 AT TIME ZONE 'UTC')::date",
            Some(1),
            &[lo.into(), hi.into()],
        )?;
        Ok::<_, UsageError>(Some(t.first().get_two::<Date, Date>()?))
    })?;
    let Some((Some(a), Some(b))) = days else {
        return Ok(0);
    };
    crate::rollups::rebuild_days(a, b)?;
    let n: Option<i32> = read_one("SELECT $2 - $1 + 1", &[a.into(), b.into()])?;
    Ok(n.unwrap_or(0) as i64)
}

/// Runs a backfill or reprice statement (its summary, and the first and
/// last time of the rows it changed), then rebuilds the rollup days those
/// rows fall in unless it was a dry run.
fn run_recost(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>], dry: bool) -> Result<JsonB> {
    let (summary, lo, hi) = Spi::connect_mut(|c| -> Result<_> {
        let t = c.update(sql, Some(1), args)?;
        let r = t.first();
        Ok((
            r.get::<JsonB>(1)?,
            r.get::<TimestampWithTimeZone>(2)?,
            r.get::<TimestampWithTimeZone>(3)?,
        ))
    })?;
    let days = if dry { 0 } else { rebuild_changed(lo, hi)? };
    let mut out = summary.map(|j| j.0).unwrap_or(json!({}));
    out["dry_run"] = json!(dry);
    out["rollup_days_rebuilt"] = json!(days);
    Ok(JsonB(out))
}

fn backfill(
    from: Option<Date>,
    to: Option<Date>,
    prices: Option<Jsonb>,
    dry_run: Option<bool>,
) -> Result<JsonB> {
    require_trusted("backfill_potential_cost")?;
    crate::relcache::require_column("usage_tracker.ai_usage_log", "unpriced_buckets")?;
    let (from, to) = crate::rollups::range(from, to)?;
    check_prices(&prices)?;
    let dry = dry_run.unwrap_or(false);
    crate::rollups::lock()?;
    let sql = format!(
        "WITH {RECOST_CTE}, \
         todo AS (SELECT c.org_id, c.created_at, c.id, \
                         CASE WHEN c.cached THEN c.full_cost ELSE c.total_cost_usd END AS potential \
                    FROM c WHERE c.potential_cost_usd = 0), \
         upd AS (UPDATE usage_tracker.ai_usage_log l SET potential_cost_usd = t.potential FROM todo t \
                  WHERE NOT $5 AND t.potential > 0 AND l.org_id = t.org_id AND l.created_at = t.created_at AND l.id = t.id \
                  RETURNING l.created_at) \
         SELECT pg_catalog.jsonb_build_object('rows', count(*) FILTER (WHERE t.potential > 0), \
                'potential_cost_added_usd', round(coalesce(sum(t.potential) FILTER (WHERE t.potential > 0), 0), 9), \
                'rows_without_price', count(*) FILTER (WHERE t.potential IS NULL)), \
                (SELECT min(u.created_at) FROM upd u), (SELECT max(u.created_at) FROM upd u) \
           FROM todo t"
    );
    run_recost(
        &sql,
        &[
            from.into(),
            to.into(),
            prices.into(),
            Option::<String>::None.into(),
            dry.into(),
        ],
        dry,
    )
}

/// Fills potential_cost_usd where it is zero (rows logged before it was
/// tracked): what was paid for uncached rows; for cached rows the price in
/// force at their time (or p_prices per model, USD per million tokens).
/// Rebuilds the affected rollup days. service_role.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "backfill_potential_cost"
)]
#[search_path(pg_catalog, pg_temp)]
fn backfill_potential_cost(
    p_from: Option<Date>,
    p_to: Option<Date>,
    p_prices: Option<Jsonb>,
    p_dry_run: Option<bool>,
) -> PgResult<JsonB> {
    guarded(|| backfill(p_from, p_to, p_prices, p_dry_run))
}

fn reprice(
    from: Option<Date>,
    to: Option<Date>,
    model: Option<String>,
    dry_run: Option<bool>,
) -> Result<JsonB> {
    require_trusted("reprice_ai_usage")?;
    crate::relcache::require_column("usage_tracker.ai_usage_log", "unpriced_buckets")?;
    let (from, to) = crate::rollups::range(from, to)?;
    let dry = dry_run.unwrap_or(true);
    crate::rollups::lock()?;
    let sql = format!(
        "WITH {RECOST_CTE}, \
         todo AS (SELECT c.*, CASE WHEN c.cached THEN 0 ELSE c.full_cost END AS new_total FROM c \
                   WHERE c.price_id IS NOT NULL \
                     AND (CASE WHEN c.cached THEN 0 ELSE c.full_cost END, c.full_cost, c.unpriced) \
                         IS DISTINCT FROM (c.total_cost_usd, c.potential_cost_usd, c.unpriced_buckets)), \
         upd AS (UPDATE usage_tracker.ai_usage_log l SET price_id = t.price_id, \
                        input_cost_usd = CASE WHEN t.cached THEN 0 ELSE t.in_cost END, \
                        output_cost_usd = CASE WHEN t.cached THEN 0 ELSE t.out_cost END, \
                        cache_read_cost_usd = CASE WHEN t.cached THEN 0 ELSE t.cr_cost END, \
                        cache_write_cost_usd = CASE WHEN t.cached THEN 0 ELSE t.cw_cost END, \
                        reasoning_cost_usd = CASE WHEN t.cached THEN 0 ELSE t.rs_cost END, \
                        total_cost_usd = t.new_total, potential_cost_usd = t.full_cost, unpriced_buckets = t.unpriced \
                   FROM todo t WHERE NOT $5 AND l.org_id = t.org_id AND l.created_at = t.created_at AND l.id = t.id \
                 RETURNING l.created_at) \
         SELECT pg_catalog.jsonb_build_object('rows', count(*), \
                'old_total_cost_usd', round(coalesce(sum(t.total_cost_usd), 0), 9), \
                'new_total_cost_usd', round(coalesce(sum(t.new_total), 0), 9), \
                'difference_usd', round(coalesce(sum(t.new_total - t.total_cost_usd), 0), 9)), \
                (SELECT min(u.created_at) FROM upd u), (SELECT max(u.created_at) FROM upd u) \
           FROM todo t"
    );
    run_recost(
        &sql,
        &[
            from.into(),
            to.into(),
            Option::<JsonB>::None.into(),
            model.into(),
            dry.into(),
        ],
        dry,
    )
}

/// Recomputes the costs of logged rows from the price catalog (after a
/// price change), optionally for one model. A dry run (the default) only
/// reports the difference. Rows whose model has no price are left alone.
/// Rebuilds the affected rollup days. service_role.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "reprice_ai_usage"
)]
#[search_path(pg_catalog, pg_temp)]
fn reprice_ai_usage(
    p_from: Option<Date>,
    p_to: Option<Date>,
    p_model: Option<String>,
    p_dry_run: Option<bool>,
) -> PgResult<JsonB> {
    guarded(|| reprice(p_from, p_to, p_model, p_dry_run))
}

/// Hours with raw rows whose hourly rollup disagrees: `not_folded_yet`
/// (rows past the fold, normal until the next run_maintenance), `trimmed`
/// (older than hourly retention) or `missing` (needs rebuild_rollups).
const GAPS_SQL: &str = "\
WITH w AS (SELECT coalesce(max(p.folded_through), 0) AS seq, coalesce(max(p.hourly_kept_from), '-infinity') AS k
             FROM usage_tracker_private.rollup_progress p WHERE p.rollup = 'ai_usage'),
raw AS (SELECT l.org_id, l.project_id, pg_catalog.date_trunc('hour', l.created_at, 'UTC') AS hour, count(*) AS raw_requests,
               count(*) FILTER (WHERE l.ingest_seq > w.seq) AS unfolded
          FROM usage_tracker.ai_usage_log l, w
         WHERE l.created_at >= ($1::timestamp AT TIME ZONE 'UTC') AND l.created_at < (($2 + 1)::timestamp AT TIME ZONE 'UTC')
         GROUP BY 1, 2, 3),
held AS (SELECT h.org_id, h.project_id, h.hour, sum(h.requests) AS rollup_requests FROM usage_tracker.ai_usage_hourly h
          WHERE h.hour >= ($1::timestamp AT TIME ZONE 'UTC') AND h.hour < (($2 + 1)::timestamp AT TIME ZONE 'UTC')
          GROUP BY 1, 2, 3),
gaps AS (SELECT r.org_id, r.project_id, r.hour, r.raw_requests, coalesce(h.rollup_requests, 0) AS rollup_requests,
                CASE WHEN r.hour < (SELECT w.k FROM w) THEN 'trimmed'
                     WHEN r.raw_requests - r.unfolded = coalesce(h.rollup_requests, 0) THEN 'not_folded_yet'
                     ELSE 'missing' END AS state
           FROM raw r LEFT JOIN held h ON h.org_id = r.org_id AND h.project_id IS NOT DISTINCT FROM r.project_id AND h.hour = r.hour
          WHERE r.raw_requests IS DISTINCT FROM h.rollup_requests)
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(g) ORDER BY g.hour, g.org_id, g.project_id), '[]'::jsonb) FROM gaps g";

/// Seed 003's gap check: hours from p_from to p_to with raw rows the hourly
/// rollup does not (yet) hold. service_role.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "rollup_gaps"
)]
#[search_path(pg_catalog, pg_temp)]
fn rollup_gaps(p_from: Option<Date>, p_to: Option<Date>) -> PgResult<JsonB> {
    guarded(|| {
        (|| {
            require_trusted("rollup_gaps")?;
            let (from, to) = crate::rollups::range(p_from, p_to)?;
            let j: Option<JsonB> = read_one(GAPS_SQL, &[from.into(), to.into()])?;
            Ok(j.unwrap_or(JsonB(json!([]))))
        })()
    })
}
