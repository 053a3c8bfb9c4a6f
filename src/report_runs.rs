//! Seed 004: report runs — lifecycle (running -> success / failed /
//! cancelled), webhook delivery tracking, monthly statistics and a monthly
//! run limit that concurrent starts cannot exceed.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};
use rust_decimal::Decimal;
use serde_json::json;

use crate::ai_log::{self, check_len, AiUsage};
use crate::errors::{at_boundary, PgResult, Result, UsageError};
use crate::identity::{authorize_write, caller, org_role, user_read_scope, Caller, OrgRole};
use crate::orgs::{context, period_bounds};
use crate::partitions::txn_now;
use crate::pricing::{compute_costs, price_at, to_numeric, Tokens, MAX_TOKENS};
use crate::spi_util::{read_one, write_one};

pub const MAX_CONTENT_CHARS: usize = 1_048_576;
pub const MAX_SNAPSHOT_BYTES: usize = 1_048_576;
pub const DEFAULT_MONTHLY_LIMIT: i32 = 50;
/// Runs still running after this long are failed by run_maintenance
/// (override with the setting usage_tracker.report_run_timeout).
pub const DEFAULT_TIMEOUT: &str = "1 hour";

const FORMATS: [&str; 4] = ["markdown", "html", "text", "json"];

fn snapshot_arg(v: &Option<JsonB>) -> Result<()> {
    if let Some(j) = v {
        if !j.0.is_object() {
            return Err(UsageError::invalid(
                "p_configuration_snapshot",
                "must be a JSON object",
            ));
        }
        let size = serde_json::to_vec(&j.0)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SNAPSHOT_BYTES {
            return Err(UsageError::invalid(
                "p_configuration_snapshot",
                format!("is {size} bytes; at most {MAX_SNAPSHOT_BYTES}"),
            ));
        }
    }
    Ok(())
}

fn nonneg(name: &'static str, v: Option<i64>, max: i64) -> Result<Option<i64>> {
    match v {
        Some(n) if !(0..=max).contains(&n) => Err(UsageError::out_of_range(
            name,
            format!("{n} is not between 0 and {max}"),
        )),
        other => Ok(other),
    }
}

/// The billing period of `org` containing now, as instants.
fn current_period(org: Uuid) -> Result<(TimestampWithTimeZone, TimestampWithTimeZone)> {
    let (now_ts, _) = txn_now()?;
    period_bounds(&context(org, now_ts)?)
}

#[allow(clippy::too_many_arguments)]
fn start(
    user: Option<Uuid>,
    repository: Option<Uuid>,
    configuration: Option<Uuid>,
    snapshot: Option<JsonB>,
    org: Option<Uuid>,
    enforce: Option<bool>,
    limit: Option<i32>,
) -> Result<JsonB> {
    let who = caller()?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    let org = org.unwrap_or(user);
    snapshot_arg(&snapshot)?;
    let enforce = enforce.unwrap_or(false);
    let limit = limit.unwrap_or(DEFAULT_MONTHLY_LIMIT);
    if !(0..=1_000_000).contains(&limit) {
        return Err(UsageError::out_of_range(
            "p_monthly_limit",
            format!("{limit} is not between 0 and 1000000"),
        ));
    }
    authorize_write(who, user, org)?;
    let mut used: Option<i64> = None;
    if enforce {
        // One start at a time per user: the next one waits, then counts the
        // committed runs — running ones hold their place like reservations.
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('usage_tracker.report_runs:' || $1::text, 0))",
            &[user.into()],
        )?;
        let (from, to) = current_period(org)?;
        let n: Option<i64> = read_one(
            "SELECT count(*) FROM usage_tracker.report_runs r WHERE r.user_id = $1 \
             AND r.started_at >= $2 AND r.started_at < $3 AND r.status IN ('running', 'success')",
            &[user.into(), from.into(), to.into()],
        )?;
        let n = n.unwrap_or(0);
        if n >= limit as i64 {
            return Ok(JsonB(
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
    Ok(JsonB(
        json!({ "started": true, "run_id": id.to_string(), "used": used, "limit": limit }),
    ))
}

/// Starts a report run and returns {started, run_id, used, limit}. With
/// p_enforce_limit, starts only while the user has fewer than
/// p_monthly_limit running or successful runs this billing period —
/// atomically: concurrent starts at the limit cannot exceed it.
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
    p_configuration_snapshot: Option<JsonB>,
    p_org_id: Option<Uuid>,
    p_enforce_limit: Option<bool>,
    p_monthly_limit: Option<i32>,
) -> PgResult<JsonB> {
    at_boundary(start(
        p_user_id,
        p_repository_id,
        p_report_configuration_id,
        p_configuration_snapshot,
        p_org_id,
        p_enforce_limit,
        p_monthly_limit,
    ))
}

struct Run {
    org: Uuid,
    user: Uuid,
    status: String,
    model: Option<String>,
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
    snapshot: Option<JsonB>,
) -> Result<bool> {
    let who = caller()?;
    nonneg(
        "p_commits_processed",
        commits.map(i64::from),
        i32::MAX as i64,
    )?;
    nonneg("p_tokens_used", tokens, MAX_TOKENS)?;
    check_len("p_commit_range_from", &from, 200)?;
    check_len("p_commit_range_to", &to, 200)?;
    check_len("p_model_used", &model, 200)?;
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
    p_configuration_snapshot: Option<JsonB>,
) -> PgResult<bool> {
    at_boundary(update(
        p_run_id,
        p_commits_processed,
        p_commit_range_from,
        p_commit_range_to,
        p_tokens_used,
        p_model_used,
        p_configuration_snapshot,
    ))
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

fn success(id: Option<Uuid>, s: Success) -> Result<JsonB> {
    let who = caller()?;
    let input = nonneg("p_input_tokens", s.input_tokens, MAX_TOKENS)?;
    let output = nonneg("p_output_tokens", s.output_tokens, MAX_TOKENS)?;
    let tokens = nonneg("p_tokens_used", s.tokens_used, MAX_TOKENS)?
        .unwrap_or(input.unwrap_or(0) + output.unwrap_or(0));
    nonneg(
        "p_commits_processed",
        s.commits_processed.map(i64::from),
        i32::MAX as i64,
    )?;
    check_len("p_report_content", &s.report_content, MAX_CONTENT_CHARS)?;
    check_len("p_model_used", &s.model_used, 200)?;
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
            if d.is_sign_negative() || d > Decimal::from(1_000_000_000) {
                return Err(UsageError::out_of_range(
                    "p_cost_usd",
                    format!("{d} is not between 0 and 1000000000"),
                ));
            }
            Some(d)
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
    // and cost in the AI log (so dashboards and budgets include it).
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
            metadata: Some(JsonB(
                json!({ "run_id": id.to_string(), "tokens": tokens, "cost_usd": cost.to_string() }),
            )),
            source: "event",
        },
        &rules,
    )?;
    if let Some(m) = model {
        ai_log::log(AiUsage {
            user_id: Some(run.user),
            user_email: None,
            customer_id: None,
            customer_name: None,
            request_type: Some("report".into()),
            session_id: Some(format!("report-run:{id}")),
            input_tokens: Some(in_tok),
            output_tokens: Some(out_tok),
            model_used: Some(m),
            latency_ms: None,
            tool_turns: None,
            status: Some("success".into()),
            error_message: None,
            org_id: Some(run.org),
            occurred_at: None,
            idempotency_key: Some(format!("report-run:{id}")),
            provider: None,
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            cached: None,
            metadata: Some(JsonB(json!({ "report_run_id": id.to_string() }))),
            project_id: None,
        })?;
    }
    Ok(JsonB(
        json!({ "run_id": id.to_string(), "status": "success", "tokens_used": tokens, "cost_usd": cost.to_string() }),
    ))
}

/// Marks a running report run successful with its tokens, model, cost
/// (computed from the price catalog when not given), commits and content.
/// The run then counts in the organization's usage (event report_run, and
/// its tokens and cost in the AI log).
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
) -> PgResult<JsonB> {
    at_boundary(success(
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
    ))
}

fn finish(
    id: Option<Uuid>,
    status: &'static str,
    message: Option<String>,
    code: Option<String>,
) -> Result<bool> {
    let who = caller()?;
    check_len("p_error_message", &message, 10_000)?;
    check_len("p_error_code", &code, 100)?;
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
    at_boundary(finish(p_run_id, "failed", p_error_message, p_error_code))
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
    at_boundary(finish(p_run_id, "cancelled", None, None))
}

fn webhook(id: Option<Uuid>, delivered: Option<bool>, status: Option<i32>) -> Result<bool> {
    let who = caller()?;
    let delivered = delivered.ok_or(UsageError::NullValue("p_delivered"))?;
    if let Some(s) = status {
        if !(100..=599).contains(&s) {
            return Err(UsageError::out_of_range(
                "p_response_status",
                format!("{s} is not an HTTP status (100..599)"),
            ));
        }
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
    at_boundary(webhook(p_run_id, p_delivered, p_response_status))
}

fn list(user: Option<Uuid>, limit: Option<i32>, offset: Option<i32>) -> Result<JsonB> {
    let who = caller()?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) {
        return Err(UsageError::out_of_range(
            "p_limit",
            format!("{limit} is not between 1 and 1000"),
        ));
    }
    if offset < 0 {
        return Err(UsageError::out_of_range(
            "p_offset",
            format!("{offset} is negative"),
        ));
    }
    let scope = user_read_scope(who, user)?;
    let sql = format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r) ORDER BY r.started_at DESC, r.id), '[]'::jsonb) \
           FROM (SELECT * FROM usage_tracker.report_runs l WHERE {} ORDER BY l.started_at DESC, l.id \
                  LIMIT $3 OFFSET $4) r",
        scope.predicate("l", 1, 2)
    );
    let (orgs, u) = scope.args();
    let json: Option<JsonB> = Spi::connect(|c| {
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
) -> PgResult<JsonB> {
    at_boundary(list(p_user_id, p_limit, p_offset))
}

fn get_one(id: Option<Uuid>) -> Result<Option<JsonB>> {
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
fn get_report_run(p_run_id: Option<Uuid>) -> PgResult<Option<JsonB>> {
    at_boundary(get_one(p_run_id))
}

fn monthly(user: Option<Uuid>, org: Option<Uuid>) -> Result<JsonB> {
    let who = caller()?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    user_read_scope(who, user)?;
    let (from, to) = current_period(org.unwrap_or(user))?;
    let json: Option<JsonB> = read_one(
        "SELECT pg_catalog.jsonb_build_object('user_id', $1, 'month', $2, 'period_end', $3, \
           'total_runs', count(*), 'successful_runs', count(*) FILTER (WHERE r.status = 'success'), \
           'failed_runs', count(*) FILTER (WHERE r.status = 'failed'), \
           'total_tokens', coalesce(sum(r.tokens_used), 0), 'total_cost_usd', coalesce(sum(r.cost_usd), 0), \
           'last_run_at', max(r.started_at)) \
         FROM usage_tracker.report_runs r WHERE r.user_id = $1 AND r.started_at >= $2 AND r.started_at < $3",
        &[user.into(), from.into(), to.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("monthly".into()))
}

/// Seed 004's monthly usage of a user for the current billing period.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_monthly_usage"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_monthly_usage(p_user_id: Option<Uuid>, p_org_id: Option<Uuid>) -> PgResult<JsonB> {
    at_boundary(monthly(p_user_id, p_org_id))
}

fn check_limit(user: Option<Uuid>, limit: Option<i32>, org: Option<Uuid>) -> Result<bool> {
    let who = caller()?;
    let user = user.ok_or(UsageError::NullValue("p_user_id"))?;
    let limit = limit.ok_or(UsageError::NullValue("p_limit"))?;
    if limit < 0 {
        return Err(UsageError::out_of_range(
            "p_limit",
            format!("{limit} is negative"),
        ));
    }
    user_read_scope(who, user)?;
    let (from, to) = current_period(org.unwrap_or(user))?;
    let n: Option<i64> = read_one(
        "SELECT count(*) FROM usage_tracker.report_runs r WHERE r.user_id = $1 AND r.status = 'success' \
         AND r.started_at >= $2 AND r.started_at < $3",
        &[user.into(), from.into(), to.into()],
    )?;
    Ok(n.unwrap_or(0) < limit as i64)
}

/// Seed 004: true while the user has fewer than p_limit successful runs this
/// billing period (the UTC calendar month unless the organization has other
/// settings).
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
    at_boundary(check_limit(p_user_id, p_limit, p_org_id))
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
