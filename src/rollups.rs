//! Incremental rollups of the AI usage log.
//!
//! The log is append-only and every row carries an `ingest_seq` from a
//! sequence. A fold reads the sequence's position, then waits until every
//! transaction that was writing to the log has ended (WaitForLockers: a
//! writer takes its lock on the log before it draws a number, so any row
//! numbered at or below the position is then committed or gone), and adds
//! the rows between the last fold and that position to the rollup — no row
//! lost, none counted twice, and writers never wait for the fold. Late
//! events (a past created_at) fold into their own day. Concurrent folds
//! serialize on an advisory lock.

use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use crate::errors::{at_boundary, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::orgs::to_pg_date;
use crate::spi_util::{read_one, write_one};

const FOLD_LOCK: (i32, i32) = (0x7574, -1);

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

const FOLD_SQL: &str = "INSERT INTO usage_tracker.ai_usage_daily AS d (org_id, day, user_id, customer_id, project_id, cached, \
      requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
      latency_count, latency_sum, first_at, last_at, status, request_type, model_used, provider, \
      input_cost_usd, output_cost_usd, total_cost_usd, potential_cost_usd, user_email, customer_name) \
    SELECT l.org_id, (l.created_at AT TIME ZONE 'UTC')::date, l.user_id, l.customer_id, l.project_id, l.cached, \
      count(*), sum(l.input_tokens), sum(l.output_tokens), sum(l.cache_read_tokens), sum(l.cache_write_tokens), \
      sum(l.reasoning_tokens), sum(l.total_tokens), count(l.latency_ms), coalesce(sum(l.latency_ms), 0), \
      min(l.created_at), max(l.created_at), l.status, l.request_type, l.model_used, l.provider, \
      sum(l.input_cost_usd), sum(l.output_cost_usd), sum(l.total_cost_usd), sum(l.potential_cost_usd), \
      l.user_email, l.customer_name \
    FROM usage_tracker.ai_usage_log l \
    WHERE l.ingest_seq > $1 AND l.ingest_seq <= $2 \
      AND ($3::date IS NULL OR l.created_at >= ($3::timestamp AT TIME ZONE 'UTC')) \
      AND ($4::date IS NULL OR l.created_at < (($4 + 1)::timestamp AT TIME ZONE 'UTC')) \
    GROUP BY l.org_id, 2, l.user_id, l.customer_id, l.project_id, l.cached, l.status, l.request_type, l.model_used, \
      l.provider, l.user_email, l.customer_name \
    ON CONFLICT ON CONSTRAINT ai_usage_daily_key DO UPDATE SET \
      requests = d.requests + EXCLUDED.requests, input_tokens = d.input_tokens + EXCLUDED.input_tokens, \
      output_tokens = d.output_tokens + EXCLUDED.output_tokens, \
      cache_read_tokens = d.cache_read_tokens + EXCLUDED.cache_read_tokens, \
      cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens, \
      reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens, \
      total_tokens = d.total_tokens + EXCLUDED.total_tokens, latency_count = d.latency_count + EXCLUDED.latency_count, \
      latency_sum = d.latency_sum + EXCLUDED.latency_sum, first_at = LEAST(d.first_at, EXCLUDED.first_at), \
      last_at = GREATEST(d.last_at, EXCLUDED.last_at), input_cost_usd = d.input_cost_usd + EXCLUDED.input_cost_usd, \
      output_cost_usd = d.output_cost_usd + EXCLUDED.output_cost_usd, \
      total_cost_usd = d.total_cost_usd + EXCLUDED.total_cost_usd, \
      potential_cost_usd = d.potential_cost_usd + EXCLUDED.potential_cost_usd";

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

/// Folds the rows logged since the last fold; returns how many.
pub fn fold() -> Result<serde_json::Value> {
    check_read_committed()?;
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[FOLD_LOCK.0.into(), FOLD_LOCK.1.into()],
    )?;
    write_one::<bool>(
        "INSERT INTO usage_tracker_private.rollup_progress (rollup) VALUES ('ai_usage_daily') \
         ON CONFLICT (rollup) DO NOTHING RETURNING true",
        &[],
    )?;
    let from: Option<i64> = read_one(
        "SELECT p.folded_through FROM usage_tracker_private.rollup_progress p WHERE p.rollup = 'ai_usage_daily'",
        &[],
    )?;
    let from = from.unwrap_or(0);
    let to: Option<i64> = read_one(
        "SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM usage_tracker_private.ai_usage_log_ingest_seq s",
        &[],
    )?;
    let to = to.unwrap_or(0);
    if to <= from {
        return Ok(json!({ "rows_folded": 0, "folded_through": from }));
    }
    wait_for_log_writers()?;
    let folded: Option<i64> = read_one(
        "SELECT count(*) FROM usage_tracker.ai_usage_log l WHERE l.ingest_seq > $1 AND l.ingest_seq <= $2",
        &[from.into(), to.into()],
    )?;
    Spi::connect_mut(|c| -> Result<()> {
        c.update(
            FOLD_SQL,
            None,
            &[
                from.into(),
                to.into(),
                Option::<Date>::None.into(),
                Option::<Date>::None.into(),
            ],
        )?;
        Ok(())
    })?;
    write_one::<bool>(
        "UPDATE usage_tracker_private.rollup_progress SET folded_through = $1, updated_at = pg_catalog.now() \
         WHERE rollup = 'ai_usage_daily' RETURNING true",
        &[to.into()],
    )?;
    Ok(json!({ "rows_folded": folded.unwrap_or(0), "folded_through": to }))
}

fn range(from: Option<Date>, to: Option<Date>) -> Result<(Date, Date)> {
    let (s, e) = crate::orgs::date_range(from, to, ("p_from", "p_to"))?;
    Ok((to_pg_date(s)?, to_pg_date(e)?))
}

fn verify(from: Option<Date>, to: Option<Date>) -> Result<JsonB> {
    require_trusted("verify_rollups")?;
    let (from, to) = range(from, to)?;
    let json: Option<JsonB> = read_one(
        "WITH w AS (SELECT p.folded_through AS seq FROM usage_tracker_private.rollup_progress p WHERE p.rollup = 'ai_usage_daily'), \
              raw AS (SELECT l.org_id, (l.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS requests, \
                             sum(l.total_tokens) AS tokens, sum(l.total_cost_usd) AS cost, sum(l.potential_cost_usd) AS potential \
                        FROM usage_tracker.ai_usage_log l, w \
                       WHERE l.ingest_seq <= w.seq AND l.created_at >= ($1::timestamp AT TIME ZONE 'UTC') \
                         AND l.created_at < (($2 + 1)::timestamp AT TIME ZONE 'UTC') GROUP BY 1, 2), \
              cube AS (SELECT d.org_id, d.day, sum(d.requests) AS requests, sum(d.total_tokens) AS tokens, \
                              sum(d.total_cost_usd) AS cost, sum(d.potential_cost_usd) AS potential \
                         FROM usage_tracker.ai_usage_daily d WHERE d.day >= $1 AND d.day <= $2 GROUP BY 1, 2), \
              diff AS (SELECT coalesce(r.org_id, c.org_id) AS org_id, coalesce(r.day, c.day) AS day, \
                              r.requests AS raw_requests, c.requests AS rollup_requests, r.cost AS raw_cost, c.cost AS rollup_cost \
                         FROM raw r FULL JOIN cube c ON c.org_id = r.org_id AND c.day = r.day \
                        WHERE (r.requests, r.tokens, r.cost, r.potential) IS DISTINCT FROM (c.requests, c.tokens, c.cost, c.potential)) \
         SELECT pg_catalog.jsonb_build_object('from', $1, 'to', $2, 'folded_through', (SELECT seq FROM w), \
                'differences', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(diff) ORDER BY day, org_id) FROM diff), '[]'::jsonb))",
        &[from.into(), to.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("verify".into()))
}

/// Compares the daily rollup with the raw log (rows folded so far) per
/// organization and day from p_from to p_to; lists every difference.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "verify_rollups"
)]
#[search_path(pg_catalog, pg_temp)]
fn verify_rollups(p_from: Option<Date>, p_to: Option<Date>) -> PgResult<JsonB> {
    at_boundary(verify(p_from, p_to))
}

fn rebuild(from: Option<Date>, to: Option<Date>) -> Result<JsonB> {
    require_trusted("rebuild_rollups")?;
    let (from, to) = range(from, to)?;
    check_read_committed()?;
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[FOLD_LOCK.0.into(), FOLD_LOCK.1.into()],
    )?;
    let through: Option<i64> = read_one(
        "SELECT p.folded_through FROM usage_tracker_private.rollup_progress p WHERE p.rollup = 'ai_usage_daily'",
        &[],
    )?;
    let through = through.unwrap_or(0);
    let deleted: Option<i64> = write_one(
        "WITH d AS (DELETE FROM usage_tracker.ai_usage_daily WHERE day >= $1 AND day <= $2 RETURNING 1) SELECT count(*) FROM d",
        &[from.into(), to.into()],
    )?;
    Spi::connect_mut(|c| -> Result<()> {
        c.update(
            FOLD_SQL,
            None,
            &[
                0i64.into(),
                through.into(),
                Some(from).into(),
                Some(to).into(),
            ],
        )?;
        Ok(())
    })?;
    let rows: Option<i64> = read_one(
        "SELECT count(*) FROM usage_tracker.ai_usage_daily WHERE day >= $1 AND day <= $2",
        &[from.into(), to.into()],
    )?;
    Ok(JsonB(
        json!({ "rows_deleted": deleted.unwrap_or(0), "rows_written": rows.unwrap_or(0), "folded_through": through }),
    ))
}

/// Recomputes the daily rollup from p_from to p_to from the raw log.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "rebuild_rollups"
)]
#[search_path(pg_catalog, pg_temp)]
fn rebuild_rollups(p_from: Option<Date>, p_to: Option<Date>) -> PgResult<JsonB> {
    at_boundary(rebuild(p_from, p_to))
}
