//! Projects (seed 003): a dimension of the AI log inside an organization.
//!
//! A project id names one project in one organization, everywhere: seed
//! 003's callers pass only the id, so an id another organization already
//! uses is refused (23505) rather than shadowing it.

use pgrx::prelude::*;
use pgrx::Uuid;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_admin, authorize_member, caller};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::spi_util::{read_one, write_one};
use crate::validate::{check_len, required};

/// The organization of a project, or 22023.
pub fn org_of(project: Option<Uuid>) -> Result<Uuid> {
    let project = required("p_project_id", project)?;
    let org: Option<Uuid> = read_one(
        "SELECT p.org_id FROM usage_tracker.projects p WHERE p.id = $1",
        &[project.into()],
    )?;
    org.ok_or_else(|| UsageError::invalid("p_project_id", "no such project"))
}

/// Checks that `project` exists in `org` (log_ai_usage's p_project_id).
pub fn check_in_org(org: Uuid, project: Uuid) -> Result<()> {
    let ok: Option<bool> = read_one(
        "SELECT true FROM usage_tracker.projects p WHERE p.org_id = $1 AND p.id = $2",
        &[org.into(), project.into()],
    )?;
    match ok {
        Some(true) => Ok(()),
        _ => Err(UsageError::invalid(
            "p_project_id",
            "no such project in this organization (create_project)",
        )),
    }
}

fn create(org: Option<Uuid>, name: Option<String>, id: Option<Uuid>) -> Result<Uuid> {
    let org = required("p_org_id", org)?;
    authorize_admin(caller()?, org)?;
    let name = required("p_name", name)?;
    if name.trim().is_empty() {
        return Err(UsageError::invalid("p_name", "must not be blank"));
    }
    check_len("p_name", &Some(name.clone()), limits::MAX_PROJECT_NAME)?;
    // Creations are rare: one at a time, so that "is this id taken in any
    // organization" cannot race.
    Spi::run("LOCK TABLE usage_tracker.projects IN SHARE ROW EXCLUSIVE MODE")?;
    if let Some(id) = id {
        let taken: Option<bool> = read_one(
            "SELECT true FROM usage_tracker.projects p WHERE p.id = $1",
            &[id.into()],
        )?;
        if taken == Some(true) {
            return Err(UsageError::Conflict(
                "a project with this id already exists; omit p_project_id to get a new one".into(),
            ));
        }
    }
    let id: Option<Uuid> = write_one(
        "INSERT INTO usage_tracker.projects (org_id, id, name) \
         VALUES ($1, coalesce($2, pg_catalog.gen_random_uuid()), $3) RETURNING id",
        &[org.into(), id.into(), name.into()],
    )?;
    id.ok_or_else(|| UsageError::Internal("project insert returned nothing".into()))
}

/// Creates a project in an organization (its admins, service_role);
/// returns its id.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "create_project"
)]
#[search_path(pg_catalog, pg_temp)]
fn create_project(
    p_org_id: Option<Uuid>,
    p_name: Option<String>,
    p_project_id: Option<Uuid>,
) -> PgResult<Uuid> {
    guarded(|| create(p_org_id, p_name, p_project_id))
}

fn list(org: Option<Uuid>) -> Result<Jsonb> {
    let org = required("p_org_id", org)?;
    authorize_member(caller()?, org)?;
    let j = crate::jsonb::read(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', p.id, 'name', p.name, \
                'created_at', p.created_at) ORDER BY p.name, p.id), '[]'::jsonb) \
           FROM usage_tracker.projects p WHERE p.org_id = $1",
        &[org.into()],
    )?;
    j.ok_or_else(|| UsageError::Internal("list_projects returned nothing".into()))
}

/// The projects of an organization (its members).
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "list_projects"
)]
#[search_path(pg_catalog, pg_temp)]
fn list_projects(p_org_id: Option<Uuid>) -> PgResult<Jsonb> {
    guarded(|| list(p_org_id))
}
