//! Seed 002's usage events and limit checks, and race-free quotas: an
//! atomic check-and-consume. Reservations are in reservations.rs, the
//! seed's limit and quota reports in status.rs, plans in plans.rs.
//!
//! Every decision is taken on exact totals: quantities, used and reserved
//! amounts are added as i128 (sums read from SQL come as numeric), so no
//! total wraps and no check says yes on arithmetic it could not do.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::{json, Value};

use super::{ensure_quota_row, known_event_type, pg_period_start, record_event, rules_for};
use super::{Increment, LimitRule};
use crate::ai_log::CLOCK_SKEW;
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_member, caller, Caller};
use crate::jsonb::Jsonb;
use crate::orgs::{context, to_pg_date, OrgContext};
use crate::partitions::{to_utc, txn_now, MAX_YEAR, MIN_YEAR};
use crate::spi_util::{plan, read_one};
use crate::validate::{self, required};

/// A known event type (22004, 22001, 22023).
pub fn check_event_type(t: &Option<String>) -> Result<String> {
    let t = validate::name("p_event_type", t)?;
    if !known_event_type(&t)? {
        return Err(UsageError::invalid(
            "p_event_type",
            format!("'{t}' is not a known event type (see usage_tracker.event_types; service_role may add_event_type)"),
        ));
    }
    Ok(t)
}

pub fn date_json(d: Option<chrono::NaiveDate>) -> Value {
    d.map(|d| Value::String(d.to_string()))
        .unwrap_or(Value::Null)
}

/// Used and reserved quantity of a limit in the period containing the
/// context's local date.
pub struct QuotaState {
    pub used: i128,
    pub reserved: i128,
    pub start: Option<chrono::NaiveDate>,
    pub end: Option<chrono::NaiveDate>,
}

/// The state of `rule` now; `lock` takes the period row's lock first (held
/// to the end of the transaction: concurrent deciders queue on it).
pub fn quota_state(
    ctx: &OrgContext,
    rule: &LimitRule,
    now_ts: TimestampWithTimeZone,
    lock: bool,
) -> Result<QuotaState> {
    // Used: the period row (locked when deciding), or, read-only and before
    // the row exists, what it would start from (initial_used). Reserved: open reservations
    // of the rule's event types that have not expired (in the billing
    // period, or any for a total limit). Sums travel as numeric text.
    const LOCKED: &str = "SELECT (SELECT sum(x.used) FROM (SELECT q.used FROM usage_tracker_private.quota_usage q \
                                 WHERE q.org_id = $1 AND q.limit_key = $2 AND q.period_start = $3 \
                                 ORDER BY q.slot FOR UPDATE OF q) x)::text, \
          (SELECT sum(r.quantity)::text FROM usage_tracker.quota_reservations r \
            WHERE r.org_id = $1 AND r.status = 'open' AND r.expires_at > $5 AND r.event_type = ANY ($4) \
              AND ($6 OR r.period_start = $7))";
    const READ: &str = "SELECT (SELECT sum(q.used) FROM usage_tracker_private.quota_usage q \
                             WHERE q.org_id = $1 AND q.limit_key = $2 AND q.period_start = $3)::text, \
          (SELECT sum(r.quantity)::text FROM usage_tracker.quota_reservations r \
            WHERE r.org_id = $1 AND r.status = 'open' AND r.expires_at > $5 AND r.event_type = ANY ($4) \
              AND ($6 OR r.period_start = $7))";
    let (start, end) = rule.period(ctx.period);
    let args = vec![
        ctx.org_id.into(),
        rule.key.as_str().into(),
        pg_period_start(start)?.into(),
        rule.event_types.clone().into(),
        now_ts.into(),
        rule.total.into(),
        to_pg_date(ctx.period.0)?.into(),
    ];
    // Before ALTER EXTENSION ... UPDATE to 0.3.0 a period has one row.
    const LOCKED_0_2: &str = "SELECT (SELECT sum(x.used) FROM (SELECT q.used FROM usage_tracker_private.quota_usage q \
                                 WHERE q.org_id = $1 AND q.limit_key = $2 AND q.period_start = $3 FOR UPDATE OF q) x)::text, \
          (SELECT sum(r.quantity)::text FROM usage_tracker.quota_reservations r \
            WHERE r.org_id = $1 AND r.status = 'open' AND r.expires_at > $5 AND r.event_type = ANY ($4) \
              AND ($6 OR r.period_start = $7))";
    let legacy = !super::schema_0_3()?;
    let read = || {
        Spi::connect_mut(|c| -> Result<(Option<String>, Option<String>)> {
            let sql = match (lock, legacy) {
                (true, false) => LOCKED,
                (true, true) => LOCKED_0_2,
                (false, _) => READ,
            };
            let p = plan(c, sql, &args, lock)?;
            let t = if lock {
                c.update(&*p, Some(1), &args)?
            } else {
                c.select(&*p, Some(1), &args)?
            };
            if t.is_empty() {
                return Ok((None, None));
            }
            Ok(t.first().get_two::<String, String>()?)
        })
    };
    let (mut used, mut reserved) = read()?;
    if lock && used.is_none() {
        // A decision needs the period's rows (every slot) to lock.
        ensure_quota_row(ctx, rule, start, end)?;
        (used, reserved) = read()?;
    }
    // Read-only, before the period row exists: what it would start from.
    let used = match used {
        Some(u) => validate::total_i128("used", Some(u))?,
        None => super::initial_used(ctx, rule, start, end)?,
    };
    Ok(QuotaState {
        used,
        reserved: validate::total_i128("reserved", reserved)?,
        start,
        end,
    })
}

/// What is left under `rule` (-1: unlimited), never below zero.
pub fn remaining(rule: &LimitRule, used: i128, reserved: i128) -> i128 {
    if rule.max < 0 {
        -1
    } else {
        (rule.max as i128 - used - reserved).max(0)
    }
}

/// The answer for one limit: the rule, its state, and the decision.
pub fn quota_json(rule: &LimitRule, st: &QuotaState, allowed: bool, current: i128) -> Value {
    json!({
        "allowed": allowed,
        "current": current,
        "limit": rule.max,
        "remaining": remaining(rule, current, st.reserved),
        "reserved": st.reserved,
        "limit_key": rule.key,
        "unit": rule.unit,
        "period_start": date_json(st.start),
        "period_end": date_json(st.end),
    })
}

/// Usage of an event type with no limit on it, in the billing period.
pub fn unlimited_json(
    ctx: &OrgContext,
    event_type: &str,
    extra: i128,
    allowed: bool,
) -> Result<Value> {
    let (s, e) = ctx.period;
    let used: Option<String> = read_one(
        "SELECT sum(u.count)::text FROM usage_tracker.organization_usage u \
         WHERE u.org_id = $1 AND u.type = $2 AND u.date >= $3 AND u.date < $4",
        &[
            ctx.org_id.into(),
            event_type.into(),
            to_pg_date(s)?.into(),
            to_pg_date(e)?.into(),
        ],
    )?;
    let used = validate::total_i128("current", used)?;
    Ok(json!({
        "allowed": allowed, "current": used + extra, "limit": -1, "remaining": -1,
        "reserved": 0, "limit_key": Value::Null, "unit": Value::Null,
        "period_start": s.to_string(), "period_end": e.to_string(),
    }))
}

/// Checks every limit the event type counts against, most constraining
/// first; with `lock`, holds the period rows until the transaction ends.
/// Allowed only if `quantity` fits under every limit with what is used and
/// reserved (exact i128 sums: nothing wraps).
pub fn evaluate(
    ctx: &OrgContext,
    rules: &[LimitRule],
    now_ts: TimestampWithTimeZone,
    quantity: i64,
    lock: bool,
) -> Result<(bool, Option<(usize, QuotaState)>)> {
    let mut allowed = true;
    let mut tightest: Option<(usize, QuotaState, i128)> = None;
    for (i, rule) in rules.iter().enumerate() {
        let st = quota_state(ctx, rule, now_ts, lock)?;
        let room = if rule.max < 0 {
            i128::MAX
        } else {
            rule.max as i128 - st.used - st.reserved - quantity as i128
        };
        if room < 0 {
            allowed = false;
        }
        let better = match &tightest {
            None => true,
            Some((_, _, r)) => room < *r,
        };
        if better {
            tightest = Some((i, st, room));
        }
    }
    Ok((allowed, tightest.map(|(i, st, _)| (i, st))))
}

/// When a usage event happened: now, or a time the caller gave (the past
/// only for trusted callers).
pub fn event_time(who: Caller, at: Option<TimestampWithTimeZone>) -> Result<TimestampWithTimeZone> {
    let (now_ts, now) = txn_now()?;
    let Some(at) = at else { return Ok(now_ts) };
    let when =
        to_utc(at).ok_or_else(|| UsageError::invalid("p_occurred_at", "must be a finite time"))?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&chrono::Datelike::year(&when)) {
        return Err(UsageError::invalid(
            "p_occurred_at",
            format!("must be between {MIN_YEAR} and {MAX_YEAR}"),
        ));
    }
    if when > now + CLOCK_SKEW {
        return Err(UsageError::invalid("p_occurred_at", "is in the future"));
    }
    if when < now - CLOCK_SKEW && who != Caller::Trusted {
        return Err(UsageError::forbidden(
            "only service_role may record usage in the past (p_occurred_at)",
        ));
    }
    Ok(at)
}

fn track(
    org: Option<Uuid>,
    event_type: Option<String>,
    quantity: Option<i64>,
    metadata: Option<Jsonb>,
    occurred_at: Option<TimestampWithTimeZone>,
) -> Result<Uuid> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    let user = authorize_member(who, org)?;
    let event_type = check_event_type(&event_type)?;
    let quantity = validate::quantity("p_quantity", quantity)?;
    validate::metadata("p_metadata", &metadata)?;
    let at = event_time(who, occurred_at)?;
    let ctx = context(org, at)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    let (id, _) = record_event(
        Increment {
            ctx: &ctx,
            event_type: &event_type,
            quantity,
            occurred_at: at,
            counter_date: None,
            user_id: user,
            metadata,
            source: "event",
        },
        &rules,
    )?;
    Ok(id)
}

/// Seed 002: records one usage event (unconditionally: usage that happened
/// counts even past a limit; use consume_quota to check and record at once).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "track_usage_event"
)]
#[search_path(pg_catalog, pg_temp)]
fn track_usage_event(
    p_org_id: Option<Uuid>,
    p_event_type: Option<String>,
    p_quantity: Option<i64>,
    p_metadata: Option<Jsonb>,
    p_occurred_at: Option<TimestampWithTimeZone>,
) -> PgResult<Uuid> {
    guarded(|| {
        track(
            p_org_id,
            p_event_type,
            p_quantity,
            p_metadata,
            p_occurred_at,
        )
    })
}

fn check(org: Option<Uuid>, event_type: Option<String>) -> Result<pgrx::JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    authorize_member(who, org)?;
    let event_type = check_event_type(&event_type)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    let limited: Vec<LimitRule> = rules.into_iter().filter(|r| r.max >= 0).collect();
    let mut v = match evaluate(&ctx, &limited, now_ts, 0, false)? {
        (_, Some((i, st))) => {
            let r = &limited[i];
            // The seed's current is a bigint: a total past it is refused.
            validate::to_bigint("current", st.used)?;
            let mut v = quota_json(r, &st, true, st.used);
            v["within_limit"] = json!(st.used + st.reserved < r.max as i128);
            v
        }
        (_, None) => {
            let mut v = unlimited_json(&ctx, &event_type, 0, true)?;
            validate::to_bigint(
                "current",
                v["current"].as_i64().map_or(i128::MAX, i128::from),
            )?;
            v["within_limit"] = json!(true);
            v
        }
    };
    if let Some(o) = v.as_object_mut() {
        o.remove("allowed");
        o.insert("tier".into(), json!(ctx.plan));
    }
    Ok(pgrx::JsonB(v))
}

/// Seed 002's check_usage_limit: within_limit, current and limit (-1 =
/// unlimited) for the event type on the organization's plan, this billing
/// period. Reads one period row: its cost does not grow with history.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "check_usage_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn check_usage_limit(
    p_org_id: Option<Uuid>,
    p_event_type: Option<String>,
) -> PgResult<pgrx::JsonB> {
    guarded(|| check(p_org_id, p_event_type))
}

fn consume(
    org: Option<Uuid>,
    event_type: Option<String>,
    quantity: Option<i64>,
    metadata: Option<Jsonb>,
) -> Result<pgrx::JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    let user = authorize_member(who, org)?;
    let event_type = check_event_type(&event_type)?;
    let quantity = validate::quantity("p_quantity", quantity)?;
    validate::metadata("p_metadata", &metadata)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    // Lock every period row the event counts against (in key order), then
    // decide: concurrent callers queue here and see each other's usage.
    let (allowed, tightest) = evaluate(&ctx, &rules, now_ts, quantity, true)?;
    let added = if allowed { quantity as i128 } else { 0 };
    let mut out = match &tightest {
        Some((i, st)) => quota_json(&rules[*i], st, allowed, st.used + added),
        None => unlimited_json(&ctx, &event_type, added, allowed)?,
    };
    if allowed {
        let (id, _) = record_event(
            Increment {
                ctx: &ctx,
                event_type: &event_type,
                quantity,
                occurred_at: now_ts,
                counter_date: None,
                user_id: user,
                metadata,
                source: "quota",
            },
            &rules,
        )?;
        out["event_id"] = json!(id.to_string());
    }
    Ok(pgrx::JsonB(out))
}

/// Checks and records in one atomic step: allowed only if the quantity fits
/// under every limit the event counts against (open reservations
/// included). N concurrent callers at the limit let exactly the remaining
/// quantity through. The public wrapper can raise PT429 (HTTP 429 in
/// PostgREST) instead of returning allowed = false.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "consume_quota"
)]
#[search_path(pg_catalog, pg_temp)]
fn consume_quota(
    p_org_id: Option<Uuid>,
    p_event_type: Option<String>,
    p_quantity: Option<i64>,
    p_metadata: Option<Jsonb>,
) -> PgResult<pgrx::JsonB> {
    guarded(|| consume(p_org_id, p_event_type, p_quantity, p_metadata))
}
