//! Who is calling, and what they may see.
//!
//! Identity comes from the JWT claims PostgREST puts in `request.jwt.claims`
//! (falling back to `request.jwt.claim.sub`), read the way Supabase's
//! `auth.uid()` reads them. Trust comes from the database role the session
//! runs as outside any SECURITY DEFINER function (`GetOuterUserId`, i.e. the
//! `SET ROLE` role), never from `current_user` or from a claim.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::Uuid;

use crate::errors::{Result, UsageError};
use crate::spi_util::read_one;

/// Reads a GUC without raising when it does not exist.
fn guc_bytes(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: GetConfigOption returns NULL or a pointer into the GUC's value,
    // valid until the setting changes; we copy before returning to SQL.
    unsafe {
        let p = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_bytes())
        }
    }
}

/// Parses a canonical (or dash-less) UUID; anything else is no identity.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    let hex: Vec<u8> = match s.len() {
        36 => {
            let b = s.as_bytes();
            if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                return None;
            }
            b.iter().copied().filter(|c| *c != b'-').collect()
        }
        32 => s.as_bytes().to_vec(),
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(Uuid::from_bytes(out))
}

fn sub_from_claims(claims: &[u8]) -> Option<Uuid> {
    if claims.is_empty() {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Option<serde_json::Value>,
    }
    let parsed: Claims = serde_json::from_slice(claims).ok()?;
    match parsed.sub? {
        serde_json::Value::String(s) if !s.is_empty() => parse_uuid(&s),
        _ => None,
    }
}

struct ClaimsCache {
    claims: Vec<u8>,
    fallback: Vec<u8>,
    uid: Option<Uuid>,
}

thread_local! {
    // RLS policies call uid() per row on sequential scans; re-parse only
    // when the claims change.
    static CLAIMS_CACHE: RefCell<Option<ClaimsCache>> = const { RefCell::new(None) };
}

/// The user id of the request, or None. Never raises: malformed, empty or
/// stale claims mean "no user".
pub fn current_uid() -> Option<Uuid> {
    let claims = guc_bytes(c"request.jwt.claims").unwrap_or(b"");
    let fallback = guc_bytes(c"request.jwt.claim.sub").unwrap_or(b"");
    CLAIMS_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(c) = cache.as_ref() {
            if c.claims == claims && c.fallback == fallback {
                return c.uid;
            }
        }
        let uid = sub_from_claims(claims).or_else(|| {
            std::str::from_utf8(fallback)
                .ok()
                .and_then(|s| parse_uuid(s.trim()))
        });
        *cache = Some(ClaimsCache {
            claims: claims.to_vec(),
            fallback: fallback.to_vec(),
            uid,
        });
        uid
    })
}

/// The user id from the request's JWT claims (`sub`), like Supabase's
/// `auth.uid()`, but NULL instead of an error for malformed claims.
#[pg_extern(stable, parallel_safe)]
fn uid() -> Option<Uuid> {
    current_uid()
}

fn role_oid(name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: plain syscache lookup; missing_ok = true.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

thread_local! {
    static EXTENSION_OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

fn extension_owner() -> Result<pg_sys::Oid> {
    if let Some(oid) = EXTENSION_OWNER.with(|c| c.get()) {
        return Ok(oid);
    }
    let owner: Option<pg_sys::Oid> = read_one(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'usage_tracker'",
        &[],
    )?;
    let owner = owner.ok_or_else(|| UsageError::Internal("extension not installed".into()))?;
    EXTENSION_OWNER.with(|c| c.set(Some(owner)));
    Ok(owner)
}

/// A caller is either trusted (superuser, the extension's owner, or a role
/// with the privileges of service_role) or a user identified by the JWT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Trusted,
    User(Uuid),
}

pub fn session_role_is_trusted() -> Result<bool> {
    // SAFETY: reads backend-local state.
    let outer = unsafe { pg_sys::GetOuterUserId() };
    // SAFETY: catalog lookups on valid role oids.
    unsafe {
        if pg_sys::superuser_arg(outer) || pg_sys::has_privs_of_role(outer, extension_owner()?) {
            return Ok(true);
        }
        if let Some(service) = role_oid(c"service_role") {
            if pg_sys::has_privs_of_role(outer, service) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

pub fn caller() -> Result<Caller> {
    if session_role_is_trusted()? {
        return Ok(Caller::Trusted);
    }
    // SAFETY: reads backend-local state.
    let outer = unsafe { pg_sys::GetOuterUserId() };
    if role_oid(c"anon") == Some(outer) {
        return Err(UsageError::forbidden(
            "the anon role may not use usage_tracker",
        ));
    }
    current_uid()
        .map(Caller::User)
        .ok_or(UsageError::NotAuthenticated)
}

/// Only trusted callers (service_role, owner, superuser) pass.
pub fn require_trusted(what: &str) -> Result<()> {
    match caller()? {
        Caller::Trusted => Ok(()),
        Caller::User(_) => Err(UsageError::forbidden(format!(
            "{what} requires service_role"
        ))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrgRole {
    Member,
    Admin,
    Owner,
}

impl OrgRole {
    pub fn parse(s: &str) -> Option<OrgRole> {
        match s {
            "member" => Some(OrgRole::Member),
            "admin" => Some(OrgRole::Admin),
            "owner" => Some(OrgRole::Owner),
            _ => None,
        }
    }

    pub fn sees_org(self) -> bool {
        self >= OrgRole::Admin
    }
}

/// The user's role in the organization; a user owns their personal
/// organization (org_id = user_id).
pub fn org_role(org: Uuid, user: Uuid) -> Result<Option<OrgRole>> {
    if org == user {
        return Ok(Some(OrgRole::Owner));
    }
    let role: Option<String> = read_one(
        "SELECT m.role FROM usage_tracker.org_members m WHERE m.org_id = $1 AND m.user_id = $2",
        &[org.into(), user.into()],
    )?;
    Ok(role.as_deref().and_then(OrgRole::parse))
}

/// Organizations whose usage the user may see in full (admin or owner),
/// their personal organization first.
pub fn admin_orgs(user: Uuid) -> Result<Vec<Uuid>> {
    let orgs: Option<Vec<Uuid>> = read_one(
        "SELECT pg_catalog.array_agg(m.org_id ORDER BY m.org_id) FROM usage_tracker.org_members m \
         WHERE m.user_id = $1 AND m.role IN ('admin', 'owner') AND m.org_id <> $1",
        &[user.into()],
    )?;
    let mut all = vec![user];
    all.extend(orgs.unwrap_or_default());
    Ok(all)
}

/// Org-level access: trusted callers, or members of the organization (a
/// user's personal organization included). Returns the acting user.
pub fn authorize_member(caller: Caller, org: Uuid) -> Result<Option<Uuid>> {
    match caller {
        Caller::Trusted => Ok(None),
        Caller::User(me) => match org_role(org, me)? {
            Some(_) => Ok(Some(me)),
            None => Err(UsageError::forbidden("not a member of this organization")),
        },
    }
}

/// Like [`authorize_member`], for admins and owners only.
pub fn authorize_admin(caller: Caller, org: Uuid) -> Result<Option<Uuid>> {
    match caller {
        Caller::Trusted => Ok(None),
        Caller::User(me) => match org_role(org, me)? {
            Some(r) if r >= OrgRole::Admin => Ok(Some(me)),
            Some(_) => Err(UsageError::forbidden(
                "requires the admin or owner role in this organization",
            )),
            None => Err(UsageError::forbidden("not a member of this organization")),
        },
    }
}

/// True when `user` belongs to `org` (its personal organization included).
pub fn is_member(org: Uuid, user: Uuid) -> Result<bool> {
    Ok(org_role(org, user)?.is_some())
}

/// Checks that the caller may record usage of `user` in `org`: trusted
/// callers may record anything; a user only their own usage, in their
/// personal organization or one they belong to.
pub fn authorize_write(caller: Caller, user: Uuid, org: Uuid) -> Result<()> {
    match caller {
        Caller::Trusted => Ok(()),
        Caller::User(me) => {
            if me != user {
                return Err(UsageError::forbidden(
                    "a user may only record their own usage",
                ));
            }
            if org_role(org, me)?.is_none() {
                return Err(UsageError::forbidden("not a member of this organization"));
            }
            Ok(())
        }
    }
}

/// The rows a read may cover: a filter on org_id, on user_id, or both
/// (joined by AND, or by OR when `either`).
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    pub orgs: Option<Vec<Uuid>>,
    pub user: Option<Uuid>,
    pub either: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        orgs: None,
        user: None,
        either: false,
    };

    /// SQL predicate over `alias`; `$orgs_param` is a uuid[] and
    /// `$user_param` a uuid, always both bound (see [`Scope::args`]).
    pub fn predicate(&self, alias: &str, orgs_param: usize, user_param: usize) -> String {
        let org = format!("{alias}.org_id = ANY(${orgs_param})");
        let user = format!("{alias}.user_id = ${user_param}");
        match (&self.orgs, &self.user) {
            (None, None) => "true".to_string(),
            (Some(_), None) => org,
            (None, Some(_)) => user,
            (Some(_), Some(_)) if self.either => format!("({org} OR {user})"),
            (Some(_), Some(_)) => format!("{org} AND {user}"),
        }
    }

    /// The rows this scope covers because of their organization (whole
    /// organizations: rollups without a user column can serve them).
    pub fn org_part(&self, alias: &str, orgs_param: usize) -> String {
        match (&self.orgs, &self.user) {
            (None, None) => "true".to_string(),
            (Some(_), None) => format!("{alias}.org_id = ANY(${orgs_param})"),
            (Some(_), Some(_)) if self.either => format!("{alias}.org_id = ANY(${orgs_param})"),
            _ => "false".to_string(),
        }
    }

    /// The rows this scope covers only because of their user (disjoint from
    /// [`Scope::org_part`]; together they make [`Scope::predicate`]).
    pub fn user_part(&self, alias: &str, orgs_param: usize, user_param: usize) -> String {
        let org = format!("{alias}.org_id = ANY(${orgs_param})");
        let user = format!("{alias}.user_id = ${user_param}");
        match (&self.orgs, &self.user) {
            (None, Some(_)) => user,
            (Some(_), Some(_)) if self.either => format!("({user} AND NOT {org})"),
            (Some(_), Some(_)) => format!("({org} AND {user})"),
            _ => "false".to_string(),
        }
    }

    pub fn args(&self) -> (Option<Vec<Uuid>>, Option<Uuid>) {
        (self.orgs.clone(), self.user)
    }
}

/// What an org-level read (dashboards, summaries) may cover. With an org:
/// admins and owners see it all, members their own rows, others nothing.
/// Without: trusted callers see everything; a user sees their own rows plus
/// every organization they administer.
pub fn org_read_scope(caller: Caller, org: Option<Uuid>) -> Result<Scope> {
    match (caller, org) {
        (Caller::Trusted, None) => Ok(Scope::ALL),
        (Caller::Trusted, Some(o)) => Ok(Scope {
            orgs: Some(vec![o]),
            user: None,
            either: false,
        }),
        (Caller::User(me), Some(o)) => match org_role(o, me)? {
            Some(r) if r.sees_org() => Ok(Scope {
                orgs: Some(vec![o]),
                user: None,
                either: false,
            }),
            Some(_) => Ok(Scope {
                orgs: Some(vec![o]),
                user: Some(me),
                either: false,
            }),
            None => Err(UsageError::forbidden("not a member of this organization")),
        },
        (Caller::User(me), None) => Ok(Scope {
            orgs: Some(admin_orgs(me)?),
            user: Some(me),
            either: true,
        }),
    }
}

/// What a per-user read may cover: yourself anywhere; another user only in
/// organizations you administer and they belong to.
pub fn user_read_scope(caller: Caller, target: Uuid) -> Result<Scope> {
    match caller {
        Caller::Trusted => Ok(Scope {
            orgs: None,
            user: Some(target),
            either: false,
        }),
        Caller::User(me) if me == target => Ok(Scope {
            orgs: None,
            user: Some(me),
            either: false,
        }),
        Caller::User(me) => {
            let mine = admin_orgs(me)?;
            let shared: Option<Vec<Uuid>> = read_one(
                "SELECT pg_catalog.array_agg(m.org_id ORDER BY m.org_id) FROM usage_tracker.org_members m \
                 WHERE m.user_id = $1 AND m.org_id = ANY($2)",
                &[target.into(), mine.into()],
            )?;
            match shared {
                Some(orgs) if !orgs.is_empty() => Ok(Scope {
                    orgs: Some(orgs),
                    user: Some(target),
                    either: false,
                }),
                _ => Err(UsageError::forbidden(
                    "you may only see users of organizations you administer",
                )),
            }
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn parse_uuid_accepts_canonical_and_rejects_junk() {
        let u = parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(parse_uuid("A0EEBC999C0B4EF8BB6D6BB9BD380A11"), Some(u));
        for bad in [
            "",
            "nope",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[pg_test]
    fn uid_reads_claims_then_fallback_and_never_raises() {
        let sub = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let set = |claims: &str, fallback: &str| {
            Spi::run_with_args(
                "SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true)",
                &[claims.into(), fallback.into()],
            )
            .unwrap();
        };
        set(&format!(r#"{{"sub":"{sub}","role":"authenticated"}}"#), "");
        assert_eq!(current_uid(), parse_uuid(sub));
        set("", sub);
        assert_eq!(current_uid(), parse_uuid(sub));
        for junk in [
            "{",
            "[]",
            r#"{"sub":""}"#,
            r#"{"sub":42}"#,
            r#"{"sub":"not-a-uuid"}"#,
        ] {
            set(junk, "");
            assert_eq!(current_uid(), None, "{junk}");
        }
        set("", "");
        assert_eq!(current_uid(), None);
    }

    #[pg_test]
    fn scope_predicates() {
        let u = parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(Scope::ALL.predicate("l", 1, 2), "true");
        let s = Scope {
            orgs: Some(vec![u]),
            user: Some(u),
            either: true,
        };
        assert_eq!(
            s.predicate("l", 1, 2),
            "(l.org_id = ANY($1) OR l.user_id = $2)"
        );
        let s = Scope {
            orgs: Some(vec![u]),
            user: Some(u),
            either: false,
        };
        assert_eq!(
            s.predicate("l", 1, 2),
            "l.org_id = ANY($1) AND l.user_id = $2"
        );
    }
}
