//! Seed 004's reads: a user's runs, one run, the monthly usage and the
//! monthly limit check. Every read applies the caller's whole scope: your
//! own runs, or those of members in organizations you administer.

use pgrx::prelude::*;
use pgrx::Uuid;

use super::plan_run_limit;
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{caller, org_role, user_read_scope, Caller, OrgRole, Scope};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::orgs::{context, period_bounds};
use crate::partitions::txn_now;
use crate::spi_util::read_one;
use crate::validate::{self, required};

fn list(user: Option<Uuid>, limit: Option<i32>, offset: Option<i32>) -> Result<Jsonb> {
    let who = caller()?;
    let user = required("p_user_id", user)?;
    let scope = user_read_scope(who, user)?;
    let limit = validate::in_range("p_limit", limit.unwrap_or(50), 1, limits::MAX_LIST_ROWS)?;
    let offset = validate::in_range("p_offset", offset.unwrap_or(0), 0, i32::MAX)?;
    let sql = format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r) ORDER BY r.started_at DESC, r.id), '[]'::jsonb) \
           FROM (SELECT * FROM usage_tracker.report_runs l WHERE {} ORDER BY l.started_at DESC, l.id \
                  LIMIT $3 OFFSET $4) r",
        scope.predicate("l", 1, 2)
    );
    let (orgs, u) = scope.args();
    let json: Option<Jsonb> = Spi::connect(|c| {
        crate::spi_util::first(c.select(
            &sql,
            Some(1),
            &[
                orgs.into(),
                u.into(),
                (limit as i64).into(),
                (offset as i64).into(),
            ],
        )?)
    })?;
    json.ok_or_else(|| UsageError::Internal("list".into()))
}

/// A user's report runs, newest first, with limit (1..1000) and offset:
/// your own, or (admins) those of members in organizations you administer.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_report_runs"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_report_runs(
    p_user_id: Option<Uuid>,
    p_limit: Option<i32>,
    p_offset: Option<i32>,
) -> PgResult<Jsonb> {
    guarded(|| list(p_user_id, p_limit, p_offset))
}

fn get_one(id: Option<Uuid>) -> Result<Option<Jsonb>> {
    let who = caller()?;
    let id = id.ok_or(UsageError::NullValue("p_run_id"))?;
    let row: Option<(Option<Uuid>, Option<Uuid>)> = Spi::connect(|c| -> Result<_> {
        let t = c.select(
            "SELECT r.org_id, r.user_id FROM usage_tracker.report_runs r WHERE r.id = $1",
            Some(1),
            &[id.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        Ok(Some(t.first().get_two::<Uuid, Uuid>()?))
    })?;
    let Some((Some(org), Some(owner))) = row else {
        return Ok(None);
    };
    if let Caller::User(me) = who {
        let admin = org_role(org, me)?.is_some_and(|r| r >= OrgRole::Admin);
        if me != owner && !admin {
            return Err(UsageError::forbidden("not your report run"));
        }
    }
    read_one(
        "SELECT pg_catalog.to_jsonb(r) FROM usage_tracker.report_runs r WHERE r.org_id = $1 AND r.id = $2",
        &[org.into(), id.into()],
    )
}

/// One report run (NULL when there is none): yours, or in an organization
/// you administer.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_report_run"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_report_run(p_run_id: Option<Uuid>) -> PgResult<Option<Jsonb>> {
    guarded(|| get_one(p_run_id))
}

/// The runs a monthly read covers and the organization whose billing
/// period it uses: with p_org_id, that organization's runs of the user
/// (the caller must see that user there); without, the user's personal
/// organization. Anything outside the caller's scope is 42501.
fn monthly_scope(who: Caller, user: Uuid, org: Option<Uuid>) -> Result<Uuid> {
    let org = org.unwrap_or(user);
    let scope: Scope = user_read_scope(who, user)?;
    if let Some(orgs) = &scope.orgs {
        if !orgs.contains(&org) {
            return Err(UsageError::forbidden(
                "you may only see this user's runs in organizations you administer",
            ));
        }
    } else if let Caller::User(me) = who {
        // Your own runs: in your personal organization or one you belong to.
        if me == user && org != me && org_role(org, me)?.is_none() {
            return Err(UsageError::forbidden("not a member of this organization"));
        }
    }
    Ok(org)
}

fn monthly(user: Option<Uuid>, org: Option<Uuid>) -> Result<Jsonb> {
    let who = caller()?;
    let user = required("p_user_id", user)?;
    let org = monthly_scope(who, user, org)?;
    let (now_ts, _) = txn_now()?;
    let (from, to) = period_bounds(&context(org, now_ts)?)?;
    let json = crate::jsonb::read(
        "SELECT pg_catalog.jsonb_build_object('user_id', $1, 'org_id', $4, 'month', $2, 'period_end', $3, \
           'total_runs', count(*), 'successful_runs', count(*) FILTER (WHERE r.status = 'success'), \
           'failed_runs', count(*) FILTER (WHERE r.status = 'failed'), \
           'total_tokens', coalesce(sum(r.tokens_used), 0), 'total_cost_usd', round(coalesce(sum(r.cost_usd), 0), 9), \
           'last_run_at', max(r.started_at)) \
         FROM usage_tracker.report_runs r WHERE r.user_id = $1 AND r.org_id = $4 \
          AND r.started_at >= $2 AND r.started_at < $3",
        &[user.into(), from.into(), to.into(), org.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("monthly".into()))
}

/// Seed 004's monthly usage of a user for the current billing period of
/// the organization (p_org_id, or the user's personal organization).
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_monthly_usage"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_monthly_usage(p_user_id: Option<Uuid>, p_org_id: Option<Uuid>) -> PgResult<Jsonb> {
    guarded(|| monthly(p_user_id, p_org_id))
}

fn check_limit(user: Option<Uuid>, limit: Option<i32>, org: Option<Uuid>) -> Result<bool> {
    let who = caller()?;
    let user = required("p_user_id", user)?;
    let org = monthly_scope(who, user, org)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    // Without p_limit: the plan's runs per user and period (-1: unlimited).
    let limit = match limit {
        Some(l) => validate::in_range("p_limit", l, 0, limits::MAX_MONTHLY_RUN_LIMIT)? as i64,
        None => plan_run_limit(&ctx)?,
    };
    if limit < 0 {
        return Ok(true);
    }
    let (from, to) = period_bounds(&ctx)?;
    let n: Option<i64> = read_one(
        "SELECT count(*) FROM usage_tracker.report_runs r WHERE r.user_id = $1 AND r.org_id = $4 \
           AND r.status = 'success' AND r.started_at >= $2 AND r.started_at < $3",
        &[user.into(), from.into(), to.into(), org.into()],
    )?;
    Ok(n.unwrap_or(0) < limit)
}

/// Seed 004: true while the user has fewer than p_limit (default: the
/// plan's report_runs_per_user) successful runs this billing period, in
/// p_org_id or the user's personal organization.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "check_monthly_usage_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn check_monthly_usage_limit(
    p_user_id: Option<Uuid>,
    p_limit: Option<i32>,
    p_org_id: Option<Uuid>,
) -> PgResult<bool> {
    guarded(|| check_limit(p_user_id, p_limit, p_org_id))
}
