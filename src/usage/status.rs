//! Seed 002's reports: the plan's limits with current use, the quota
//! status (ok / approaching_limit / over_limit) and the usage summary.

use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Map, Value};

use super::quotas::quota_state;
use super::rules_for;
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_member, caller};
use crate::limits::MAX_SUMMARY_DAYS;
use crate::orgs::{context, local_midnight, to_pg_date};
use crate::partitions::txn_now;
use crate::spi_util::read_one;
use crate::validate::required;

fn limits(org: Option<Uuid>) -> Result<JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let defs: Vec<(String, Vec<String>)> = Spi::connect(|c| -> Result<_> {
        let mut v = Vec::new();
        for row in c.select(
            if crate::relcache::has_column(super::LIMIT_DEFINITIONS, "per_user")? {
                "SELECT d.limit_key, d.event_types FROM usage_tracker.limit_definitions d WHERE NOT d.per_user ORDER BY d.limit_key"
            } else {
                "SELECT d.limit_key, d.event_types FROM usage_tracker.limit_definitions d ORDER BY d.limit_key"
            },
            None,
            &[],
        )? {
            v.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<String>>(2)?.unwrap_or_default()));
        }
        Ok(v)
    })?;
    let (ps, pe) = ctx.period;
    let mut out = Map::new();
    for (key, types) in defs {
        let rule = rules_for(&ctx.plan, &types[0])?
            .into_iter()
            .find(|r| r.key == key)
            .ok_or_else(|| UsageError::Internal(format!("limit {key}")))?;
        let st = quota_state(&ctx, &rule, now_ts, false)?;
        let mut v = json!({
            "current": st.used,
            "limit": rule.max,
            "within_limit": rule.max < 0 || st.used + st.reserved < rule.max as i128,
            "unit": rule.unit,
        });
        if st.reserved > 0 {
            v["reserved"] = json!(st.reserved);
        }
        if types.len() > 1 {
            let (from, to) = match (st.start, st.end) {
                (Some(s), Some(e)) => (to_pg_date(s)?, to_pg_date(e)?),
                _ => (Date::negative_infinity(), Date::positive_infinity()),
            };
            let per_type: Option<JsonB> = read_one(
                "SELECT coalesce(pg_catalog.jsonb_object_agg(t.type, coalesce(s.total, 0)), '{}'::jsonb) \
                   FROM pg_catalog.unnest($2::text[]) AS t(type) \
                   LEFT JOIN (SELECT u.type, sum(u.count) AS total FROM usage_tracker.organization_usage u \
                               WHERE u.org_id = $1 AND u.type = ANY ($2) AND u.date >= $3 AND u.date < $4 \
                               GROUP BY u.type) s ON s.type = t.type",
                &[org.into(), types.clone().into(), from.into(), to.into()],
            )?;
            // Seed 002 names the token breakdown input_tokens / output_tokens.
            let mut breakdown = Map::new();
            if let Some(Value::Object(m)) = per_type.map(|j| j.0) {
                for (t, n) in m {
                    let name = t
                        .strip_prefix("ai_tokens_")
                        .map(|s| format!("{s}_tokens"))
                        .unwrap_or(t);
                    breakdown.insert(name, n);
                }
            }
            v["breakdown"] = Value::Object(breakdown);
        }
        out.insert(key, v);
    }
    Ok(JsonB(json!({
        "org_id": org.to_string(),
        "tier": ctx.plan,
        "limits": out,
        "period": "current_month",
        "period_start": ps.to_string(),
        "period_end": pe.to_string(),
    })))
}

/// Seed 002's GET /usage/limits: every limit of the organization's plan
/// with current use, limit (-1 = unlimited), within_limit, unit, and the
/// input/output breakdown of tokens, for the current billing period.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_usage_limits"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_usage_limits(p_org_id: Option<Uuid>) -> PgResult<JsonB> {
    guarded(|| limits(p_org_id))
}

fn quota_status(org: Option<Uuid>) -> Result<JsonB> {
    let l = limits(org)?.0;
    let mut worst = 0u8; // 0 ok, 1 approaching, 2 over
    let mut notes = Vec::new();
    if let Some(Value::Object(m)) = l.get("limits") {
        for (key, v) in m {
            let limit = v["limit"].as_i64().unwrap_or(-1) as i128;
            // current is an exact total; one past i128 is over any limit.
            let current: i128 = v["current"].to_string().parse().unwrap_or(i128::MAX / 100);
            if limit < 0 {
                continue;
            }
            let level = if current >= limit {
                2
            } else if current * 100 >= limit * 80 {
                1
            } else {
                0
            };
            if level > 0 {
                notes.push(format!("{key} {current}/{limit}"));
            }
            worst = worst.max(level);
        }
    }
    let (status, message) = match worst {
        0 => ("ok", "Usage is within limits".to_string()),
        1 => (
            "approaching_limit",
            format!("Approaching limit: {}", notes.join(", ")),
        ),
        _ => ("over_limit", format!("Limit reached: {}", notes.join(", "))),
    };
    Ok(JsonB(
        json!({ "org_id": l["org_id"], "tier": l["tier"], "status": status, "message": message }),
    ))
}

/// Seed 002's GET /usage/quota-status: ok, approaching_limit (80% or more of
/// a limit) or over_limit (a limit reached), with a message.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_quota_status"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_quota_status(p_org_id: Option<Uuid>) -> PgResult<JsonB> {
    guarded(|| quota_status(p_org_id))
}

fn summary(org: Option<Uuid>, days: Option<i32>) -> Result<JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    authorize_member(who, org)?;
    let days = required("p_days", days)?;
    crate::validate::in_range("p_days", days, 1, MAX_SUMMARY_DAYS)?;
    let (now_ts, _) = txn_now()?;
    // Whole days from the daily counters; the first, partial day from the
    // raw events (one day at most): exact, and bounded whatever the history.
    let start: Option<TimestampWithTimeZone> = read_one(
        "SELECT $1 - pg_catalog.make_interval(days => $2)",
        &[now_ts.into(), days.into()],
    )?;
    let start = start.ok_or_else(|| UsageError::Internal("window start".into()))?;
    let ctx = context(org, start)?;
    let first_full = ctx.local_date.succ_opt().unwrap_or(ctx.local_date);
    let boundary = local_midnight(first_full, &ctx.time_zone)?;
    let json: Option<JsonB> = read_one(
        "WITH parts AS ( \
            SELECT u.type, u.events, u.count, u.first_at, u.last_at FROM usage_tracker.organization_usage u \
             WHERE u.org_id = $1 AND u.date >= $4 \
            UNION ALL \
            SELECT e.event_type, count(*), sum(e.quantity), min(e.occurred_at), max(e.occurred_at) \
              FROM usage_tracker.usage_events e \
             WHERE e.org_id = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3 GROUP BY e.event_type), \
          t AS (SELECT type, sum(events) AS events, sum(count) AS total, \
                       min(first_at) AS first_at, max(last_at) AS last_at FROM parts GROUP BY type) \
         SELECT pg_catalog.jsonb_build_object( \
            'org_id', $1, 'period_days', $5, \
            'total_events', coalesce((SELECT sum(events) FROM t), 0), \
            'summary_by_type', coalesce((SELECT pg_catalog.jsonb_object_agg(type, pg_catalog.jsonb_build_object( \
                'count', events, 'total_quantity', total, 'first_event', first_at, 'last_event', last_at)) FROM t), '{}'::jsonb), \
            'generated_at', pg_catalog.now())",
        &[org.into(), start.into(), boundary.into(), to_pg_date(first_full)?.into(), days.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("summary".into()))
}

/// Seed 002's GET /usage/summary: events and quantities per type over the
/// last `p_days` days (1..365), exact to the instant.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_usage_summary"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_usage_summary(p_org_id: Option<Uuid>, p_days: Option<i32>) -> PgResult<JsonB> {
    guarded(|| summary(p_org_id, p_days))
}
