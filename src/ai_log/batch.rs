//! `log_ai_usage_batch`: up to MAX_BATCH_EVENTS requests in one call, with
//! exactly the checks, prices, keys, limits and budgets of one
//! `log_ai_usage` call per event, all or nothing. The rows are written with
//! one INSERT per month partition and accounted for once per organization,
//! limit and budget period.

use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::Uuid;

use super::keys::{self, Claim};
use super::{authorize, prepare, write, AiUsage, Checked, Internal, Prepared};
use crate::batch::{id_array, new_uuid, Batch, Event};
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::caller;
use crate::jsonb::Jsonb;

/// An event's keys: log_ai_usage's parameter names without `p_`.
const KEYS: [&str; 23] = [
    "user_id",
    "user_email",
    "customer_id",
    "customer_name",
    "request_type",
    "session_id",
    "input_tokens",
    "output_tokens",
    "model_used",
    "latency_ms",
    "tool_turns",
    "status",
    "error_message",
    "org_id",
    "occurred_at",
    "idempotency_key",
    "provider",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cached",
    "metadata",
    "project_id",
];

/// An event as log_ai_usage's arguments: a missing key takes the
/// parameter's default, JSON null is NULL.
fn event_usage(e: &Event<'_>) -> Result<AiUsage> {
    let or = |v: Option<String>, key: &str, default: &str| {
        if e.has(key) {
            v
        } else {
            Some(default.to_string())
        }
    };
    let zero = |v: Option<i64>, key: &str| if e.has(key) { v } else { Some(0) };
    Ok(AiUsage {
        user_id: e.uuid("user_id")?,
        user_email: e.text("user_email")?,
        customer_id: e.bigint("customer_id")?,
        customer_name: e.text("customer_name")?,
        request_type: or(e.text("request_type")?, "request_type", "report"),
        session_id: e.text("session_id")?,
        input_tokens: zero(e.bigint("input_tokens")?, "input_tokens"),
        output_tokens: zero(e.bigint("output_tokens")?, "output_tokens"),
        model_used: or(
            e.text("model_used")?,
            "model_used",
            "claude-sonnet-4-20250514",
        ),
        latency_ms: e.int("latency_ms")?,
        tool_turns: if e.has("tool_turns") {
            e.int("tool_turns")?
        } else {
            Some(0)
        },
        status: or(e.text("status")?, "status", "success"),
        error_message: e.text("error_message")?,
        org_id: e.uuid("org_id")?,
        occurred_at: e.timestamptz("occurred_at")?,
        idempotency_key: e.text("idempotency_key")?,
        provider: e.text("provider")?,
        cache_read_tokens: zero(e.bigint("cache_read_tokens")?, "cache_read_tokens"),
        cache_write_tokens: zero(e.bigint("cache_write_tokens")?, "cache_write_tokens"),
        reasoning_tokens: zero(e.bigint("reasoning_tokens")?, "reasoning_tokens"),
        cached: if e.has("cached") {
            e.boolean("cached")?
        } else {
            Some(false)
        },
        metadata: e.jsonb("metadata")?,
        project_id: e.uuid("project_id")?,
    })
}

/// What becomes of each event: a new row, or the id of an earlier one
/// (a key logged before, or repeated earlier in the batch).
enum Outcome {
    New(Uuid),
    Same(Uuid),
    /// The same key as event `i` of this batch (same request).
    AsEvent(usize),
}

fn log_batch(events: Option<Jsonb>) -> Result<Jsonb> {
    let batch = Batch::parse(events)?;
    let raw = batch.events()?;
    let who = caller()?;
    let mut checked = Checked::default();

    // Every event read and authorized before any is judged further.
    let mut usages = Vec::with_capacity(raw.len());
    let mut ids = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let e = Event::parse(i, r, &KEYS)?;
        let u = event_usage(&e)?;
        ids.push(authorize(who, &u, &mut checked).map_err(|err| err.in_event(i))?);
        usages.push(u);
    }
    let mut prepared: Vec<Prepared> = Vec::with_capacity(usages.len());
    for (i, (u, who_where)) in usages.into_iter().zip(ids).enumerate() {
        prepared.push(
            prepare(who, u, who_where, Internal::default(), &mut checked)
                .map_err(|err| err.in_event(i))?,
        );
    }

    // Keys: a repeat inside the batch is the first event's request (or a
    // conflict); a key logged before returns its row; the rest are claimed.
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut first_in_batch: HashMap<(Uuid, &str), usize> = HashMap::new();
    let keyed: Vec<(Uuid, String)> = prepared
        .iter()
        .filter_map(|p| p.u.idempotency_key.clone().map(|k| (p.org, k)))
        .collect();
    let logged = keys::first_uses(&keyed)?;
    for (i, p) in prepared.iter().enumerate() {
        let Some(key) = p.u.idempotency_key.as_deref() else {
            outcomes.push(Outcome::New(new_uuid()?));
            continue;
        };
        let digest = p.digest.as_deref().unwrap_or_default();
        if let Some(&j) = first_in_batch.get(&(p.org, key)) {
            let q = &prepared[j];
            let first = (Uuid::from_bytes([0; 16]), q.user, q.digest.clone());
            keys::replay(&first, p.user, digest).map_err(|err| err.in_event(i))?;
            outcomes.push(Outcome::AsEvent(j));
            continue;
        }
        first_in_batch.insert((p.org, key), i);
        match logged.get(&(p.org, key.to_string())) {
            Some(first) => {
                let id = keys::replay(first, p.user, digest).map_err(|err| err.in_event(i))?;
                outcomes.push(Outcome::Same(id));
            }
            None => outcomes.push(Outcome::New(new_uuid()?)),
        }
    }

    // Claim the new keys; one a concurrent call claimed meanwhile is that
    // call's request (or a conflict).
    let claims: Vec<Claim<'_>> = prepared
        .iter()
        .zip(&outcomes)
        .filter_map(|(p, o)| match (o, p.u.idempotency_key.as_deref()) {
            (Outcome::New(id), Some(key)) => Some(Claim {
                org: p.org,
                key,
                id: *id,
                user: p.user,
                at: p.created_at,
                digest: p.digest.as_deref().unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    if !claims.is_empty() {
        let claimed = keys::claim(claims)?;
        for (i, p) in prepared.iter().enumerate() {
            let Outcome::New(id) = outcomes[i] else {
                continue;
            };
            let Some(key) = p.u.idempotency_key.as_deref() else {
                continue;
            };
            if claimed.contains(&id) {
                continue;
            }
            let first = keys::first_use(p.org, key)?
                .ok_or_else(|| UsageError::Internal("idempotency key vanished".into()))?;
            let digest = p.digest.as_deref().unwrap_or_default();
            let same = keys::replay(&first, p.user, digest).map_err(|err| err.in_event(i))?;
            outcomes[i] = Outcome::Same(same);
        }
    }

    let rows: Vec<(&Prepared, Uuid)> = prepared
        .iter()
        .zip(&outcomes)
        .filter_map(|(p, o)| match o {
            Outcome::New(id) => Some((p, *id)),
            _ => None,
        })
        .collect();
    if !rows.is_empty() {
        write::insert_many(&rows)?;
        write::account(&rows)?;
    }
    let mut result = Vec::with_capacity(outcomes.len());
    for o in &outcomes {
        result.push(match o {
            Outcome::New(id) | Outcome::Same(id) => *id,
            Outcome::AsEvent(j) => match outcomes[*j] {
                Outcome::New(id) | Outcome::Same(id) => id,
                Outcome::AsEvent(_) => return Err(UsageError::Internal("batch key chain".into())),
            },
        });
    }
    id_array(&result)
}

/// Records up to 10,000 AI requests at once (see the public wrapper
/// usage_tracker.log_ai_usage_batch); returns their ids in input order.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "log_ai_usage_batch"
)]
#[search_path(pg_catalog, pg_temp)]
fn log_ai_usage_batch(p_events: Option<Jsonb>) -> PgResult<Jsonb> {
    guarded(|| log_batch(p_events))
}
