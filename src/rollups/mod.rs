//! Incremental rollups of the AI usage log.
//!
//! The log is append-only and every row carries an `ingest_seq` from a
//! sequence. A fold reads the sequence's position, then waits until every
//! transaction that was writing to the log has ended (WaitForLockers: a
//! writer takes its lock on the log's parent table before it draws a number
//! — log_ai_usage inserts straight into a partition, so it takes that lock
//! explicitly, see partitions::ensure_for — so any row
//! numbered at or below the position is then committed or gone), and adds
//! the rows between the last fold and that position to every rollup in one
//! statement — no row lost, none counted twice, and writers never wait for
//! the fold. Late events (a past created_at) fold into their own hour and
//! day. Concurrent folds serialize on an advisory lock.
//!
//! One small rollup per question (see sql/rollups.sql) instead of one cube
//! over every dimension: a cube grows toward the size of the log as tenants
//! add users and customers, so reads over it barely beat the raw log.

use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::orgs::to_pg_date;
use crate::spi_util::{delete_count, read_one, write_one};

mod lag;

pub const FOLD_LOCK: (i32, i32) = (0x7574, -1);
pub const PROGRESS: &str = "ai_usage";

/// How a measure merges into an existing rollup row (and how the fine
/// increment's groups add up into a family's groups).
#[derive(Clone, Copy)]
enum Merge {
    Sum,
    Max,
}

/// The fine increment: the new rows grouped once by every key any rollup
/// has (per hour), with every measure any rollup keeps. Each rollup is then
/// folded from these groups — far fewer than the rows — instead of every
/// rollup aggregating the raw rows again. (column, aggregate over the log
/// rows `l`, how groups add up.)
const FINE_KEYS: &str =
    "l.project_id, l.cached, l.status, l.request_type, l.model_used, l.provider, \
    l.user_id, l.user_email, l.customer_id, l.customer_name";
const FINE: [(&str, &str, Merge); 15] = [
    ("requests", "count(*)", Merge::Sum),
    ("input_tokens", "sum(l.input_tokens)", Merge::Sum),
    ("output_tokens", "sum(l.output_tokens)", Merge::Sum),
    ("cache_read_tokens", "sum(l.cache_read_tokens)", Merge::Sum),
    (
        "cache_write_tokens",
        "sum(l.cache_write_tokens)",
        Merge::Sum,
    ),
    ("reasoning_tokens", "sum(l.reasoning_tokens)", Merge::Sum),
    ("total_tokens", "sum(l.total_tokens)", Merge::Sum),
    ("latency_count", "count(l.latency_ms)", Merge::Sum),
    ("latency_sum", "coalesce(sum(l.latency_ms), 0)", Merge::Sum),
    ("last_at", "max(l.created_at)", Merge::Max),
    ("input_cost_usd", "sum(l.input_cost_usd)", Merge::Sum),
    ("output_cost_usd", "sum(l.output_cost_usd)", Merge::Sum),
    ("total_cost_usd", "sum(l.total_cost_usd)", Merge::Sum),
    (
        "potential_cost_usd",
        "sum(l.potential_cost_usd)",
        Merge::Sum,
    ),
    // Computed on the groups (fold_sql).
    ("cache_write_extra_usd", "", Merge::Sum),
];

/// One rollup family: an hourly and a daily table with the same keys.
struct Family {
    hourly: &'static str,
    daily: &'static str,
    /// Key columns besides org_id and the bucket (same names in the log).
    keys: &'static [&'static str],
    /// Measure columns (named as in FINE).
    measures: &'static [&'static str],
    /// Which groups the family holds.
    filter: &'static str,
}

const FAMILIES: [Family; 3] = [
    Family {
        hourly: "ai_usage_hourly",
        daily: "ai_usage_daily",
        keys: &[
            "project_id",
            "cached",
            "status",
            "request_type",
            "model_used",
            "provider",
        ],
        measures: &[
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "total_tokens",
            "latency_count",
            "latency_sum",
            "last_at",
            "input_cost_usd",
            "output_cost_usd",
            "total_cost_usd",
            "potential_cost_usd",
            "cache_write_extra_usd",
        ],
        filter: "true",
    },
    Family {
        hourly: "ai_usage_user_hourly",
        daily: "ai_usage_user_daily",
        keys: &["user_id", "user_email", "status", "request_type"],
        measures: &[
            "requests",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "latency_count",
            "latency_sum",
            "last_at",
            "input_cost_usd",
            "output_cost_usd",
            "total_cost_usd",
        ],
        filter: "true",
    },
    Family {
        hourly: "ai_usage_customer_hourly",
        daily: "ai_usage_customer_daily",
        keys: &["customer_id", "customer_name"],
        measures: &["requests", "total_tokens", "total_cost_usd"],
        filter: "f.customer_id IS NOT NULL",
    },
];

fn merge_of(column: &str) -> Merge {
    FINE.iter()
        .find(|m| m.0 == column)
        .map_or(Merge::Sum, |m| m.2)
}

/// `INSERT ... SELECT ... ON CONFLICT` folding the fine groups `fine` into
/// `table`, in bucket order so that the BRIN index on the bucket stays
/// tight.
fn upsert(table: &str, bucket: (&str, &str), f: &Family, extra_filter: &str) -> String {
    let (bcol, bexpr) = bucket;
    let keys = f.keys.join(", ");
    let fkeys: Vec<String> = f.keys.iter().map(|k| format!("f.{k}")).collect();
    let aggs: Vec<String> = f
        .measures
        .iter()
        .map(|c| match merge_of(c) {
            Merge::Sum => format!("sum(f.{c})"),
            Merge::Max => format!("max(f.{c})"),
        })
        .collect();
    let sets: Vec<String> = f
        .measures
        .iter()
        .map(|c| match merge_of(c) {
            Merge::Sum => format!("{c} = d.{c} + EXCLUDED.{c}"),
            Merge::Max => format!("{c} = GREATEST(d.{c}, EXCLUDED.{c})"),
        })
        .collect();
    format!(
        "INSERT INTO usage_tracker.{table} AS d (org_id, {bcol}, {keys}, {mcols}) \
         SELECT f.org_id, {bexpr}, {fkeys}, {aggs} FROM fine f WHERE {filter} AND {extra_filter} \
         GROUP BY f.org_id, {bexpr}, {fkeys} ORDER BY {bexpr} \
         ON CONFLICT ON CONSTRAINT {table}_key DO UPDATE SET {sets} RETURNING 1",
        mcols = f.measures.join(", "),
        fkeys = fkeys.join(", "),
        aggs = aggs.join(", "),
        filter = f.filter,
        sets = sets.join(", "),
    )
}

/// The fold statement. $1 < ingest_seq <= $2; optional created_at range of
/// UTC days [$3, $4]; hourly rollups only from $5 (hourly_kept_from) on.
/// Returns the number of log rows folded.
fn fold_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let fine_aggs: Vec<String> = FINE
            .iter()
            .filter(|m| m.0 != "cache_write_extra_usd")
            .map(|(c, a, _)| format!("{a} AS {c}"))
            .collect();
        // The raw rows are read once and grouped (hash aggregation: see
        // run_fold). Their UTC hour by date_bin, which is arithmetic
        // (date_trunc with a zone converts every row: twice the cost of
        // the scan). The price join that splits out what cache writes cost
        // beyond input runs on the groups (price_id is a key), not the rows.
        let mut ctes = vec![format!(
            "groups AS (SELECT l.org_id, \
               pg_catalog.date_bin('1 hour'::interval, l.created_at, '0001-01-01 00:00:00+00'::timestamptz) AS hour, \
               l.created_at >= $5 AS kept, l.price_id, {FINE_KEYS}, {aggs}, sum(l.cache_write_cost_usd) AS cw_cost \
             FROM usage_tracker.ai_usage_log l \
             WHERE l.ingest_seq > $1 AND l.ingest_seq <= $2 \
               AND ($3::date IS NULL OR l.created_at >= ($3::timestamp AT TIME ZONE 'UTC')) \
               AND ($4::date IS NULL OR l.created_at < (($4 + 1)::timestamp AT TIME ZONE 'UTC')) \
             GROUP BY l.org_id, 2, 3, l.price_id, {FINE_KEYS})",
            aggs = fine_aggs.join(", ")
        ),
        "fine AS MATERIALIZED (SELECT g.*, CASE WHEN g.cached THEN 0 \
                ELSE g.cw_cost - g.cache_write_tokens * coalesce(p.input_usd_per_mtok, 0) / 1000000 END AS cache_write_extra_usd \
             FROM groups g LEFT JOIN usage_tracker.model_prices p ON p.price_id = g.price_id)"
            .to_string()];
        for (i, f) in FAMILIES.iter().enumerate() {
            ctes.push(format!(
                "h{i} AS ({})",
                upsert(f.hourly, ("hour", "f.hour"), f, "f.kept")
            ));
            ctes.push(format!(
                "d{i} AS ({})",
                upsert(f.daily, ("day", "(f.hour AT TIME ZONE 'UTC')::date"), f, "true")
            ));
        }
        ctes.push(
            "pairs AS (INSERT INTO usage_tracker.ai_usage_customer_users AS d (org_id, customer_id, customer_name, user_id, last_at) \
             SELECT f.org_id, f.customer_id, f.customer_name, f.user_id, max(f.last_at) FROM fine f \
             WHERE f.customer_id IS NOT NULL GROUP BY 1, 2, 3, 4 \
             ON CONFLICT ON CONSTRAINT ai_usage_customer_users_key DO UPDATE SET last_at = GREATEST(d.last_at, EXCLUDED.last_at) \
             RETURNING 1)"
                .to_string(),
        );
        format!("WITH {} SELECT coalesce(sum(f.requests), 0)::bigint FROM fine f", ctes.join(", "))
    })
}

/// Waits for every transaction holding a lock that conflicts with SHARE on
/// the log (that is, every writer), except this one.
fn wait_for_log_writers() -> Result<()> {
    let rel: Option<pg_sys::Oid> = read_one(
        "SELECT 'usage_tracker.ai_usage_log'::pg_catalog.regclass::pg_catalog.oid",
        &[],
    )?;
    let rel = rel.ok_or_else(|| UsageError::Internal("log relation".into()))?;
    // SAFETY: a relation lock tag (SET_LOCKTAG_RELATION) for an existing
    // relation of this database; WaitForLockers only waits.
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: pg_sys::MyDatabaseId.to_u32(),
            locktag_field2: rel.to_u32(),
            locktag_field3: 0,
            locktag_field4: 0,
            locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
            locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
        };
        pg_sys::WaitForLockers(tag, pg_sys::ShareLock as pg_sys::LOCKMODE, false);
    }
    Ok(())
}

fn check_read_committed() -> Result<()> {
    // SAFETY: reads a backend global.
    let level = unsafe { pg_sys::XactIsoLevel };
    if level as u32 >= pg_sys::XACT_REPEATABLE_READ {
        return Err(UsageError::invalid(
            "transaction",
            "rollups fold in READ COMMITTED only (they must see rows committed while they waited)",
        ));
    }
    Ok(())
}

/// Takes the fold lock (held to the end of the transaction).
pub fn lock() -> Result<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[FOLD_LOCK.0.into(), FOLD_LOCK.1.into()],
    )?;
    Ok(())
}

/// (folded_through, hourly_kept_from), creating the progress row on first
/// use (it is not created at install: pg_dump restores it as data).
pub fn progress() -> Result<(i64, TimestampWithTimeZone)> {
    write_one::<bool>(
        "INSERT INTO usage_tracker_private.rollup_progress (rollup) VALUES ($1) ON CONFLICT (rollup) DO NOTHING RETURNING true",
        &[PROGRESS.into()],
    )?;
    let row: Option<(Option<i64>, Option<TimestampWithTimeZone>)> = Spi::connect(|c| {
        let t = c.select(
            "SELECT p.folded_through, p.hourly_kept_from FROM usage_tracker_private.rollup_progress p WHERE p.rollup = $1",
            Some(1),
            &[PROGRESS.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, UsageError>(None);
        }
        let r = t.first();
        Ok(Some((r.get::<i64>(1)?, r.get::<TimestampWithTimeZone>(2)?)))
    })?;
    match row {
        Some((Some(f), Some(k))) => Ok((f, k)),
        _ => Err(UsageError::Internal("rollup_progress row missing".into())),
    }
}

fn run_fold(
    from: i64,
    to: i64,
    days: (Option<Date>, Option<Date>),
    kept: TimestampWithTimeZone,
) -> Result<i64> {
    // The planner cannot know how few groups the new rows make (a few per
    // organization, user and model per hour) and would sort every row on
    // twelve keys instead of hashing them: hash aggregation (which spills
    // to disk if groups are in fact many) for this statement only.
    let sort: Option<String> = read_one("SELECT pg_catalog.current_setting('enable_sort')", &[])?;
    Spi::run("SELECT pg_catalog.set_config('enable_sort', 'off', true)")?;
    let n: Option<i64> = Spi::connect_mut(|c| {
        let t = c.update(
            fold_sql(),
            Some(1),
            &[
                from.into(),
                to.into(),
                days.0.into(),
                days.1.into(),
                kept.into(),
            ],
        )?;
        crate::spi_util::first(t)
    })?;
    Spi::run_with_args(
        "SELECT pg_catalog.set_config('enable_sort', $1, true)",
        &[sort.unwrap_or_else(|| "on".into()).into()],
    )?;
    Ok(n.unwrap_or(0))
}

/// Rows one pass folds at most (usage_tracker.fold_batch_rows; default
/// 2,000,000, about seven seconds here): a pass never holds its work for
/// minutes after an outage; the next pass goes on where it stopped.
pub const DEFAULT_FOLD_BATCH_ROWS: i64 = 2_000_000;

fn fold_batch_rows() -> Result<i64> {
    let v: Option<String> = read_one(
        "SELECT nullif(pg_catalog.current_setting('usage_tracker.fold_batch_rows', true), '')",
        &[],
    )?;
    match v {
        None => Ok(DEFAULT_FOLD_BATCH_ROWS),
        Some(t) => t
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1000)
            .ok_or_else(|| {
                UsageError::invalid(
                    "usage_tracker.fold_batch_rows",
                    format!("'{t}' is not a whole number of rows, at least 1000"),
                )
            }),
    }
}

/// Folds the rows logged since the last fold (at most fold_batch_rows);
/// returns how many, the position, and the lag left (lag.rs).
pub fn fold() -> Result<serde_json::Value> {
    check_read_committed()?;
    lock()?;
    let batch = fold_batch_rows()?;
    let (from, kept) = progress()?;
    let seen = lag::read_position()?;
    let to = seen.0.min(from.saturating_add(batch));
    let folded = if to > from {
        wait_for_log_writers()?;
        crate::partitions::summarize_brin()?;
        let n = run_fold(from, to, (None, None), kept)?;
        write_one::<bool>(
            "UPDATE usage_tracker_private.rollup_progress SET folded_through = $1, updated_at = pg_catalog.now() \
             WHERE rollup = $2 RETURNING true",
            &[to.into(), PROGRESS.into()],
        )?;
        n
    } else {
        0
    };
    let through = to.max(from);
    let marks = lag::prune(lag::marks()?, seen, through);
    lag::store(&marks)?;
    let mut v = lag::lag(&marks, through, lag::read_position()?);
    v["rows_folded"] = json!(folded);
    v["folded_through"] = json!(through);
    Ok(v)
}

/// A validated range of UTC days from (p_from, p_to).
pub fn range(from: Option<Date>, to: Option<Date>) -> Result<(Date, Date)> {
    let (s, e) = crate::orgs::date_range(from, to, ("p_from", "p_to"))?;
    Ok((to_pg_date(s)?, to_pg_date(e)?))
}

/// Per rollup table and (org, UTC day): what it holds vs. what the folded
/// raw rows say it should hold; plus the (customer, user) pairs whose last
/// request falls in the range.
const VERIFY_SQL: &str = "\
WITH w AS (SELECT coalesce(max(p.folded_through), 0) AS seq, coalesce(max(p.hourly_kept_from), '-infinity') AS k
             FROM usage_tracker_private.rollup_progress p WHERE p.rollup = 'ai_usage'),
b AS (SELECT ($1::timestamp AT TIME ZONE 'UTC') AS lo, (($2 + 1)::timestamp AT TIME ZONE 'UTC') AS hi),
raw AS (SELECT l.org_id, (l.created_at AT TIME ZONE 'UTC')::date AS day, l.created_at >= w.k AS in_h, l.customer_id IS NOT NULL AS has_c,
               count(*) AS requests, sum(l.total_tokens) AS tokens, sum(l.total_cost_usd) AS cost, sum(l.potential_cost_usd) AS potential
          FROM usage_tracker.ai_usage_log l, w, b
         WHERE l.ingest_seq <= w.seq AND l.created_at >= b.lo AND l.created_at < b.hi GROUP BY 1, 2, 3, 4),
expected AS (
    SELECT t.rollup, r.org_id, r.day, sum(r.requests) AS requests, sum(r.tokens) AS tokens, sum(r.cost) AS cost,
           CASE WHEN t.rollup IN ('ai_usage_hourly', 'ai_usage_daily') THEN sum(r.potential) END AS potential
      FROM raw r, (VALUES ('ai_usage_hourly', true, false), ('ai_usage_daily', false, false),
                          ('ai_usage_user_hourly', true, false), ('ai_usage_user_daily', false, false),
                          ('ai_usage_customer_hourly', true, true), ('ai_usage_customer_daily', false, true)) t(rollup, hourly, customers)
     WHERE (r.in_h OR NOT t.hourly) AND (r.has_c OR NOT t.customers)
     GROUP BY 1, 2, 3),
held AS (
    SELECT 'ai_usage_hourly' AS rollup, x.org_id, (x.hour AT TIME ZONE 'UTC')::date AS day, sum(x.requests) AS requests,
           sum(x.total_tokens) AS tokens, sum(x.total_cost_usd) AS cost, sum(x.potential_cost_usd) AS potential
      FROM usage_tracker.ai_usage_hourly x, b WHERE x.hour >= b.lo AND x.hour < b.hi GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'ai_usage_daily', x.org_id, x.day, sum(x.requests), sum(x.total_tokens), sum(x.total_cost_usd), sum(x.potential_cost_usd)
      FROM usage_tracker.ai_usage_daily x WHERE x.day >= $1 AND x.day <= $2 GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'ai_usage_user_hourly', x.org_id, (x.hour AT TIME ZONE 'UTC')::date, sum(x.requests), sum(x.total_tokens), sum(x.total_cost_usd), NULL
      FROM usage_tracker.ai_usage_user_hourly x, b WHERE x.hour >= b.lo AND x.hour < b.hi GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'ai_usage_user_daily', x.org_id, x.day, sum(x.requests), sum(x.total_tokens), sum(x.total_cost_usd), NULL
      FROM usage_tracker.ai_usage_user_daily x WHERE x.day >= $1 AND x.day <= $2 GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'ai_usage_customer_hourly', x.org_id, (x.hour AT TIME ZONE 'UTC')::date, sum(x.requests), sum(x.total_tokens), sum(x.total_cost_usd), NULL
      FROM usage_tracker.ai_usage_customer_hourly x, b WHERE x.hour >= b.lo AND x.hour < b.hi GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'ai_usage_customer_daily', x.org_id, x.day, sum(x.requests), sum(x.total_tokens), sum(x.total_cost_usd), NULL
      FROM usage_tracker.ai_usage_customer_daily x WHERE x.day >= $1 AND x.day <= $2 GROUP BY 1, 2, 3),
diff AS (
    SELECT coalesce(e.rollup, h.rollup) AS rollup, coalesce(e.org_id, h.org_id) AS org_id, coalesce(e.day, h.day) AS day,
           e.requests AS raw_requests, h.requests AS rollup_requests, e.cost AS raw_cost, h.cost AS rollup_cost
      FROM expected e FULL JOIN held h ON h.rollup = e.rollup AND h.org_id = e.org_id AND h.day = e.day
     WHERE (e.requests, e.tokens, e.cost, e.potential) IS DISTINCT FROM (h.requests, h.tokens, h.cost, h.potential)),
pairs_raw AS (
    SELECT l.org_id, l.customer_id, l.customer_name, l.user_id, max(l.created_at) AS last_at
      FROM usage_tracker.ai_usage_log l, w, b
     WHERE l.ingest_seq <= w.seq AND l.customer_id IS NOT NULL AND l.created_at >= b.lo
     GROUP BY 1, 2, 3, 4 HAVING max(l.created_at) < (SELECT hi FROM b)),
pairs_held AS (
    SELECT x.org_id, x.customer_id, x.customer_name, x.user_id, x.last_at
      FROM usage_tracker.ai_usage_customer_users x, b WHERE x.last_at >= b.lo AND x.last_at < b.hi),
pair_diff AS (
    SELECT 'ai_usage_customer_users' AS rollup, coalesce(r.org_id, h.org_id) AS org_id,
           (coalesce(r.last_at, h.last_at) AT TIME ZONE 'UTC')::date AS day, coalesce(r.customer_id, h.customer_id) AS customer_id,
           coalesce(r.user_id, h.user_id) AS user_id, r.last_at AS raw_last_at, h.last_at AS rollup_last_at
      FROM pairs_raw r FULL JOIN pairs_held h ON h.org_id = r.org_id AND h.customer_id = r.customer_id
           AND h.customer_name IS NOT DISTINCT FROM r.customer_name AND h.user_id = r.user_id
     WHERE r.last_at IS DISTINCT FROM h.last_at)
SELECT pg_catalog.jsonb_build_object('from', $1, 'to', $2, 'folded_through', (SELECT seq FROM w),
       'hourly_kept_from', (SELECT k FROM w),
       'differences', coalesce((SELECT pg_catalog.jsonb_agg(x.j ORDER BY x.day, x.rollup, x.j::text) FROM (
            SELECT d.day, d.rollup, pg_catalog.to_jsonb(d) AS j FROM diff d
            UNION ALL SELECT p.day, p.rollup, pg_catalog.to_jsonb(p) FROM pair_diff p) x), '[]'::jsonb))";

fn verify(from: Option<Date>, to: Option<Date>) -> Result<JsonB> {
    require_trusted("verify_rollups")?;
    let (from, to) = range(from, to)?;
    let json: Option<JsonB> = read_one(VERIFY_SQL, &[from.into(), to.into()])?;
    json.ok_or_else(|| UsageError::Internal("verify".into()))
}

/// Compares every rollup with the raw log (rows folded so far) per table,
/// organization and UTC day from p_from to p_to; lists every difference.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "verify_rollups"
)]
#[search_path(pg_catalog, pg_temp)]
fn verify_rollups(p_from: Option<Date>, p_to: Option<Date>) -> PgResult<JsonB> {
    guarded(|| verify(p_from, p_to))
}

/// Rebuilding days whose raw rows retention already dropped would erase
/// rollup history that nothing can restore: refuse.
fn check_raw_kept(from: Date) -> Result<()> {
    let lost: Option<bool> = read_one(
        "SELECT ($1::timestamp AT TIME ZONE 'UTC') < pg_catalog.now() - r.keep FROM usage_tracker.retention_policies r \
         WHERE r.relation = 'ai_usage_log' AND r.keep IS NOT NULL ORDER BY r.shipped LIMIT 1",
        &[from.into()],
    )?;
    if lost == Some(true) {
        return Err(UsageError::invalid(
            "p_from",
            "the raw log before this day may already be gone (ai_usage_log retention); rebuilding would erase rollup history",
        ));
    }
    Ok(())
}

/// Deletes and refolds every rollup for the UTC days [from, to]. The caller
/// holds the fold lock.
pub fn rebuild_days(from: Date, to: Date) -> Result<(i64, i64)> {
    let (through, kept) = progress()?;
    let mut deleted = 0i64;
    for f in FAMILIES.iter() {
        for (table, col, lo, hi) in [
            (f.daily, "day", "$1", "$2"),
            (
                f.hourly,
                "hour",
                "($1::timestamp AT TIME ZONE 'UTC')",
                "(($2 + 1)::timestamp AT TIME ZONE 'UTC')",
            ),
        ] {
            let cmp = if col == "day" { "<=" } else { "<" };
            deleted += delete_count(
                &format!(
                    "DELETE FROM usage_tracker.{table} WHERE {col} >= {lo} AND {col} {cmp} {hi}"
                ),
                &[from.into(), to.into()],
            )?;
        }
    }
    deleted += delete_count(
        "DELETE FROM usage_tracker.ai_usage_customer_users \
          WHERE last_at >= ($1::timestamp AT TIME ZONE 'UTC') AND last_at < (($2 + 1)::timestamp AT TIME ZONE 'UTC')",
        &[from.into(), to.into()],
    )?;
    let refolded = run_fold(0, through, (Some(from), Some(to)), kept)?;
    Ok((deleted, refolded))
}

fn rebuild(from: Option<Date>, to: Option<Date>) -> Result<JsonB> {
    require_trusted("rebuild_rollups")?;
    let (from, to) = range(from, to)?;
    check_read_committed()?;
    check_raw_kept(from)?;
    lock()?;
    let (deleted, refolded) = rebuild_days(from, to)?;
    let (through, _) = progress()?;
    Ok(JsonB(json!({
        "rows_deleted": deleted,
        "log_rows_refolded": refolded,
        "folded_through": through
    })))
}

/// Recomputes every rollup for a range of UTC days from the raw log.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "rebuild_rollups"
)]
#[search_path(pg_catalog, pg_temp)]
fn rebuild_rollups(p_from: Option<Date>, p_to: Option<Date>) -> PgResult<JsonB> {
    guarded(|| rebuild(p_from, p_to))
}

/// Hourly rollups older than `cut` go; reads take those hours from the raw
/// log or the daily rollups instead (hourly_kept_from tells them).
pub fn trim_hourly(cut: TimestampWithTimeZone) -> Result<i64> {
    lock()?;
    let (_, kept) = progress()?;
    let newer: Option<bool> = read_one(
        "SELECT pg_catalog.date_trunc('hour', $1, 'UTC') > $2",
        &[cut.into(), kept.into()],
    )?;
    if newer != Some(true) {
        return Ok(0);
    }
    let mut n = 0i64;
    for f in FAMILIES.iter() {
        n += delete_count(
            &format!(
                "DELETE FROM usage_tracker.{} WHERE hour < pg_catalog.date_trunc('hour', $1, 'UTC')",
                f.hourly
            ),
            &[cut.into()],
        )?;
    }
    write_one::<bool>(
        "UPDATE usage_tracker_private.rollup_progress SET hourly_kept_from = pg_catalog.date_trunc('hour', $1, 'UTC') \
         WHERE rollup = $2 RETURNING true",
        &[cut.into(), PROGRESS.into()],
    )?;
    Ok(n)
}

/// Daily rollups older than `cut` (a retention policy the operator set).
pub fn trim_daily(cut: TimestampWithTimeZone) -> Result<i64> {
    lock()?;
    let mut n = 0i64;
    for f in FAMILIES.iter() {
        n += delete_count(
            &format!(
                "DELETE FROM usage_tracker.{} WHERE day < ($1 AT TIME ZONE 'UTC')::date",
                f.daily
            ),
            &[cut.into()],
        )?;
    }
    Ok(n)
}
