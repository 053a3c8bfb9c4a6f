//! Seed 002: usage events, plans and limits, quota status — and race-free
//! quotas: atomic check-and-consume, and reservations.

use chrono::Duration;
use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Map, Value};

use super::{
    authorize_member, check_metadata, check_quantity, ensure_quota_row, known_event_type,
    pg_period_start, record_event, rules_for, Increment, LimitRule,
};
use crate::ai_log::CLOCK_SKEW;
use crate::errors::{at_boundary, PgResult, Result, UsageError};
use crate::identity::{caller, require_trusted, Caller};
use crate::orgs::{billing_period, context, local_midnight, to_pg_date, valid_name, OrgContext};
use crate::partitions::{to_utc, txn_now, MAX_YEAR, MIN_YEAR};
use crate::spi_util::{plan, read_one, write_one};

pub const MAX_SUMMARY_DAYS: i32 = 365;
pub const DEFAULT_RESERVATION_TTL_SECONDS: i32 = 900;
pub const MAX_RESERVATION_TTL_SECONDS: i32 = 86_400;

fn check_event_type(t: &Option<String>) -> Result<String> {
    let t = t.clone().ok_or(UsageError::NullValue("p_event_type"))?;
    if t.is_empty() {
        return Err(UsageError::invalid("p_event_type", "must not be empty"));
    }
    if t.len() > 63 {
        return Err(UsageError::TooLong {
            name: "p_event_type",
            max: 63,
        });
    }
    if !valid_name(&t) || !known_event_type(&t)? {
        return Err(UsageError::invalid(
            "p_event_type",
            format!("'{t}' is not a known event type (see usage_tracker.event_types; service_role may add_event_type)"),
        ));
    }
    Ok(t)
}

fn date_json(d: Option<chrono::NaiveDate>) -> Value {
    d.map(|d| Value::String(d.to_string()))
        .unwrap_or(Value::Null)
}

/// Used and reserved quantity of a limit in the period containing the
/// context's local date; `lock` takes the period row's lock first.
struct QuotaState {
    used: i64,
    reserved: i64,
    start: Option<chrono::NaiveDate>,
    end: Option<chrono::NaiveDate>,
}

fn quota_state(
    ctx: &OrgContext,
    rule: &LimitRule,
    now_ts: TimestampWithTimeZone,
    lock: bool,
) -> Result<QuotaState> {
    // Used: the period row (locked when deciding), or, read-only and before
    // the row exists, what it would start from. Reserved: open reservations
    // of the rule's event types that have not expired (in the billing
    // period, or any for a total limit).
    const LOCKED: &str = "SELECT q.used, \
          (SELECT coalesce(sum(r.quantity), 0)::bigint FROM usage_tracker.quota_reservations r \
            WHERE r.org_id = $1 AND r.status = 'open' AND r.expires_at > $5 AND r.event_type = ANY ($4) \
              AND ($6 OR r.period_start = $7)) \
        FROM usage_tracker_private.quota_usage q \
        WHERE q.org_id = $1 AND q.limit_key = $2 AND q.period_start = $3 FOR UPDATE OF q";
    const READ: &str = "SELECT coalesce((SELECT q.used FROM usage_tracker_private.quota_usage q \
                             WHERE q.org_id = $1 AND q.limit_key = $2 AND q.period_start = $3), \
                           (SELECT coalesce(sum(u.count), 0)::bigint FROM usage_tracker.organization_usage u \
                             WHERE u.org_id = $1 AND u.type = ANY ($4) AND u.date >= $3 \
                               AND ($8::date IS NULL OR u.date < $8))), \
          (SELECT coalesce(sum(r.quantity), 0)::bigint FROM usage_tracker.quota_reservations r \
            WHERE r.org_id = $1 AND r.status = 'open' AND r.expires_at > $5 AND r.event_type = ANY ($4) \
              AND ($6 OR r.period_start = $7))";
    let (start, end) = rule.period(ctx.anchor_day, ctx.local_date);
    if lock {
        ensure_quota_row(ctx.org_id, rule, start, end)?;
    }
    let billing_start = billing_period(ctx.local_date, ctx.anchor_day).0;
    let end_arg: Option<Date> = match end {
        Some(e) => Some(to_pg_date(e)?),
        None => None,
    };
    let mut args = vec![
        ctx.org_id.into(),
        rule.key.as_str().into(),
        pg_period_start(start)?.into(),
        rule.event_types.clone().into(),
        now_ts.into(),
        rule.total.into(),
        to_pg_date(billing_start)?.into(),
    ];
    if !lock {
        args.push(end_arg.into());
    }
    let (used, reserved) = Spi::connect_mut(|c| -> Result<(Option<i64>, Option<i64>)> {
        let p = plan(c, if lock { LOCKED } else { READ }, &args, lock)?;
        let t = if lock {
            c.update(&*p, Some(1), &args)?
        } else {
            c.select(&*p, Some(1), &args)?
        };
        if t.is_empty() {
            return Ok((None, None));
        }
        Ok(t.first().get_two::<i64, i64>()?)
    })?;
    Ok(QuotaState {
        used: used.unwrap_or(0),
        reserved: reserved.unwrap_or(0),
        start,
        end,
    })
}

fn remaining(rule: &LimitRule, used: i64, reserved: i64) -> i64 {
    if rule.max < 0 {
        -1
    } else {
        (rule.max - used - reserved).max(0)
    }
}

/// The answer for one limit: the rule, its state, and the decision.
fn quota_json(rule: &LimitRule, st: &QuotaState, allowed: bool, current: i64) -> Value {
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
fn unlimited_json(ctx: &OrgContext, event_type: &str, extra: i64, allowed: bool) -> Result<Value> {
    let (s, e) = billing_period(ctx.local_date, ctx.anchor_day);
    let used: Option<i64> = read_one(
        "SELECT coalesce(sum(u.count), 0)::bigint FROM usage_tracker.organization_usage u \
         WHERE u.org_id = $1 AND u.type = $2 AND u.date >= $3 AND u.date < $4",
        &[
            ctx.org_id.into(),
            event_type.into(),
            to_pg_date(s)?.into(),
            to_pg_date(e)?.into(),
        ],
    )?;
    Ok(json!({
        "allowed": allowed, "current": used.unwrap_or(0) + extra, "limit": -1, "remaining": -1,
        "reserved": 0, "limit_key": Value::Null, "unit": Value::Null,
        "period_start": s.to_string(), "period_end": e.to_string(),
    }))
}

/// Checks every limit the event type counts against, most constraining
/// first; with `lock`, holds the period rows until the transaction ends.
fn evaluate(
    ctx: &OrgContext,
    rules: &[LimitRule],
    now_ts: TimestampWithTimeZone,
    quantity: i64,
    lock: bool,
) -> Result<(bool, Option<(usize, QuotaState)>)> {
    let mut allowed = true;
    let mut tightest: Option<(usize, QuotaState, i64)> = None;
    for (i, rule) in rules.iter().enumerate() {
        let st = quota_state(ctx, rule, now_ts, lock)?;
        let fits = rule.max < 0 || st.used + st.reserved + quantity <= rule.max;
        let room = if rule.max < 0 {
            i64::MAX
        } else {
            rule.max - st.used - st.reserved - quantity
        };
        if !fits {
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

fn user_time(who: Caller, at: Option<TimestampWithTimeZone>) -> Result<TimestampWithTimeZone> {
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
    metadata: Option<JsonB>,
    occurred_at: Option<TimestampWithTimeZone>,
) -> Result<Uuid> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let event_type = check_event_type(&event_type)?;
    let quantity = check_quantity(quantity)?;
    check_metadata(&metadata)?;
    let user = authorize_member(who, org)?;
    let at = user_time(who, occurred_at)?;
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
    p_metadata: Option<JsonB>,
    p_occurred_at: Option<TimestampWithTimeZone>,
) -> PgResult<Uuid> {
    at_boundary(track(
        p_org_id,
        p_event_type,
        p_quantity,
        p_metadata,
        p_occurred_at,
    ))
}

fn check(org: Option<Uuid>, event_type: Option<String>) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let event_type = check_event_type(&event_type)?;
    authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    let limited: Vec<LimitRule> = rules.into_iter().filter(|r| r.max >= 0).collect();
    let mut v = match evaluate(&ctx, &limited, now_ts, 0, false)? {
        (_, Some((i, st))) => {
            let r = &limited[i];
            let mut v = quota_json(r, &st, true, st.used);
            v["within_limit"] = json!(st.used + st.reserved < r.max);
            v
        }
        (_, None) => {
            let mut v = unlimited_json(&ctx, &event_type, 0, true)?;
            v["within_limit"] = json!(true);
            v
        }
    };
    if let Some(o) = v.as_object_mut() {
        o.remove("allowed");
        o.insert("tier".into(), json!(ctx.plan));
    }
    Ok(JsonB(v))
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
fn check_usage_limit(p_org_id: Option<Uuid>, p_event_type: Option<String>) -> PgResult<JsonB> {
    at_boundary(check(p_org_id, p_event_type))
}

fn consume(
    org: Option<Uuid>,
    event_type: Option<String>,
    quantity: Option<i64>,
    metadata: Option<JsonB>,
) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let event_type = check_event_type(&event_type)?;
    let quantity = check_quantity(quantity)?;
    check_metadata(&metadata)?;
    let user = authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    // Lock every period row the event counts against (in key order), then
    // decide: concurrent callers queue here and see each other's usage.
    let (allowed, tightest) = evaluate(&ctx, &rules, now_ts, quantity, true)?;
    let mut out = match &tightest {
        Some((i, st)) => {
            let current = if allowed { st.used + quantity } else { st.used };
            quota_json(&rules[*i], st, allowed, current)
        }
        None => unlimited_json(
            &ctx,
            &event_type,
            if allowed { quantity } else { 0 },
            allowed,
        )?,
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
    Ok(JsonB(out))
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
    p_metadata: Option<JsonB>,
) -> PgResult<JsonB> {
    at_boundary(consume(p_org_id, p_event_type, p_quantity, p_metadata))
}

fn reserve(
    org: Option<Uuid>,
    event_type: Option<String>,
    quantity: Option<i64>,
    ttl_seconds: Option<i32>,
) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let event_type = check_event_type(&event_type)?;
    let quantity = check_quantity(quantity)?;
    let ttl = ttl_seconds.unwrap_or(DEFAULT_RESERVATION_TTL_SECONDS);
    if !(1..=MAX_RESERVATION_TTL_SECONDS).contains(&ttl) {
        return Err(UsageError::out_of_range(
            "p_ttl_seconds",
            format!("{ttl} is not between 1 and {MAX_RESERVATION_TTL_SECONDS}"),
        ));
    }
    let user = authorize_member(who, org)?;
    let (now_ts, now) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    let (allowed, tightest) = evaluate(&ctx, &rules, now_ts, quantity, true)?;
    let mut out = match &tightest {
        Some((i, st)) => {
            let reserved = if allowed {
                st.reserved + quantity
            } else {
                st.reserved
            };
            let mut v = quota_json(&rules[*i], st, allowed, st.used);
            v["reserved"] = json!(reserved);
            v["remaining"] = json!(remaining(&rules[*i], st.used, reserved));
            v
        }
        None => unlimited_json(&ctx, &event_type, 0, allowed)?,
    };
    if allowed {
        let expires = now + Duration::seconds(ttl as i64);
        let period_start = billing_period(ctx.local_date, ctx.anchor_day).0;
        let row: Option<Uuid> = write_one(
            "INSERT INTO usage_tracker.quota_reservations (org_id, user_id, event_type, quantity, period_start, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6 + pg_catalog.make_interval(secs => $7)) RETURNING reservation_id",
            &[
                org.into(),
                user.into(),
                event_type.as_str().into(),
                quantity.into(),
                to_pg_date(period_start)?.into(),
                now_ts.into(),
                (ttl as f64).into(),
            ],
        )?;
        out["reservation_id"] = json!(row.map(|u| u.to_string()));
        out["expires_at"] = json!(expires.to_rfc3339());
    }
    Ok(JsonB(out))
}

/// Reserves an estimated quantity before a request: allowed only if it fits
/// (like consume_quota); the reservation counts against the limit until it
/// is committed, released, or expires after p_ttl_seconds (default 900).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "reserve_quota"
)]
#[search_path(pg_catalog, pg_temp)]
fn reserve_quota(
    p_org_id: Option<Uuid>,
    p_event_type: Option<String>,
    p_quantity: Option<i64>,
    p_ttl_seconds: Option<i32>,
) -> PgResult<JsonB> {
    at_boundary(reserve(p_org_id, p_event_type, p_quantity, p_ttl_seconds))
}

struct Reservation {
    user_id: Option<Uuid>,
    event_type: String,
    quantity: i64,
    status: String,
    expired: bool,
}

/// Locks a reservation and checks the caller may resolve it.
fn lock_reservation(who: Caller, org: Uuid, id: Uuid) -> Result<Reservation> {
    authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    let r = Spi::connect_mut(|c| -> Result<Option<Reservation>> {
        let args = [org.into(), id.into(), now_ts.into()];
        let p = plan(
            c,
            "SELECT r.user_id, r.event_type, r.quantity, r.status, r.expires_at <= $3 \
             FROM usage_tracker.quota_reservations r WHERE r.org_id = $1 AND r.reservation_id = $2 FOR UPDATE",
            &args,
            true,
        )?;
        let t = c.update(&*p, Some(1), &args)?;
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        Ok(Some(Reservation {
            user_id: row.get::<Uuid>(1)?,
            event_type: row.get::<String>(2)?.unwrap_or_default(),
            quantity: row.get::<i64>(3)?.unwrap_or(0),
            status: row.get::<String>(4)?.unwrap_or_default(),
            expired: row.get::<bool>(5)?.unwrap_or(false),
        }))
    })?
    .ok_or_else(|| UsageError::invalid("p_reservation_id", "no such reservation in this organization"))?;
    if let Caller::User(me) = who {
        if r.user_id.is_some() && r.user_id != Some(me) && super::authorize_admin(who, org).is_err()
        {
            return Err(UsageError::forbidden("another user's reservation"));
        }
    }
    Ok(r)
}

fn commit(
    org: Option<Uuid>,
    id: Option<Uuid>,
    quantity: Option<i64>,
    metadata: Option<JsonB>,
) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let id = id.ok_or(UsageError::NullValue("p_reservation_id"))?;
    check_metadata(&metadata)?;
    let r = lock_reservation(who, org, id)?;
    if r.status != "open" {
        return Err(UsageError::NotOpen(format!("reservation is {}", r.status)));
    }
    if r.expired {
        return Err(UsageError::NotOpen("reservation has expired".into()));
    }
    let quantity = check_quantity(Some(quantity.unwrap_or(r.quantity)))?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &r.event_type)?;
    let user = match who {
        Caller::User(me) => Some(me),
        Caller::Trusted => r.user_id,
    };
    let (event_id, _) = record_event(
        Increment {
            ctx: &ctx,
            event_type: &r.event_type,
            quantity,
            occurred_at: now_ts,
            counter_date: None,
            user_id: user,
            metadata,
            source: "reservation",
        },
        &rules,
    )?;
    write_one::<bool>(
        "UPDATE usage_tracker.quota_reservations SET status = 'committed', committed_quantity = $3, \
         resolved_at = pg_catalog.now() WHERE org_id = $1 AND reservation_id = $2 RETURNING true",
        &[org.into(), id.into(), quantity.into()],
    )?;
    Ok(JsonB(json!({
        "committed": true, "reservation_id": id.to_string(), "event_id": event_id.to_string(),
        "reserved_quantity": r.quantity, "quantity": quantity,
    })))
}

/// Commits a reservation with the actual quantity (default: the reserved
/// one), recording it as usage. Committing a released, committed or expired
/// reservation fails with 55000 and changes nothing.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "commit_reservation"
)]
#[search_path(pg_catalog, pg_temp)]
fn commit_reservation(
    p_org_id: Option<Uuid>,
    p_reservation_id: Option<Uuid>,
    p_quantity: Option<i64>,
    p_metadata: Option<JsonB>,
) -> PgResult<JsonB> {
    at_boundary(commit(p_org_id, p_reservation_id, p_quantity, p_metadata))
}

fn release(org: Option<Uuid>, id: Option<Uuid>) -> Result<bool> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let id = id.ok_or(UsageError::NullValue("p_reservation_id"))?;
    let r = lock_reservation(who, org, id)?;
    match r.status.as_str() {
        "open" => {
            let status = if r.expired { "expired" } else { "released" };
            write_one::<bool>(
                "UPDATE usage_tracker.quota_reservations SET status = $3, resolved_at = pg_catalog.now() \
                 WHERE org_id = $1 AND reservation_id = $2 RETURNING true",
                &[org.into(), id.into(), status.into()],
            )?;
            Ok(!r.expired)
        }
        "released" | "expired" => Ok(false),
        other => Err(UsageError::NotOpen(format!("reservation is {other}"))),
    }
}

/// Releases a reservation without recording usage. Returns false when it
/// was already released or had expired; a committed one fails with 55000.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "release_reservation"
)]
#[search_path(pg_catalog, pg_temp)]
fn release_reservation(p_org_id: Option<Uuid>, p_reservation_id: Option<Uuid>) -> PgResult<bool> {
    at_boundary(release(p_org_id, p_reservation_id))
}

fn limits(org: Option<Uuid>) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let defs: Vec<(String, Vec<String>)> = Spi::connect(|c| -> Result<_> {
        let mut v = Vec::new();
        for row in c.select(
            "SELECT d.limit_key, d.event_types FROM usage_tracker.limit_definitions d ORDER BY d.limit_key",
            None,
            &[],
        )? {
            v.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<String>>(2)?.unwrap_or_default()));
        }
        Ok(v)
    })?;
    let (ps, pe) = billing_period(ctx.local_date, ctx.anchor_day);
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
            "within_limit": rule.max < 0 || st.used + st.reserved < rule.max,
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
                   LEFT JOIN (SELECT u.type, sum(u.count)::bigint AS total FROM usage_tracker.organization_usage u \
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
    at_boundary(limits(p_org_id))
}

fn quota_status(org: Option<Uuid>) -> Result<JsonB> {
    let l = limits(org)?.0;
    let mut worst = 0u8; // 0 ok, 1 approaching, 2 over
    let mut notes = Vec::new();
    if let Some(Value::Object(m)) = l.get("limits") {
        for (key, v) in m {
            let limit = v["limit"].as_i64().unwrap_or(-1);
            let current = v["current"].as_i64().unwrap_or(0);
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
    at_boundary(quota_status(p_org_id))
}

fn summary(org: Option<Uuid>, days: Option<i32>) -> Result<JsonB> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let days = days.ok_or(UsageError::NullValue("p_days"))?;
    if !(1..=MAX_SUMMARY_DAYS).contains(&days) {
        return Err(UsageError::out_of_range(
            "p_days",
            format!("{days} is not between 1 and {MAX_SUMMARY_DAYS}"),
        ));
    }
    authorize_member(who, org)?;
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
          t AS (SELECT type, sum(events)::bigint AS events, sum(count)::bigint AS total, \
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
    at_boundary(summary(p_org_id, p_days))
}

// ---------------------------------------------------------------------------
// Plans, limits and event types (service_role)
// ---------------------------------------------------------------------------

fn name_arg(param: &'static str, v: Option<String>) -> Result<String> {
    let v = v.ok_or(UsageError::NullValue(param))?;
    if !valid_name(&v) {
        return Err(UsageError::invalid(
            param,
            "use lower case letters, digits and _, starting with a letter (at most 63)",
        ));
    }
    Ok(v)
}

fn add_event_type_impl(
    t: Option<String>,
    unit: Option<String>,
    description: Option<String>,
) -> Result<bool> {
    require_trusted("add_event_type")?;
    let t = name_arg("p_event_type", t)?;
    let added: Option<bool> = write_one(
        "INSERT INTO usage_tracker.event_types (event_type, unit, description) \
         VALUES ($1, coalesce($2, 'events'), $3) ON CONFLICT (event_type) DO NOTHING RETURNING true",
        &[t.into(), unit.into(), description.into()],
    )?;
    Ok(added.unwrap_or(false))
}

/// Registers a custom event type (service_role). Returns false if it existed.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "add_event_type"
)]
#[search_path(pg_catalog, pg_temp)]
fn add_event_type(
    p_event_type: Option<String>,
    p_unit: Option<String>,
    p_description: Option<String>,
) -> PgResult<bool> {
    at_boundary(add_event_type_impl(p_event_type, p_unit, p_description))
}

fn define_limit_impl(
    key: Option<String>,
    types: Option<Vec<Option<String>>>,
    unit: Option<String>,
    period: Option<String>,
) -> Result<bool> {
    require_trusted("define_limit")?;
    let key = name_arg("p_limit_key", key)?;
    let types: Vec<String> = types
        .ok_or(UsageError::NullValue("p_event_types"))?
        .into_iter()
        .map(|t| t.ok_or(UsageError::NullValue("p_event_types")))
        .collect::<Result<_>>()?;
    if types.is_empty() || types.len() > 32 {
        return Err(UsageError::invalid(
            "p_event_types",
            "give 1 to 32 event types",
        ));
    }
    for t in &types {
        if !known_event_type(t)? {
            return Err(UsageError::invalid(
                "p_event_types",
                format!("'{t}' is not a known event type"),
            ));
        }
    }
    let period = period.unwrap_or_else(|| "billing_period".into());
    if period != "billing_period" && period != "total" {
        return Err(UsageError::invalid(
            "p_period",
            format!("'{period}' is not billing_period or total"),
        ));
    }
    let unit = unit.unwrap_or_else(|| "units".into());
    let shipped: Option<bool> = read_one(
        "SELECT d.shipped FROM usage_tracker.limit_definitions d WHERE d.limit_key = $1",
        &[key.as_str().into()],
    )?;
    if shipped == Some(true) {
        return Err(UsageError::invalid(
            "p_limit_key",
            format!("'{key}' is shipped and fixed; define a new limit"),
        ));
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.limit_definitions AS d (limit_key, event_types, unit, period) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (limit_key) DO UPDATE SET event_types = EXCLUDED.event_types, unit = EXCLUDED.unit, \
           period = EXCLUDED.period RETURNING true",
        &[key.as_str().into(), types.into(), unit.into(), period.into()],
    )?;
    // Period rows start again from the daily counters under the new definition.
    crate::spi_util::write_one::<bool>(
        "WITH d AS (DELETE FROM usage_tracker_private.quota_usage WHERE limit_key = $1 RETURNING 1) SELECT true",
        &[key.into()],
    )?;
    Ok(true)
}

/// Defines (or redefines) a limit: which event types count against it, its
/// unit, and whether it resets each billing period or counts the total.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "define_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn define_limit(
    p_limit_key: Option<String>,
    p_event_types: Option<Vec<Option<String>>>,
    p_unit: Option<String>,
    p_period: Option<String>,
) -> PgResult<bool> {
    at_boundary(define_limit_impl(
        p_limit_key,
        p_event_types,
        p_unit,
        p_period,
    ))
}

fn create_plan_impl(
    name: Option<String>,
    description: Option<String>,
    limits: Option<JsonB>,
    is_default: Option<bool>,
) -> Result<String> {
    require_trusted("create_plan")?;
    let name = name_arg("p_plan", name)?;
    let limits = limits.map(|j| j.0).unwrap_or_else(|| json!({}));
    let Value::Object(limits) = limits else {
        return Err(UsageError::invalid(
            "p_limits",
            "must be a JSON object {limit_key: max}",
        ));
    };
    let mut parsed = Vec::new();
    for (k, v) in limits {
        let max = v
            .as_i64()
            .or_else(|| v.to_string().parse::<i64>().ok())
            .ok_or_else(|| {
                UsageError::invalid("p_limits", format!("{k}: {v} is not an integer"))
            })?;
        if max < -1 {
            return Err(UsageError::out_of_range(
                "p_limits",
                format!("{k}: {max} is below -1 (unlimited)"),
            ));
        }
        parsed.push((k, max));
    }
    // Shipped plans keep their row; their limits can be overridden.
    write_one::<bool>(
        "INSERT INTO usage_tracker.plans AS p (plan, description) VALUES ($1, $2) \
         ON CONFLICT (plan) DO UPDATE SET description = coalesce(EXCLUDED.description, p.description) \
         WHERE NOT p.shipped RETURNING true",
        &[name.as_str().into(), description.into()],
    )?;
    for (k, max) in parsed {
        set_limit_row(&name, &k, max)?;
    }
    if is_default.is_some() {
        let shipped: Option<bool> = read_one(
            "SELECT p.shipped FROM usage_tracker.plans p WHERE p.plan = $1",
            &[name.as_str().into()],
        )?;
        if shipped == Some(true) && is_default == Some(true) {
            return Err(UsageError::invalid(
                "p_is_default",
                "a shipped plan cannot become the default; create a custom plan with its limits",
            ));
        }
        if shipped == Some(false) {
            // At most one custom default; it overrides the shipped one (trial).
            write_one::<bool>(
                "WITH a AS (UPDATE usage_tracker.plans SET is_default = false \
                            WHERE is_default AND NOT shipped AND plan <> $1 RETURNING 1), \
                      b AS (UPDATE usage_tracker.plans SET is_default = $2 WHERE plan = $1 RETURNING 1) SELECT true",
                &[name.as_str().into(), is_default.into()],
            )?;
        }
    }
    Ok(name)
}

fn set_limit_row(plan_name: &str, key: &str, max: i64) -> Result<()> {
    let known: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.limit_definitions d WHERE d.limit_key = $1)",
        &[key.into()],
    )?;
    if known != Some(true) {
        return Err(UsageError::invalid(
            "p_limit_key",
            format!("'{key}' is not a defined limit (define_limit)"),
        ));
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.plan_limits AS l (plan, limit_key, max_quantity) VALUES ($1, $2, $3) \
         ON CONFLICT (plan, limit_key, shipped) DO UPDATE SET max_quantity = EXCLUDED.max_quantity, \
           updated_at = pg_catalog.now() RETURNING true",
        &[plan_name.into(), key.into(), max.into()],
    )?;
    Ok(())
}

/// Creates or updates a custom plan (service_role) with limits given as
/// `{"chat_messages": 1000, "ai_tokens": -1}`; optionally the default plan.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "create_plan"
)]
#[search_path(pg_catalog, pg_temp)]
fn create_plan(
    p_plan: Option<String>,
    p_description: Option<String>,
    p_limits: Option<JsonB>,
    p_is_default: Option<bool>,
) -> PgResult<String> {
    at_boundary(create_plan_impl(
        p_plan,
        p_description,
        p_limits,
        p_is_default,
    ))
}

fn set_plan_limit_impl(
    plan_name: Option<String>,
    key: Option<String>,
    max: Option<i64>,
) -> Result<bool> {
    require_trusted("set_plan_limit")?;
    let plan_name = plan_name.ok_or(UsageError::NullValue("p_plan"))?;
    let key = key.ok_or(UsageError::NullValue("p_limit_key"))?;
    let max = max.ok_or(UsageError::NullValue("p_max_quantity"))?;
    if max < -1 {
        return Err(UsageError::out_of_range(
            "p_max_quantity",
            format!("{max} is below -1 (unlimited)"),
        ));
    }
    let known: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.plans p WHERE p.plan = $1)",
        &[plan_name.as_str().into()],
    )?;
    if known != Some(true) {
        return Err(UsageError::invalid(
            "p_plan",
            format!("'{plan_name}' is not a plan"),
        ));
    }
    set_limit_row(&plan_name, &key, max)?;
    Ok(true)
}

/// Sets one limit of a plan (service_role); -1 is unlimited.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_plan_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_plan_limit(
    p_plan: Option<String>,
    p_limit_key: Option<String>,
    p_max_quantity: Option<i64>,
) -> PgResult<bool> {
    at_boundary(set_plan_limit_impl(p_plan, p_limit_key, p_max_quantity))
}

/// Marks open reservations past their expiry as expired (run_maintenance).
pub fn expire_reservations() -> Result<i64> {
    let n: Option<i64> = write_one(
        "WITH e AS (UPDATE usage_tracker.quota_reservations SET status = 'expired', resolved_at = pg_catalog.now() \
                    WHERE status = 'open' AND expires_at <= pg_catalog.now() RETURNING 1) \
         SELECT count(*) FROM e",
        &[],
    )?;
    Ok(n.unwrap_or(0))
}
