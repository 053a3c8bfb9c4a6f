//! `log_ai_usage`: seed 001's ingestion, with authorization, validation,
//! exact costs from the price catalog and idempotency keys.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use chrono::Duration;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_write, caller, Caller};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::partitions;
use crate::pricing::{compute_costs, price_at, to_numeric, Costs, Tokens};
use crate::spi_util::{plan, read_one};
use crate::validate::{self, check_len, required};

/// How far a user's p_occurred_at may be from now (clock skew); further in
/// the past is a backfill, which only trusted callers may do.
pub const CLOCK_SKEW: Duration = Duration::seconds(limits::CLOCK_SKEW_SECONDS);

thread_local! {
    // Request types are only ever added, so a hit stays valid; a miss is re-checked.
    static REQUEST_TYPES: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

pub fn check_request_type(t: &str) -> Result<()> {
    if REQUEST_TYPES.with(|s| s.borrow().contains(t)) {
        return Ok(());
    }
    let found: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.request_types r WHERE r.request_type = $1)",
        &[t.into()],
    )?;
    if found != Some(true) {
        return Err(UsageError::invalid(
            "p_request_type",
            format!("'{t}' is not a known request type (see usage_tracker.request_types; service_role may add_request_type)"),
        ));
    }
    REQUEST_TYPES.with(|s| s.borrow_mut().insert(t.to_string()));
    Ok(())
}

/// Everything log_ai_usage accepts, after defaults.
#[derive(Clone, Default)]
pub struct AiUsage {
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub request_type: Option<String>,
    pub session_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub model_used: Option<String>,
    pub latency_ms: Option<i32>,
    pub tool_turns: Option<i32>,
    pub status: Option<String>,
    pub error_message: Option<String>,
    pub org_id: Option<Uuid>,
    pub occurred_at: Option<TimestampWithTimeZone>,
    pub idempotency_key: Option<String>,
    pub provider: Option<String>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cached: Option<bool>,
    pub metadata: Option<Jsonb>,
    pub project_id: Option<Uuid>,
}

const IDEMPOTENCY: &str = "usage_tracker_private.ai_usage_idempotency";
const LOG: &str = "usage_tracker.ai_usage_log";

/// What only the extension itself may set on a logged request.
#[derive(Clone, Copy, Default)]
pub struct Internal {
    /// The request's total cost as a trusted caller gave it (a report run
    /// marked successful with p_cost_usd), instead of the catalog's.
    pub cost_override: Option<Decimal>,
}

const LOG_COLUMNS: &str = "org_id, user_id, project_id, created_at, customer_id, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    latency_ms, tool_turns, price_id, cached, status, request_type, provider, model_used, \
    input_cost_usd, output_cost_usd, cache_read_cost_usd, cache_write_cost_usd, reasoning_cost_usd, \
    total_cost_usd, potential_cost_usd, user_email, customer_name, session_id, error_message, \
    idempotency_key, metadata, total_tokens";

const LOG_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32";

/// (month partition, with a key, with a digest, 0.3.0 schema).
type InsertKind = (i32, bool, bool, bool);

thread_local! {
    // Insert statements per (month partition, with idempotency key), kept
    // for the backend's life: a handful of months at most.
    static INSERTS: RefCell<HashMap<InsertKind, &'static str>> = RefCell::new(HashMap::new());
}

/// The insert for the month partition `key`. Rows go straight into their
/// partition (log_ai_usage knows it: it just made sure it exists), which
/// spares every call the partition routing of an insert into the parent;
/// Postgres still checks the partition's bounds. With an idempotency key,
/// the statement claims the key first (with the payload's digest, $34); no
/// row comes back when the key was already taken (by a committed or
/// concurrent call).
fn insert_sql(key: i32, with_key: bool, digest: bool, current: bool) -> &'static str {
    let id = (key, with_key, digest, current);
    if let Some(sql) = INSERTS.with(|m| m.borrow().get(&id).copied()) {
        return sql;
    }
    let part = partitions::partition_name(key);
    // A database not updated to 0.3.0 yet has no unpriced_buckets ($33).
    let (columns, values) = if current {
        (
            format!("{LOG_COLUMNS}, unpriced_buckets"),
            format!("{LOG_VALUES}, $33"),
        )
    } else {
        (LOG_COLUMNS.to_string(), LOG_VALUES.to_string())
    };
    let (digest_col, digest_val) = if digest {
        (", payload_digest", ", $34")
    } else {
        ("", "")
    };
    let sql = if with_key {
        format!(
            "WITH k AS ( \
               INSERT INTO usage_tracker_private.ai_usage_idempotency (org_id, idempotency_key, log_id, user_id, created_at{digest_col}) \
               VALUES ($1, $30, pg_catalog.gen_random_uuid(), $2, $4{digest_val}) \
               ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING log_id) \
             INSERT INTO usage_tracker_private.{part} (id, {columns}) \
             SELECT k.log_id, {values} FROM k RETURNING id"
        )
    } else {
        format!(
            "INSERT INTO usage_tracker_private.{part} ({columns}) VALUES ({values}) \
             RETURNING id"
        )
    };
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    INSERTS.with(|m| m.borrow_mut().insert(id, sql));
    sql
}

/// A digest of what the caller sent (not server defaults such as now()):
/// a retry with the same key must send the same request.
fn payload_digest(u: &AiUsage, org: Uuid, user: Uuid) -> Vec<u8> {
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

/// The first call of an idempotency key: its row id, user and digest.
/// The first call of a key: its row id, its user, its payload digest.
type FirstUse = (Uuid, Uuid, Option<Vec<u8>>);

fn first_use(org: Uuid, key: &str) -> Result<Option<FirstUse>> {
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

/// A retry: the first call's id when it was the same user and request
/// (keys recorded before digests were kept match any payload); 23505
/// otherwise.
fn replay(first: FirstUse, user: Uuid, digest: &[u8]) -> Result<Uuid> {
    let (id, owner, stored) = first;
    if owner != user {
        return Err(UsageError::Conflict(
            "idempotency key already used by another user of this organization".into(),
        ));
    }
    match stored {
        Some(d) if d != digest => Err(UsageError::Conflict(
            "idempotency key already used for a different request (same key, different payload); use a new key"
                .into(),
        )),
        _ => Ok(id),
    }
}

/// Costs with a total given by a trusted caller, split between input and
/// output as the catalog's costs are (all input when the catalog has none).
fn override_costs(catalog: &Costs, total: Decimal) -> Costs {
    let input = if catalog.total.is_zero() {
        total
    } else {
        (total * catalog.input / catalog.total).round_dp(12)
    };
    Costs {
        input,
        output: total - input,
        total,
        potential: total,
        ..Costs::default()
    }
}

pub fn log(u: AiUsage) -> Result<Uuid> {
    log_with(u, Internal::default())
}

pub fn log_with(u: AiUsage, internal: Internal) -> Result<Uuid> {
    let who = caller()?;

    // Who and where, before anything else: a caller who may not write here
    // learns nothing from how the rest of the arguments would be judged.
    let user_id = required("p_user_id", u.user_id)?;
    let org_id = u.org_id.unwrap_or(user_id);
    authorize_write(who, user_id, org_id)?;

    // Required values and enumerations.
    let request_type = required("p_request_type", u.request_type.clone())?;
    let status = required("p_status", u.status.clone())?;
    let model = required("p_model_used", u.model_used.clone())?;
    if status != "success" && status != "error" {
        return Err(UsageError::invalid(
            "p_status",
            format!("'{status}' is not success or error"),
        ));
    }
    if model.is_empty() {
        return Err(UsageError::invalid("p_model_used", "must not be empty"));
    }
    check_len("p_model_used", &u.model_used, limits::MAX_MODEL)?;

    // Numbers.
    let toks = Tokens {
        input: validate::tokens("p_input_tokens", u.input_tokens)?,
        output: validate::tokens("p_output_tokens", u.output_tokens)?,
        cache_read: validate::tokens("p_cache_read_tokens", u.cache_read_tokens)?,
        cache_write: validate::tokens("p_cache_write_tokens", u.cache_write_tokens)?,
        reasoning: validate::tokens("p_reasoning_tokens", u.reasoning_tokens)?,
    };
    if let Some(l) = u.latency_ms {
        validate::in_range("p_latency_ms", l, 0, limits::MAX_LATENCY_MS)?;
    }
    let tool_turns = validate::in_range(
        "p_tool_turns",
        u.tool_turns.unwrap_or(0),
        0,
        limits::MAX_TOOL_TURNS,
    )?;

    // Text and JSON.
    check_len("p_user_email", &u.user_email, limits::MAX_EMAIL)?;
    check_len(
        "p_customer_name",
        &u.customer_name,
        limits::MAX_CUSTOMER_NAME,
    )?;
    check_len("p_session_id", &u.session_id, limits::MAX_SESSION_ID)?;
    check_len(
        "p_error_message",
        &u.error_message,
        limits::MAX_ERROR_MESSAGE,
    )?;
    validate::provider("p_provider", &u.provider)?;
    validate::idempotency_key("p_idempotency_key", &u.idempotency_key)?;
    validate::metadata("p_metadata", &u.metadata)?;
    check_request_type(&request_type)?;

    // When it happened.
    let (now_ts, now) = partitions::txn_now()?;
    let created_at = u.occurred_at.unwrap_or(now_ts);
    let when = partitions::to_utc(created_at)
        .ok_or_else(|| UsageError::invalid("p_occurred_at", "must be a finite time"))?;
    if when > now + CLOCK_SKEW {
        return Err(UsageError::invalid("p_occurred_at", "is in the future"));
    }
    if let Some(project) = u.project_id {
        crate::projects::check_in_org(org_id, project)?;
    }
    if when < now - CLOCK_SKEW {
        if who != Caller::Trusted {
            return Err(UsageError::forbidden(
                "only service_role may record usage in the past (p_occurred_at)",
            ));
        }
        // Its month's partition may already have been dropped by retention.
        if let Some(cut) = crate::retention::cutoff("ai_usage_log")? {
            if partitions::to_utc(cut).is_some_and(|c| when < c) {
                return Err(UsageError::invalid(
                    "p_occurred_at",
                    "is older than the AI log's retention (usage_tracker.retention_policies)",
                ));
            }
        }
    }

    // A retry returns the first call's id before anything is written.
    let digest = match &u.idempotency_key {
        Some(k) => {
            let digest = payload_digest(&u, org_id, user_id);
            if let Some(first) = first_use(org_id, k)? {
                return replay(first, user_id, &digest);
            }
            Some(digest)
        }
        None => None,
    };
    // A database not yet updated to 0.3.0 has no digest column: keys then
    // work as before (a retry returns the first id whatever it sends).
    let digest = match digest {
        Some(d) if crate::relcache::has_column(IDEMPOTENCY, "payload_digest")? => Some(d),
        _ => None,
    };

    // Exact cost from the price in force at that time.
    let price = price_at(&model, u.provider.as_deref(), created_at)?;
    let mut costs = compute_costs(
        &toks,
        price.as_ref().map(|p| &p.rates),
        u.cached.unwrap_or(false),
    )?;
    if let Some(total) = internal.cost_override {
        costs = override_costs(&costs, total);
    }
    let provider = u
        .provider
        .clone()
        .or_else(|| price.as_ref().map(|p| p.provider.clone()));

    partitions::ensure_for(&when)?;

    let total_tokens = [
        toks.output,
        toks.cache_read,
        toks.cache_write,
        toks.reasoning,
    ]
    .iter()
    .try_fold(toks.input, |a, b| validate::add("total_tokens", a, *b))?;
    let mut args = vec![
        org_id.into(),
        user_id.into(),
        u.project_id.into(),
        created_at.into(),
        u.customer_id.into(),
        toks.input.into(),
        toks.output.into(),
        toks.cache_read.into(),
        toks.cache_write.into(),
        toks.reasoning.into(),
        u.latency_ms.into(),
        tool_turns.into(),
        price.as_ref().map(|p| p.price_id).into(),
        u.cached.unwrap_or(false).into(),
        status.into(),
        request_type.into(),
        provider.into(),
        model.into(),
        to_numeric(costs.input)?.into(),
        to_numeric(costs.output)?.into(),
        to_numeric(costs.cache_read)?.into(),
        to_numeric(costs.cache_write)?.into(),
        to_numeric(costs.reasoning)?.into(),
        to_numeric(costs.total)?.into(),
        to_numeric(costs.potential)?.into(),
        u.user_email.into(),
        u.customer_name.into(),
        u.session_id.into(),
        u.error_message.into(),
        u.idempotency_key.clone().into(),
        u.metadata.into(),
        total_tokens.into(),
    ];
    let current = crate::relcache::has_column(LOG, "unpriced_buckets")?;
    if current {
        args.push(
            (!costs.unpriced.is_empty())
                .then(|| {
                    costs
                        .unpriced
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                })
                .into(),
        );
    }
    let with_key = u.idempotency_key.is_some();
    if let Some(d) = &digest {
        args.push(d.clone().into());
    }
    let sql = insert_sql(
        partitions::month_key(&when),
        with_key,
        digest.is_some(),
        current,
    );
    let inserted: Option<Uuid> = Spi::connect_mut(|c| -> Result<_> {
        let p = plan(c, sql, &args, true)?;
        let t = c.update(&*p, None, &args)?;
        if t.is_empty() {
            return Ok(None);
        }
        Ok(t.first().get_one::<Uuid>()?)
    })?;
    if let Some(id) = inserted {
        // One meter: the tokens count against the organization's AI-fed
        // token limits (a response served from the application's own cache
        // used no provider tokens).
        if !u.cached.unwrap_or(false) {
            let input_side = validate::add("tokens", toks.input, toks.cache_read)
                .and_then(|t| validate::add("tokens", t, toks.cache_write))?;
            let output_side = validate::add("tokens", toks.output, toks.reasoning)?;
            crate::usage::ai_limits::feed(org_id, created_at, input_side, output_side)?;
        }
        if !costs.total.is_zero() && crate::usage::budgets::org_has_budget(org_id)? {
            crate::usage::budgets::apply_ai_cost(org_id, user_id, created_at, costs.total, &[id])?;
        }
        return Ok(id);
    }

    // A concurrent call with the same key committed first.
    let key = u.idempotency_key.unwrap_or_default();
    match first_use(org_id, &key)? {
        Some(first) => replay(first, user_id, digest.as_deref().unwrap_or_default()),
        None => Err(UsageError::Internal("idempotency key vanished".into())),
    }
}

/// Records one AI request (seed 001's 13 parameters, then the optional
/// ones) and returns its id. See the public wrapper usage_tracker.log_ai_usage.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "log_ai_usage"
)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn log_ai_usage(
    p_user_id: Option<Uuid>,
    p_user_email: Option<String>,
    p_customer_id: Option<i64>,
    p_customer_name: Option<String>,
    p_request_type: Option<String>,
    p_session_id: Option<String>,
    p_input_tokens: Option<i64>,
    p_output_tokens: Option<i64>,
    p_model_used: Option<String>,
    p_latency_ms: Option<i32>,
    p_tool_turns: Option<i32>,
    p_status: Option<String>,
    p_error_message: Option<String>,
    p_org_id: Option<Uuid>,
    p_occurred_at: Option<TimestampWithTimeZone>,
    p_idempotency_key: Option<String>,
    p_provider: Option<String>,
    p_cache_read_tokens: Option<i64>,
    p_cache_write_tokens: Option<i64>,
    p_reasoning_tokens: Option<i64>,
    p_cached: Option<bool>,
    p_metadata: Option<Jsonb>,
    p_project_id: Option<Uuid>,
) -> PgResult<Uuid> {
    guarded(|| {
        log(AiUsage {
            user_id: p_user_id,
            user_email: p_user_email,
            customer_id: p_customer_id,
            customer_name: p_customer_name,
            request_type: p_request_type,
            session_id: p_session_id,
            input_tokens: p_input_tokens,
            output_tokens: p_output_tokens,
            model_used: p_model_used,
            latency_ms: p_latency_ms,
            tool_turns: p_tool_turns,
            status: p_status,
            error_message: p_error_message,
            org_id: p_org_id,
            occurred_at: p_occurred_at,
            idempotency_key: p_idempotency_key,
            provider: p_provider,
            cache_read_tokens: p_cache_read_tokens,
            cache_write_tokens: p_cache_write_tokens,
            reasoning_tokens: p_reasoning_tokens,
            cached: p_cached,
            metadata: p_metadata,
            project_id: p_project_id,
        })
    })
}

fn add_request_type_impl(name: Option<String>, description: Option<String>) -> Result<bool> {
    crate::identity::require_trusted("add_request_type")?;
    let name = name.ok_or(UsageError::NullValue("p_request_type"))?;
    if !validate::valid_name(&name) {
        return Err(UsageError::invalid(
            "p_request_type",
            "use lower case letters, digits and _, starting with a letter (at most 63)",
        ));
    }
    check_len("p_description", &description, limits::MAX_DESCRIPTION)?;
    let added: Option<bool> = crate::spi_util::write_one(
        "INSERT INTO usage_tracker.request_types (request_type, description) VALUES ($1, $2) \
         ON CONFLICT (request_type) DO NOTHING RETURNING true",
        &[name.into(), description.into()],
    )?;
    Ok(added.unwrap_or(false))
}

/// Adds a request type (service_role). Returns false when it existed.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "add_request_type"
)]
#[search_path(pg_catalog, pg_temp)]
fn add_request_type(
    p_request_type: Option<String>,
    p_description: Option<String>,
) -> PgResult<bool> {
    guarded(|| add_request_type_impl(p_request_type, p_description))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn logs_with_exact_cost_and_price_id() {
        let id: Option<Uuid> = Spi::get_one(
            "SELECT usage_tracker.log_ai_usage('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
             p_input_tokens => 1000, p_output_tokens => 500)",
        )
        .unwrap();
        let (cost, price): (Option<String>, Option<i32>) = Spi::get_two_with_args(
            "SELECT total_cost_usd::text, price_id FROM usage_tracker.ai_usage_log WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(cost.as_deref(), Some("0.0105"));
        assert_eq!(price, Some(1));
    }

    #[pg_test]
    fn same_key_returns_first_id_and_counts_once() {
        let sql =
            "SELECT usage_tracker.log_ai_usage('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
                   p_input_tokens => 10, p_idempotency_key => 'k-1')";
        let a: Option<Uuid> = Spi::get_one(sql).unwrap();
        let b: Option<Uuid> = Spi::get_one(sql).unwrap();
        assert_eq!(a, b);
        let n: Option<i64> = Spi::get_one(
            "SELECT count(*) FROM usage_tracker.ai_usage_log WHERE idempotency_key = 'k-1'",
        )
        .unwrap();
        assert_eq!(n, Some(1));
    }

    #[pg_test]
    fn unknown_model_is_logged_at_zero_cost() {
        Spi::run(
            "SELECT usage_tracker.log_ai_usage('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
             p_input_tokens => 10, p_model_used => 'mystery-1')",
        )
        .unwrap();
        let (cost, price): (Option<String>, Option<i32>) = Spi::get_two(
            "SELECT total_cost_usd::text, price_id FROM usage_tracker.ai_usage_log WHERE model_used = 'mystery-1'",
        )
        .unwrap();
        assert_eq!(cost.as_deref(), Some("0"));
        assert_eq!(price, None);
        let listed: Option<i64> = Spi::get_one(
            "SELECT requests FROM usage_tracker.list_unknown_models() WHERE model_used = 'mystery-1'",
        )
        .unwrap();
        assert_eq!(listed, Some(1));
    }

    #[pg_test]
    fn price_in_force_at_the_event_time() {
        Spi::run(
            "SELECT usage_tracker.set_model_price('anthropic', 'claude-sonnet-4-20250514', \
             '2026-01-01 00:00+00', 6, 30)",
        )
        .unwrap();
        let cost_at = |at: &str| -> Option<String> {
            let id: Option<Uuid> = Spi::get_one_with_args(
                "SELECT usage_tracker.log_ai_usage('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
                 p_input_tokens => 1000000, p_occurred_at => $1::timestamptz)",
                &[at.into()],
            )
            .unwrap();
            Spi::get_one_with_args(
                "SELECT total_cost_usd::text FROM usage_tracker.ai_usage_log WHERE id = $1",
                &[id.into()],
            )
            .unwrap()
        };
        assert_eq!(
            cost_at("2025-12-31 23:59:59.999999+00").as_deref(),
            Some("3")
        );
        assert_eq!(cost_at("2026-01-01 00:00:00+00").as_deref(), Some("6"));
    }

    #[pg_test]
    #[should_panic(expected = "p_input_tokens is out of range")]
    fn negative_tokens_are_rejected() {
        Spi::run(
            "SELECT usage_tracker.log_ai_usage('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, p_input_tokens => -1)",
        )
        .unwrap();
    }
}
