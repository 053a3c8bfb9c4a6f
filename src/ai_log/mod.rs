//! `log_ai_usage` and `log_ai_usage_batch`: seed 001's ingestion, with
//! authorization, validation, exact costs from the price catalog and
//! idempotency keys. A request is checked and priced by [`prepare`], written
//! by write.rs (one row, or a batch's rows per partition) and accounted for
//! (limits, budgets) once per organization and period.

mod batch;
mod keys;
mod write;

use std::cell::RefCell;
use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;
use rust_decimal::Decimal;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_write, caller, Caller};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::partitions;
use crate::pricing::{compute_costs, price_at, Costs, Tokens};
use crate::spi_util::read_one;
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

/// What only the extension itself may set on a logged request.
#[derive(Clone, Copy, Default)]
pub struct Internal {
    /// The request's total cost as a trusted caller gave it (a report run
    /// marked successful with p_cost_usd), instead of the catalog's.
    pub cost_override: Option<Decimal>,
}

/// A request checked and priced, ready to be written.
pub struct Prepared {
    pub org: Uuid,
    pub user: Uuid,
    pub created_at: TimestampWithTimeZone,
    /// Its month's partition (partitions::month_key).
    pub month: i32,
    pub toks: Tokens,
    pub total_tokens: i64,
    pub tool_turns: i32,
    pub price_id: Option<i32>,
    pub provider: Option<String>,
    pub costs: Costs,
    pub status: String,
    pub request_type: String,
    pub model: String,
    pub cached: bool,
    /// The digest of what the caller sent, when it has a key (and the
    /// database keeps digests: 0.3.0).
    pub digest: Option<Vec<u8>>,
    /// The caller's other values as given.
    pub u: AiUsage,
}

/// What one call (a single request or a batch) has already checked:
/// writers it authorized, projects it found in their organization, the
/// log's retention cutoff.
#[derive(Default)]
pub struct Checked {
    writers: HashSet<(Uuid, Uuid)>,
    projects: HashSet<(Uuid, Uuid)>,
    cutoff: Option<Option<DateTime<Utc>>>,
}

/// Who and where, before anything else: a caller who may not write here
/// learns nothing from how the rest of the arguments would be judged.
/// Returns (organization, user).
pub fn authorize(who: Caller, u: &AiUsage, checked: &mut Checked) -> Result<(Uuid, Uuid)> {
    let user = required("p_user_id", u.user_id)?;
    let org = u.org_id.unwrap_or(user);
    if !checked.writers.contains(&(org, user)) {
        authorize_write(who, user, org)?;
        checked.writers.insert((org, user));
    }
    Ok((org, user))
}

/// Checks every value of an authorized request and prices it.
pub fn prepare(
    who: Caller,
    u: AiUsage,
    (org_id, user_id): (Uuid, Uuid),
    internal: Internal,
    checked: &mut Checked,
) -> Result<Prepared> {
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
        if !checked.projects.contains(&(org_id, project)) {
            crate::projects::check_in_org(org_id, project)?;
            checked.projects.insert((org_id, project));
        }
    }
    if when < now - CLOCK_SKEW {
        if who != Caller::Trusted {
            return Err(UsageError::forbidden(
                "only service_role may record usage in the past (p_occurred_at)",
            ));
        }
        // Its month's partition may already have been dropped by retention.
        let cut = match checked.cutoff {
            Some(c) => c,
            None => {
                let c = crate::retention::cutoff("ai_usage_log")?.and_then(partitions::to_utc);
                checked.cutoff = Some(c);
                c
            }
        };
        if cut.is_some_and(|c| when < c) {
            return Err(UsageError::invalid(
                "p_occurred_at",
                "is older than the AI log's retention (usage_tracker.retention_policies)",
            ));
        }
    }
    let total_tokens = [
        toks.output,
        toks.cache_read,
        toks.cache_write,
        toks.reasoning,
    ]
    .iter()
    .try_fold(toks.input, |a, b| validate::add("total_tokens", a, *b))?;

    // A database not yet updated to 0.3.0 has no digest column: keys then
    // work as before (a retry returns the first id whatever it sends).
    let digest = match &u.idempotency_key {
        Some(_) if crate::relcache::has_column(keys::IDEMPOTENCY, "payload_digest")? => {
            Some(keys::payload_digest(&u, org_id, user_id))
        }
        _ => None,
    };

    // Exact cost from the price in force at that time.
    let price = price_at(&model, u.provider.as_deref(), created_at)?;
    let cached = u.cached.unwrap_or(false);
    let mut costs = compute_costs(&toks, price.as_ref().map(|p| &p.rates), cached)?;
    if let Some(total) = internal.cost_override {
        costs = override_costs(&costs, total);
    }
    let provider = u
        .provider
        .clone()
        .or_else(|| price.as_ref().map(|p| p.provider.clone()));
    Ok(Prepared {
        org: org_id,
        user: user_id,
        created_at,
        month: partitions::month_key(&when),
        toks,
        total_tokens,
        tool_turns,
        price_id: price.as_ref().map(|p| p.price_id),
        provider,
        costs,
        status,
        request_type,
        model,
        cached,
        digest,
        u,
    })
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
    let mut checked = Checked::default();
    let ids = authorize(who, &u, &mut checked)?;
    let p = prepare(who, u, ids, internal, &mut checked)?;

    // A retry returns the first call's id before anything is written.
    if let Some(key) = &p.u.idempotency_key {
        if let Some(first) = keys::first_use(p.org, key)? {
            return keys::replay(&first, p.user, p.digest.as_deref().unwrap_or_default());
        }
    }
    // The request's tokens go to its organization's AI-fed period rows in
    // the insert itself; rows missing (a new period) are made after it.
    let fed = match write::fed(&p)? {
        Some(f) => crate::usage::ai_limits::sums(p.org, &[f])?,
        None => Vec::new(),
    };
    match write::insert_one(&p, &fed)? {
        Some((id, added)) => {
            crate::usage::ai_limits::write(p.org, &fed, &added)?;
            write::apply_budgets(&[(&p, id)])?;
            Ok(id)
        }
        None => {
            // A concurrent call with the same key committed first.
            let key = p.u.idempotency_key.as_deref().unwrap_or_default();
            match keys::first_use(p.org, key)? {
                Some(first) => {
                    keys::replay(&first, p.user, p.digest.as_deref().unwrap_or_default())
                }
                None => Err(UsageError::Internal("idempotency key vanished".into())),
            }
        }
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
