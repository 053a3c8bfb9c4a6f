//! Reservations: hold an estimate against a limit before a request, then
//! commit the actual quantity or release it. Only the user who reserved,
//! the organization's admins and owners, and service_role may resolve one
//! (a reservation service_role made: admins and service_role).

use chrono::Duration;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use super::quotas::{check_event_type, evaluate, quota_json, remaining, unlimited_json};
use super::{record_event, rules_for, Increment};
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_member, caller, org_role, Caller, OrgRole};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::orgs::{context, to_pg_date};
use crate::partitions::txn_now;
use crate::spi_util::{plan, write_one};
use crate::validate::{self, required};

fn reserve(
    org: Option<Uuid>,
    event_type: Option<String>,
    quantity: Option<i64>,
    ttl_seconds: Option<i32>,
) -> Result<pgrx::JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    let user = authorize_member(who, org)?;
    let event_type = check_event_type(&event_type)?;
    let quantity = validate::quantity("p_quantity", quantity)?;
    let ttl = validate::in_range(
        "p_ttl_seconds",
        ttl_seconds.unwrap_or(limits::DEFAULT_RESERVATION_TTL_SECONDS),
        1,
        limits::MAX_RESERVATION_TTL_SECONDS,
    )?;
    let (now_ts, now) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let rules = rules_for(&ctx.plan, &event_type)?;
    let (allowed, tightest) = evaluate(&ctx, &rules, now_ts, quantity, true)?;
    let mut out = match &tightest {
        Some((i, st)) => {
            let reserved = st.reserved + if allowed { quantity as i128 } else { 0 };
            let mut v = quota_json(&rules[*i], st, allowed, st.used);
            v["reserved"] = json!(reserved);
            v["remaining"] = json!(remaining(&rules[*i], st.used, reserved));
            v
        }
        None => unlimited_json(&ctx, &event_type, 0, allowed)?,
    };
    if allowed {
        let expires = now + Duration::seconds(ttl as i64);
        let row: Option<Uuid> = write_one(
            "INSERT INTO usage_tracker.quota_reservations (org_id, user_id, event_type, quantity, period_start, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6 + pg_catalog.make_interval(secs => $7)) RETURNING reservation_id",
            &[
                org.into(),
                user.into(),
                event_type.as_str().into(),
                quantity.into(),
                to_pg_date(ctx.period.0)?.into(),
                now_ts.into(),
                (ttl as f64).into(),
            ],
        )?;
        out["reservation_id"] = json!(row.map(|u| u.to_string()));
        out["expires_at"] = json!(expires.to_rfc3339());
    }
    Ok(pgrx::JsonB(out))
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
) -> PgResult<pgrx::JsonB> {
    guarded(|| reserve(p_org_id, p_event_type, p_quantity, p_ttl_seconds))
}

struct Reservation {
    user_id: Option<Uuid>,
    event_type: String,
    quantity: i64,
    status: String,
    expired: bool,
}

/// Locks a reservation and checks the caller may resolve it: the user who
/// made it, an admin or owner of the organization, or a trusted caller.
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
    .ok_or_else(|| {
        UsageError::invalid(
            "p_reservation_id",
            "no such reservation in this organization",
        )
    })?;
    if let Caller::User(me) = who {
        let admin = org_role(org, me)?.is_some_and(|role| role >= OrgRole::Admin);
        if r.user_id != Some(me) && !admin {
            return Err(UsageError::forbidden(
                "only the user who reserved, an admin of the organization or service_role may resolve a reservation",
            ));
        }
    }
    Ok(r)
}

fn commit(
    org: Option<Uuid>,
    id: Option<Uuid>,
    quantity: Option<i64>,
    metadata: Option<Jsonb>,
) -> Result<pgrx::JsonB> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    let id = required("p_reservation_id", id)?;
    let r = lock_reservation(who, org, id)?;
    validate::metadata("p_metadata", &metadata)?;
    if r.status != "open" {
        return Err(UsageError::NotOpen(format!("reservation is {}", r.status)));
    }
    if r.expired {
        return Err(UsageError::NotOpen("reservation has expired".into()));
    }
    let quantity = validate::quantity("p_quantity", Some(quantity.unwrap_or(r.quantity)))?;
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
    Ok(pgrx::JsonB(json!({
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
    p_metadata: Option<Jsonb>,
) -> PgResult<pgrx::JsonB> {
    guarded(|| commit(p_org_id, p_reservation_id, p_quantity, p_metadata))
}

fn release(org: Option<Uuid>, id: Option<Uuid>) -> Result<bool> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    let id = required("p_reservation_id", id)?;
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
    guarded(|| release(p_org_id, p_reservation_id))
}

/// Marks open reservations past their expiry as expired (run_maintenance).
pub fn expire() -> Result<i64> {
    let n: Option<i64> = write_one(
        "WITH e AS (UPDATE usage_tracker.quota_reservations SET status = 'expired', resolved_at = pg_catalog.now() \
                    WHERE status = 'open' AND expires_at <= pg_catalog.now() RETURNING 1) \
         SELECT count(*) FROM e",
        &[],
    )?;
    Ok(n.unwrap_or(0))
}
