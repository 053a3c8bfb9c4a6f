//! Seed 004: report runs — lifecycle (running -> success / failed /
//! cancelled), webhook delivery tracking, monthly statistics and a monthly
//! run limit that concurrent starts cannot exceed.

mod reads;

use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};
use rust_decimal::Decimal;
use serde_json::json;

use crate::ai_log::{self, AiUsage, Internal};
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_write, caller, Caller};
use crate::jsonb::Jsonb;
use crate::limits;
use crate::orgs::{context, period_bounds, OrgContext};
use crate::partitions::txn_now;
use crate::pricing::{compute_costs, price_at, to_numeric, Tokens};
use crate::spi_util::{read_one, write_one};
use crate::validate::{self, check_len, required};

/// Runs still running after this long are failed by run_maintenance
/// (override with the setting usage_tracker.report_run_timeout).
pub const DEFAULT_TIMEOUT: &str = "1 hour";
/// The plan limit that caps a user's report runs per billing period.
pub const RUN_LIMIT_KEY: &str = "report_runs_per_user";
/// The model a run's usage is logged under when it names none.
const UNKNOWN_MODEL: &str = "unknown";

const FORMATS: [&str; 4] = ["markdown", "html", "text", "json"];

fn snapshot_arg(v: &Option<Jsonb>) -> Result<()> {
    match v {
        Some(j) => j.check_object("p_configuration_snapshot", limits::CONFIGURATION_SNAPSHOT),
        None => Ok(()),
    }
}

fn nonneg(name: &'static str, v: Option<i64>, max: i64) -> Result<Option<i64>> {
    match v {
        Some(n) => Ok(Some(validate::in_range(name, n, 0, max)?)),
        None => Ok(None),
    }
}

/// The organization's plan limit on runs per user and billing period
/// (-1: unlimited).
fn plan_run_limit(ctx: &OrgContext) -> Result<i64> {
    let max: Option<i64> = read_one(
        "SELECT pl.max_quantity FROM usage_tracker.plan_limits pl \
          WHERE pl.plan = $1 AND pl.limit_key = $2 ORDER BY pl.shipped LIMIT 1",
        &[ctx.plan.as_str().into(), RUN_LIMIT_KEY.into()],
    )?;
    Ok(max.unwrap_or(-1))
}

#[allow(clippy::too_many_arguments)]
fn start(
    user: Option<Uuid>,
    repository: Option<Uuid>,
    configuration: Option<Uuid>,
    snapshot: Option<Jsonb>,
    org: Option<Uuid>,
    enforce: Option<bool>,
    limit: Option<i32>,
) -> Result<pgrx::JsonB> {
    let who = caller()?;
    let user = required("p_user_id", user)?;
    let org = org.unwrap_or(user);
    authorize_write(who, user, org)?;
    snapshot_arg(&snapshot)?;
    if let Some(l) = limit {
        validate::in_range("p_monthly_limit", l, 0, limits::MAX_MONTHLY_RUN_LIMIT)?;
    }
    // Users are always held to their plan's limit (a lower p_monthly_limit
    // may tighten it); trusted callers choose.
    let enforce = match (who, enforce) {
        (Caller::User(_), Some(false)) => {
            return Err(UsageError::forbidden(
                "only service_role may start a report run without the monthly limit",
            ))
        }
        (Caller::User(_), _) => true,
        (Caller::Trusted, e) => e.unwrap_or(false),
    };
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let mut effective: Option<i64> = None;
    let mut used: Option<i64> = None;
    if enforce {
        let plan_limit = plan_run_limit(&ctx)?;
        let limit = match (who, limit.map(i64::from)) {
            (Caller::Trusted, Some(l)) => l,
            (Caller::User(_), Some(l)) if plan_limit < 0 || l < plan_limit => l,
            _ => plan_limit,
        };
        effective = Some(limit);
        // One start at a time per organization and user: the next one
        // waits, then counts the committed runs — running ones hold their
        // place like reservations.
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended( \
               'usage_tracker.report_runs:' || $1::text || ':' || $2::text, 0))",
            &[org.into(), user.into()],
        )?;
        let (from, to) = period_bounds(&ctx)?;
        let n: Option<i64> = read_one(
            "SELECT count(*) FROM usage_tracker.report_runs r WHERE r.user_id = $1 AND r.org_id = $2 \
             AND r.started_at >= $3 AND r.started_at < $4 AND r.status IN ('running', 'success')",
            &[user.into(), org.into(), from.into(), to.into()],
        )?;
        let n = n.unwrap_or(0);
        if limit >= 0 && n >= limit {
            return Ok(pgrx::JsonB(
                json!({ "started": false, "run_id": null, "used": n, "limit": limit }),
            ));
        }
        used = Some(n + 1);
    }
    let id: Option<Uuid> = write_one(
        "INSERT INTO usage_tracker.report_runs (org_id, user_id, repository_id, report_configuration_id, configuration_snapshot) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[org.into(), user.into(), repository.into(), configuration.into(), snapshot.into()],
    )?;
    let id = id.ok_or_else(|| UsageError::Internal("run insert".into()))?;
    Ok(pgrx::JsonB(
        json!({ "started": true, "run_id": id.to_string(), "used": used, "limit": effective }),
    ))
}

/// Starts a report run and returns {started, run_id, used, limit}. Users
/// are held to their plan's runs per billing period (report_runs_per_user;
/// p_monthly_limit may only lower it), atomically: concurrent starts at the
/// limit cannot exceed it. Trusted callers choose with p_enforce_limit and
/// p_monthly_limit.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "start_report_run"
)]
#[search_path(pg_catalog, pg_temp)]
fn start_report_run(
    p_user_id: Option<Uuid>,
    p_repository_id: Option<Uuid>,
    p_report_configuration_id: Option<Uuid>,
    p_configuration_snapshot: Option<Jsonb>,
    p_org_id: Option<Uuid>,
    p_enforce_limit: Option<bool>,
    p_monthly_limit: Option<i32>,
) -> PgResult<pgrx::JsonB> {
    guarded(|| {
        start(
            p_user_id,
            p_repository_id,
            p_report_configuration_id,
            p_configuration_snapshot,
            p_org_id,
            p_enforce_limit,
            p_monthly_limit,
        )
    })
}

struct Run {
    org: Uuid,
    user: Uuid,
    status: String,
    model: Option<String>,
}

/// Checks, before any other argument, that a user changes only their own
/// run (trusted callers may change any): how the other arguments would be
/// judged is nobody else's business.
fn authorize_run(who: Caller, id: Option<Uuid>) -> Result<()> {
    let Caller::User(me) = who else {
        return Ok(());
    };
    let id = required("p_run_id", id)?;
    let owner: Option<Uuid> = read_one(
        "SELECT r.user_id FROM usage_tracker.report_runs r WHERE r.id = $1",
        &[id.into()],
    )?;
    match owner {
        None => Err(UsageError::invalid("p_run_id", "no such report run")),
        Some(o) if o != me => Err(UsageError::forbidden(
            "a user may only change their own report runs",
        )),
        Some(_) => Ok(()),
    }
}

/// Locks a run for a change by its owner (or a trusted caller). Only
/// running runs change, except webhook attempts on successful ones.
fn lock_run(who: Caller, id: Option<Uuid>, allowed_status: &str) -> Result<(Uuid, Run)> {
    let id = id.ok_or(UsageError::NullValue("p_run_id"))?;
    let row = Spi::connect_mut(|c| -> Result<Option<Run>> {
        let t = c.update(
            "SELECT r.org_id, r.user_id, r.status, r.model_used FROM usage_tracker.report_runs r WHERE r.id = $1 FOR UPDATE",
            Some(1),
            &[id.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok(Some(Run {
            org: r
                .get::<Uuid>(1)?
                .ok_or_else(|| UsageError::Internal("org".into()))?,
            user: r
                .get::<Uuid>(2)?
                .ok_or_else(|| UsageError::Internal("user".into()))?,
            status: r.get::<String>(3)?.unwrap_or_default(),
            model: r.get::<String>(4)?,
        }))
    })?;
    let run = row.ok_or_else(|| UsageError::invalid("p_run_id", "no such report run"))?;
    if let Caller::User(me) = who {
        if me != run.user {
            return Err(UsageError::forbidden(
                "a user may only change their own report runs",
            ));
        }
    }
    if run.status != allowed_status {
        return Err(UsageError::NotOpen(format!(
            "the run is {}, not {allowed_status}",
            run.status
        )));
    }
    Ok((id, run))
}

#[allow(clippy::too_many_arguments)]
fn update(
    id: Option<Uuid>,
    commits: Option<i32>,
    from: Option<String>,
    to: Option<String>,
    tokens: Option<i64>,
    model: Option<String>,
    snapshot: Option<Jsonb>,
) -> Result<bool> {
    let who = caller()?;
    authorize_run(who, id)?;
    nonneg(
        "p_commits_processed",
        commits.map(i64::from),
        i32::MAX as i64,
    )?;
    nonneg("p_tokens_used", tokens, limits::MAX_TOKENS)?;
    check_len("p_commit_range_from", &from, limits::MAX_COMMIT_REF)?;
    check_len("p_commit_range_to", &to, limits::MAX_COMMIT_REF)?;
    check_len("p_model_used", &model, limits::MAX_MODEL)?;
    snapshot_arg(&snapshot)?;
    let (id, run) = lock_run(who, id, "running")?;
    write_one::<bool>(
        "UPDATE usage_tracker.report_runs SET commits_processed = coalesce($3, commits_processed), \
           commit_range_from = coalesce($4, commit_range_from), commit_range_to = coalesce($5, commit_range_to), \
           tokens_used = coalesce($6, tokens_used), model_used = coalesce($7, model_used), \
           configuration_snapshot = coalesce($8, configuration_snapshot), updated_at = pg_catalog.now() \
         WHERE org_id = $1 AND id = $2 RETURNING true",
        &[run.org.into(), id.into(), commits.into(), from.into(), to.into(), tokens.into(), model.into(), snapshot.into()],
    )?;
    Ok(true)
}

/// Updates a running report run; NULL keeps a value.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "update_report_run"
)]
#[search_path(pg_catalog, pg_temp)]
fn update_report_run(
    p_run_id: Option<Uuid>,
    p_commits_processed: Option<i32>,
    p_commit_range_from: Option<String>,
    p_commit_range_to: Option<String>,
    p_tokens_used: Option<i64>,
    p_model_used: Option<String>,
    p_configuration_snapshot: Option<Jsonb>,
) -> PgResult<bool> {
    guarded(|| {
        update(
            p_run_id,
            p_commits_processed,
            p_commit_range_from,
            p_commit_range_to,
            p_tokens_used,
            p_model_used,
            p_configuration_snapshot,
        )
    })
}

pub struct Success {
    pub tokens_used: Option<i64>,
    pub model_used: Option<String>,
    pub cost_usd: Option<AnyNumeric>,
    pub commits_processed: Option<i32>,
    pub report_content: Option<String>,
    pub report_format: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// A cost in USD as a JSON number, to nine decimal places (the JSON scale
/// of money; the tables keep the exact value).
pub fn usd_json(d: Decimal) -> serde_json::Value {
    serde_json::Value::Number(
        d.round_dp(9)
            .normalize()
            .to_string()
            .parse()
            .unwrap_or_else(|_| serde_json::Number::from(0)),
    )
}

fn success(id: Option<Uuid>, s: Success) -> Result<pgrx::JsonB> {
    let who = caller()?;
    authorize_run(who, id)?;
    // One cost per run: the catalog's, unless a trusted caller sets it.
    if s.cost_usd.is_some() && who != Caller::Trusted {
        return Err(UsageError::forbidden(
            "only service_role may set p_cost_usd; the run is costed from the price catalog",
        ));
    }
    let input = nonneg("p_input_tokens", s.input_tokens, limits::MAX_TOKENS)?;
    let output = nonneg("p_output_tokens", s.output_tokens, limits::MAX_TOKENS)?;
    let split = validate::add("p_tokens_used", input.unwrap_or(0), output.unwrap_or(0))?;
    let tokens = nonneg("p_tokens_used", s.tokens_used, limits::MAX_TOKENS)?.unwrap_or(split);
    nonneg(
        "p_commits_processed",
        s.commits_processed.map(i64::from),
        i32::MAX as i64,
    )?;
    check_len(
        "p_report_content",
        &s.report_content,
        limits::MAX_REPORT_CONTENT,
    )?;
    check_len("p_model_used", &s.model_used, limits::MAX_MODEL)?;
    if let Some(f) = &s.report_format {
        if !FORMATS.contains(&f.as_str()) {
            return Err(UsageError::invalid(
                "p_report_format",
                format!("'{f}' is not markdown, html, text or json"),
            ));
        }
    }
    let given_cost = match s.cost_usd {
        None => None,
        Some(c) => {
            let d = Decimal::from_str_exact(&c.to_string()).map_err(|_| {
                UsageError::out_of_range("p_cost_usd", format!("{c} is not a finite amount"))
            })?;
            if d.is_sign_negative() || d > Decimal::from(limits::MAX_RUN_COST_USD) {
                return Err(UsageError::out_of_range(
                    "p_cost_usd",
                    format!("{d} is not between 0 and {}", limits::MAX_RUN_COST_USD),
                ));
            }
            Some(d.normalize())
        }
    };
    let (id, run) = lock_run(who, id, "running")?;
    let model = s.model_used.clone().or(run.model.clone());
    let (now_ts, _) = txn_now()?;
    // Tokens not split into input and output are priced as input.
    let (in_tok, out_tok) = match (input, output) {
        (None, None) => (tokens, 0),
        (i, o) => (i.unwrap_or(0), o.unwrap_or(0)),
    };
    let cost = match (given_cost, &model) {
        (Some(c), _) => c,
        (None, Some(m)) => {
            let price = price_at(m, None, now_ts)?;
            compute_costs(
                &Tokens {
                    input: in_tok,
                    output: out_tok,
                    ..Tokens::default()
                },
                price.as_ref().map(|p| &p.rates),
                false,
            )?
            .total
        }
        (None, None) => Decimal::ZERO,
    };
    write_one::<bool>(
        "UPDATE usage_tracker.report_runs SET status = 'success', completed_at = pg_catalog.now(), \
           tokens_used = $3, model_used = $4, cost_usd = $5, commits_processed = coalesce($6, commits_processed), \
           report_content = coalesce($7, report_content), report_format = coalesce($8, report_format), \
           updated_at = pg_catalog.now() \
         WHERE org_id = $1 AND id = $2 RETURNING true",
        &[
            run.org.into(),
            id.into(),
            tokens.into(),
            model.clone().into(),
            to_numeric(cost)?.into(),
            s.commits_processed.into(),
            s.report_content.into(),
            s.report_format.into(),
        ],
    )?;
    // The run counts in the organization's usage: an event, and its tokens
    // and cost in the AI log (so dashboards and budgets include it). The run
    // row's lock makes this happen once; no idempotency key is needed, so
    // no caller-visible key can pre-empt it.
    let ctx = context(run.org, now_ts)?;
    let rules = crate::usage::rules_for(&ctx.plan, "report_run")?;
    crate::usage::record_event(
        crate::usage::Increment {
            ctx: &ctx,
            event_type: "report_run",
            quantity: 1,
            occurred_at: now_ts,
            counter_date: None,
            user_id: Some(run.user),
            metadata: Some(Jsonb::from_text(
                &json!({ "run_id": id.to_string(), "tokens": tokens, "cost_usd": usd_json(cost) })
                    .to_string(),
            )?),
            source: "event",
        },
        &rules,
    )?;
    if model.is_some() || tokens > 0 || !cost.is_zero() {
        ai_log::log_with(
            AiUsage {
                user_id: Some(run.user),
                request_type: Some("report".into()),
                session_id: Some(format!("report-run:{id}")),
                input_tokens: Some(in_tok),
                output_tokens: Some(out_tok),
                model_used: Some(model.unwrap_or_else(|| UNKNOWN_MODEL.into())),
                tool_turns: Some(0),
                status: Some("success".into()),
                org_id: Some(run.org),
                metadata: Some(Jsonb::from_text(
                    &json!({ "report_run_id": id.to_string() }).to_string(),
                )?),
                ..AiUsage::default()
            },
            Internal {
                cost_override: Some(cost),
            },
        )?;
    }
    Ok(pgrx::JsonB(
        json!({ "run_id": id.to_string(), "status": "success", "tokens_used": tokens, "cost_usd": usd_json(cost) }),
    ))
}

/// Marks a running report run successful with its tokens, model, cost
/// (from the price catalog; only a trusted caller may give p_cost_usd),
/// commits and content. The run then counts in the organization's usage
/// (event report_run, and its tokens and the same cost in the AI log).
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "mark_run_success"
)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn mark_run_success(
    p_run_id: Option<Uuid>,
    p_tokens_used: Option<i64>,
    p_model_used: Option<String>,
    p_cost_usd: Option<AnyNumeric>,
    p_commits_processed: Option<i32>,
    p_report_content: Option<String>,
    p_report_format: Option<String>,
    p_input_tokens: Option<i64>,
    p_output_tokens: Option<i64>,
) -> PgResult<pgrx::JsonB> {
    guarded(|| {
        success(
            p_run_id,
            Success {
                tokens_used: p_tokens_used,
                model_used: p_model_used,
                cost_usd: p_cost_usd,
                commits_processed: p_commits_processed,
                report_content: p_report_content,
                report_format: p_report_format,
                input_tokens: p_input_tokens,
                output_tokens: p_output_tokens,
            },
        )
    })
}

fn finish(
    id: Option<Uuid>,
    status: &'static str,
    message: Option<String>,
    code: Option<String>,
) -> Result<bool> {
    let who = caller()?;
    authorize_run(who, id)?;
    check_len("p_error_message", &message, limits::MAX_ERROR_MESSAGE)?;
    check_len("p_error_code", &code, limits::MAX_ERROR_CODE)?;
    if status == "failed" && message.is_none() {
        return Err(UsageError::NullValue("p_error_message"));
    }
    let (id, run) = lock_run(who, id, "running")?;
    write_one::<bool>(
        "UPDATE usage_tracker.report_runs SET status = $3, completed_at = pg_catalog.now(), \
           error_message = $4, error_code = $5, updated_at = pg_catalog.now() \
         WHERE org_id = $1 AND id = $2 RETURNING true",
        &[
            run.org.into(),
            id.into(),
            status.into(),
            message.into(),
            code.into(),
        ],
    )?;
    Ok(true)
}

/// Marks a running report run failed, with an error message and code. A
/// failed run does not count against the monthly limit.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "mark_run_failed"
)]
#[search_path(pg_catalog, pg_temp)]
fn mark_run_failed(
    p_run_id: Option<Uuid>,
    p_error_message: Option<String>,
    p_error_code: Option<String>,
) -> PgResult<bool> {
    guarded(|| finish(p_run_id, "failed", p_error_message, p_error_code))
}

/// Cancels a running report run; it no longer counts against the limit.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "cancel_report_run"
)]
#[search_path(pg_catalog, pg_temp)]
fn cancel_report_run(p_run_id: Option<Uuid>) -> PgResult<bool> {
    guarded(|| finish(p_run_id, "cancelled", None, None))
}

fn webhook(id: Option<Uuid>, delivered: Option<bool>, status: Option<i32>) -> Result<bool> {
    let who = caller()?;
    authorize_run(who, id)?;
    let delivered = required("p_delivered", delivered)?;
    if let Some(s) = status {
        validate::in_range("p_response_status", s, 100, 599)?;
    }
    let (id, run) = lock_run(who, id, "success")?;
    write_one::<bool>(
        "UPDATE usage_tracker.report_runs SET webhook_delivery_attempts = webhook_delivery_attempts + 1, \
           webhook_last_attempt_at = pg_catalog.now(), webhook_response_status = $4, \
           webhook_delivered = webhook_delivered OR $3, updated_at = pg_catalog.now() \
         WHERE org_id = $1 AND id = $2 RETURNING true",
        &[run.org.into(), id.into(), delivered.into(), status.into()],
    )?;
    Ok(true)
}

/// Records a webhook delivery attempt of a successful run's report.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "record_webhook_attempt"
)]
#[search_path(pg_catalog, pg_temp)]
fn record_webhook_attempt(
    p_run_id: Option<Uuid>,
    p_delivered: Option<bool>,
    p_response_status: Option<i32>,
) -> PgResult<bool> {
    guarded(|| webhook(p_run_id, p_delivered, p_response_status))
}

/// Fails runs stuck in running longer than the timeout (run_maintenance).
pub fn expire_stuck_runs() -> Result<i64> {
    let n: Option<i64> = write_one(
        "WITH t AS (SELECT coalesce(nullif(pg_catalog.current_setting('usage_tracker.report_run_timeout', true), ''), $1)::interval AS timeout), \
              f AS (UPDATE usage_tracker.report_runs r SET status = 'failed', completed_at = pg_catalog.now(), \
                      error_code = 'TIMEOUT', error_message = 'still running after ' || t.timeout::text || '; failed by run_maintenance', \
                      updated_at = pg_catalog.now() \
                    FROM t WHERE r.status = 'running' AND r.started_at < pg_catalog.now() - t.timeout RETURNING 1) \
         SELECT count(*) FROM f",
        &[DEFAULT_TIMEOUT.into()],
    )?;
    Ok(n.unwrap_or(0))
}
