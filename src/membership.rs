//! Organization membership, managed by trusted callers.

use pgrx::prelude::*;
use pgrx::Uuid;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{require_trusted, OrgRole};
use crate::spi_util::{read_one, write_one};

fn set_member(org: Option<Uuid>, user: Option<Uuid>, role: Option<String>) -> Result<String> {
    require_trusted("set_org_member")?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    let role = role.ok_or(UsageError::NullValue("p_role"))?;
    if OrgRole::parse(&role).is_none() {
        return Err(UsageError::invalid(
            "p_role",
            format!("'{role}' is not member, admin or owner"),
        ));
    }
    if org == user {
        return Err(UsageError::invalid(
            "p_org_id",
            "a user's personal organization (org_id = user_id) needs no membership",
        ));
    }
    // A personal organization (its id is a user's id) belongs to that user
    // alone: giving it members would show them that user's own usage.
    let personal: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.org_members m WHERE m.user_id = $1) \
             OR EXISTS (SELECT 1 FROM usage_tracker.ai_usage_log l WHERE l.user_id = $1) \
             OR EXISTS (SELECT 1 FROM usage_tracker.usage_events e WHERE e.user_id = $1) \
             OR EXISTS (SELECT 1 FROM usage_tracker.report_runs r WHERE r.user_id = $1) \
             OR EXISTS (SELECT 1 FROM usage_tracker.budgets b WHERE b.user_id = $1)",
        &[org.into()],
    )?;
    if personal == Some(true) {
        return Err(UsageError::invalid(
            "p_org_id",
            "is a user's id, so it names that user's personal organization, which cannot have members",
        ));
    }
    write_one::<String>(
        "INSERT INTO usage_tracker.org_members AS m (org_id, user_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = pg_catalog.now() \
         WHERE m.role IS DISTINCT FROM EXCLUDED.role RETURNING m.role",
        &[org.into(), user.into(), role.clone().into()],
    )?;
    Ok(role)
}

/// Adds a user to an organization or changes their role (service_role).
/// Roles: member (sees own usage), admin and owner (see the organization's).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_org_member"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_org_member(
    p_org_id: Option<Uuid>,
    p_user_id: Option<Uuid>,
    p_role: Option<String>,
) -> PgResult<String> {
    guarded(|| set_member(p_org_id, p_user_id, p_role))
}

fn remove_member(org: Option<Uuid>, user: Option<Uuid>) -> Result<bool> {
    require_trusted("remove_org_member")?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    let removed: Option<bool> = write_one(
        "DELETE FROM usage_tracker.org_members m WHERE m.org_id = $1 AND m.user_id = $2 RETURNING true",
        &[org.into(), user.into()],
    )?;
    Ok(removed.unwrap_or(false))
}

/// Removes a user from an organization (service_role). Their logged usage
/// stays with the organization. Returns false when they were not a member.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "remove_org_member"
)]
#[search_path(pg_catalog, pg_temp)]
fn remove_org_member(p_org_id: Option<Uuid>, p_user_id: Option<Uuid>) -> PgResult<bool> {
    guarded(|| remove_member(p_org_id, p_user_id))
}
