//! Idempotency keys of logged requests: a retry with the same key and the
//! same request returns the first call's id and is counted once; the same
//! key with a different request is refused (23505). Keys are unique per
//! organization, recorded in usage_tracker_private.ai_usage_idempotency
//! with the digest of what the caller sent.

use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::Uuid;
use sha2::{Digest, Sha256};

use super::AiUsage;
use crate::errors::{Result, UsageError};
use crate::spi_util::plan;

pub const IDEMPOTENCY: &str = "usage_tracker_private.ai_usage_idempotency";

/// A digest of what the caller sent (not server defaults such as now()):
/// a retry with the same key must send the same request.
pub fn payload_digest(u: &AiUsage, org: Uuid, user: Uuid) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut field = |tag: u8, bytes: Option<&[u8]>| {
        h.update([tag]);
        match bytes {
            None => h.update([0u8]),
            Some(b) => {
                h.update([1u8]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    };
    let int = |v: Option<i64>| v.map(|n| n.to_le_bytes());
    let text = |v: &Option<String>| v.as_ref().map(|s| s.as_bytes().to_vec());
    field(1, Some(user.as_bytes()));
    field(2, Some(org.as_bytes()));
    field(3, text(&u.user_email).as_deref());
    field(4, int(u.customer_id).as_ref().map(|b| &b[..]));
    field(5, text(&u.customer_name).as_deref());
    field(6, text(&u.request_type).as_deref());
    field(7, text(&u.session_id).as_deref());
    field(8, int(u.input_tokens).as_ref().map(|b| &b[..]));
    field(9, int(u.output_tokens).as_ref().map(|b| &b[..]));
    field(10, text(&u.model_used).as_deref());
    field(
        11,
        int(u.latency_ms.map(i64::from)).as_ref().map(|b| &b[..]),
    );
    field(
        12,
        int(u.tool_turns.map(i64::from)).as_ref().map(|b| &b[..]),
    );
    field(13, text(&u.status).as_deref());
    field(14, text(&u.error_message).as_deref());
    let at: Option<i64> = u.occurred_at.map(|t| t.into_inner());
    field(15, int(at).as_ref().map(|b| &b[..]));
    field(16, text(&u.provider).as_deref());
    field(17, int(u.cache_read_tokens).as_ref().map(|b| &b[..]));
    field(18, int(u.cache_write_tokens).as_ref().map(|b| &b[..]));
    field(19, int(u.reasoning_tokens).as_ref().map(|b| &b[..]));
    field(20, u.cached.map(|c| [c as u8]).as_ref().map(|b| &b[..]));
    field(21, u.metadata.as_ref().map(|m| m.bytes()));
    field(22, u.project_id.as_ref().map(|p| &p.as_bytes()[..]));
    h.finalize()[..16].to_vec()
}

/// The first call of a key: its row id, its user, its payload digest.
pub type FirstUse = (Uuid, Uuid, Option<Vec<u8>>);

pub fn first_use(org: Uuid, key: &str) -> Result<Option<FirstUse>> {
    let sql = if crate::relcache::has_column(IDEMPOTENCY, "payload_digest")? {
        "SELECT k.log_id, k.user_id, k.payload_digest FROM usage_tracker_private.ai_usage_idempotency k \
         WHERE k.org_id = $1 AND k.idempotency_key = $2"
    } else {
        "SELECT k.log_id, k.user_id, NULL::bytea FROM usage_tracker_private.ai_usage_idempotency k \
         WHERE k.org_id = $1 AND k.idempotency_key = $2"
    };
    Spi::connect(|c| -> Result<_> {
        let args = [org.into(), key.into()];
        let p = plan(c, sql, &args, false)?;
        let t = c.select(&*p, Some(1), &args)?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        match (r.get::<Uuid>(1)?, r.get::<Uuid>(2)?) {
            (Some(id), Some(user)) => Ok(Some((id, user, r.get::<Vec<u8>>(3)?))),
            _ => Err(UsageError::Internal("idempotency row without ids".into())),
        }
    })
}

/// The first uses of many keys at once (a batch): by (org, key).
pub fn first_uses(keys: &[(Uuid, String)]) -> Result<HashMap<(Uuid, String), FirstUse>> {
    let mut found = HashMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let orgs: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let names: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
    Spi::connect(|c| -> Result<()> {
        let args = [orgs.into(), names.into()];
        let p = plan(
            c,
            "SELECT k.org_id, k.idempotency_key, k.log_id, k.user_id, k.payload_digest \
               FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[])) AS x(org_id, idempotency_key) \
               JOIN usage_tracker_private.ai_usage_idempotency k \
                 ON k.org_id = x.org_id AND k.idempotency_key = x.idempotency_key",
            &args,
            false,
        )?;
        for r in c.select(&*p, None, &args)? {
            match (
                r.get::<Uuid>(1)?,
                r.get::<String>(2)?,
                r.get::<Uuid>(3)?,
                r.get::<Uuid>(4)?,
            ) {
                (Some(org), Some(key), Some(id), Some(user)) => {
                    found.insert((org, key), (id, user, r.get::<Vec<u8>>(5)?));
                }
                _ => return Err(UsageError::Internal("idempotency row without ids".into())),
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// A retry: the first call's id when it was the same user and request
/// (keys recorded before digests were kept match any payload); 23505
/// otherwise.
pub fn replay(first: &FirstUse, user: Uuid, digest: &[u8]) -> Result<Uuid> {
    let (id, owner, stored) = first;
    if *owner != user {
        return Err(UsageError::Conflict(
            "idempotency key already used by another user of this organization".into(),
        ));
    }
    match stored {
        Some(d) if d != digest => Err(UsageError::Conflict(
            "idempotency key already used for a different request (same key, different payload); use a new key"
                .into(),
        )),
        _ => Ok(*id),
    }
}

/// One key a batch claims: its organization, key, row id, user, time and
/// digest.
pub struct Claim<'a> {
    pub org: Uuid,
    pub key: &'a str,
    pub id: Uuid,
    pub user: Uuid,
    pub at: pgrx::datum::TimestampWithTimeZone,
    pub digest: &'a [u8],
}

/// Records a batch's new keys (sorted by organization and key, so that
/// batches claiming overlapping keys lock them in one order); returns the
/// ids of the keys it claimed. A key another transaction claimed meanwhile
/// is not returned (ON CONFLICT waits for that transaction to finish).
pub fn claim(mut claims: Vec<Claim<'_>>) -> Result<std::collections::HashSet<Uuid>> {
    claims.sort_by(|a, b| (a.org.as_bytes(), a.key).cmp(&(b.org.as_bytes(), b.key)));
    fn col<'a, T: pgrx::IntoDatum>(
        claims: &[Claim<'a>],
        f: impl Fn(&Claim<'a>) -> T,
    ) -> pgrx::datum::DatumWithOid<'static> {
        claims.iter().map(f).collect::<Vec<T>>().into()
    }
    let args = [
        col(&claims, |c| c.org),
        col(&claims, |c| c.key.to_string()),
        col(&claims, |c| c.id),
        col(&claims, |c| c.user),
        col(&claims, |c| c.at),
        col(&claims, |c| c.digest.to_vec()),
    ];
    Spi::connect_mut(|c| -> Result<_> {
        let p = plan(
            c,
            "INSERT INTO usage_tracker_private.ai_usage_idempotency \
                    (org_id, idempotency_key, log_id, user_id, created_at, payload_digest) \
             SELECT * FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::uuid[]), \
                                  pg_catalog.unnest($4::uuid[]), pg_catalog.unnest($5::timestamptz[]), pg_catalog.unnest($6::bytea[])) \
             ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING log_id",
            &args,
            true,
        )?;
        let mut claimed = std::collections::HashSet::new();
        for r in c.update(&*p, None, &args)? {
            if let Some(id) = r.get::<Uuid>(1)? {
                claimed.insert(id);
            }
        }
        Ok(claimed)
    })
}
