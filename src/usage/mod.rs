//! Usage events, daily counters and quotas (seeds 000 and 002).
//!
//! Every increment — a seed 000 counter, a seed 002 event, a consumed quota
//! or a committed reservation — goes through [`record_event`], which writes
//! the raw event, adds to the organization's daily counter and to the
//! period row of every limit the event type counts against. Limit checks
//! read one period row, so their cost does not grow with history.
//!
//! Lock order, to keep concurrent writers free of deadlocks: quota period
//! rows (by limit key), then the daily counter.

pub mod ai_limits;
pub mod budgets;
pub mod counters;
mod events_batch;
pub mod plans;
pub mod quotas;
pub mod reservations;
pub mod status;

use chrono::NaiveDate;
use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

use crate::errors::{Result, UsageError};
use crate::jsonb::Jsonb;
use crate::orgs::{billing_period, to_pg_date, OrgContext};
use crate::spi_util::plan;

/// What counts against a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Usage events of its event types (seed 002).
    Events,
    /// The tokens of logged AI requests (log_ai_usage).
    AiLog,
    Both,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "events" => Some(Source::Events),
            "ai_log" => Some(Source::AiLog),
            "both" => Some(Source::Both),
            _ => None,
        }
    }

    pub fn counts_events(self) -> bool {
        self != Source::AiLog
    }
}

/// A limit an event type counts against, with its maximum on a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRule {
    pub key: String,
    pub total: bool,
    /// -1 when unlimited (or not listed) on the plan.
    pub max: i64,
    pub event_types: Vec<String>,
    pub unit: String,
    pub source: Source,
}

impl LimitRule {
    /// The quota period of this rule within `billing` (the billing period
    /// [start, end) of the day in question); a total limit has none.
    pub fn period(
        &self,
        billing: (NaiveDate, NaiveDate),
    ) -> (Option<NaiveDate>, Option<NaiveDate>) {
        if self.total {
            (None, None)
        } else {
            (Some(billing.0), Some(billing.1))
        }
    }

    /// Which side of a logged AI request counts, when the AI log feeds this
    /// limit: input (uncached input, cache reads and writes) for
    /// ai_tokens_input, output (output and reasoning) for ai_tokens_output.
    pub fn ai_sides(&self) -> (bool, bool) {
        if self.source == Source::Events {
            return (false, false);
        }
        (
            self.event_types.iter().any(|t| t == "ai_tokens_input"),
            self.event_types.iter().any(|t| t == "ai_tokens_output"),
        )
    }

    pub fn fed_by_ai_log(&self) -> bool {
        let (i, o) = self.ai_sides();
        i || o
    }
}

pub fn pg_period_start(start: Option<NaiveDate>) -> Result<Date> {
    match start {
        Some(d) => to_pg_date(d),
        None => Ok(Date::negative_infinity()),
    }
}

pub const LIMIT_DEFINITIONS: &str = "usage_tracker.limit_definitions";

/// The limits' columns: key, total, max on the plan ($1), event types, unit,
/// effective source. A custom limit row overrides the shipped one; a
/// limit_settings row overrides the definition's source.
const RULE_COLUMNS: &str = "d.limit_key, d.period = 'total', coalesce(l.max_quantity, -1), d.event_types, d.unit, \
    coalesce(s.source, d.source) \
    FROM usage_tracker.limit_definitions d \
    LEFT JOIN usage_tracker.limit_settings s ON s.limit_key = d.limit_key \
    LEFT JOIN LATERAL (SELECT pl.max_quantity FROM usage_tracker.plan_limits pl \
                        WHERE pl.limit_key = d.limit_key AND pl.plan = $1 ORDER BY pl.shipped LIMIT 1) l ON true";

fn load_rules(sql: &'static str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Result<Vec<LimitRule>> {
    Spi::connect(|c| {
        let p = plan(c, sql, args, false)?;
        let mut out = Vec::new();
        for row in c.select(&*p, None, args)? {
            out.push(LimitRule {
                key: row.get::<String>(1)?.unwrap_or_default(),
                total: row.get::<bool>(2)?.unwrap_or(false),
                max: row.get::<i64>(3)?.unwrap_or(-1),
                event_types: row.get::<Vec<String>>(4)?.unwrap_or_default(),
                unit: row.get::<String>(5)?.unwrap_or_default(),
                source: row
                    .get::<String>(6)?
                    .as_deref()
                    .and_then(Source::parse)
                    .unwrap_or(Source::Events),
            });
        }
        Ok(out)
    })
}

/// The limits `event_type` counts against on `plan_name`, by limit key.
pub fn rules_for(plan_name: &str, event_type: &str) -> Result<Vec<LimitRule>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // Before ALTER EXTENSION ... UPDATE to 0.3.0 no limit is per user and
    // every limit counts events only.
    const SQL_0_2: &str = "SELECT d.limit_key, d.period = 'total', coalesce(l.max_quantity, -1), d.event_types, d.unit, 'events' \
        FROM usage_tracker.limit_definitions d \
        LEFT JOIN LATERAL (SELECT pl.max_quantity FROM usage_tracker.plan_limits pl \
                            WHERE pl.limit_key = d.limit_key AND pl.plan = $1 ORDER BY pl.shipped LIMIT 1) l ON true \
        WHERE $2 = ANY (d.event_types) ORDER BY d.limit_key";
    let sql: &'static str = if crate::relcache::has_column(LIMIT_DEFINITIONS, "per_user")? {
        SQL.get_or_init(|| {
            format!("SELECT {RULE_COLUMNS} WHERE $2 = ANY (d.event_types) AND NOT d.per_user ORDER BY d.limit_key")
        })
    } else {
        SQL_0_2
    };
    load_rules(sql, &[plan_name.into(), event_type.into()])
}

/// The limits on `plan_name` the AI log feeds (by limit key).
pub fn ai_fed_rules(plan_name: &str) -> Result<Vec<LimitRule>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if !crate::relcache::has_column(LIMIT_DEFINITIONS, "source")? {
        return Ok(Vec::new());
    }
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {RULE_COLUMNS} WHERE NOT d.per_user AND coalesce(s.source, d.source) <> 'events' \
               AND d.event_types && '{{ai_tokens_input,ai_tokens_output}}'::text[] ORDER BY d.limit_key"
        )
    });
    let rules = load_rules(sql, &[plan_name.into()])?;
    Ok(rules.into_iter().filter(LimitRule::fed_by_ai_log).collect())
}

/// What a period row of `rule` starts from: the daily counters of its event
/// types (when events count) plus the tokens of the AI log (when it feeds
/// the limit) in the period, so a limit defined, a source changed or a
/// period first touched mid-way starts from the truth.
fn initial_sql() -> &'static str {
    "coalesce((SELECT sum(u.count) FROM usage_tracker.organization_usage u \
                WHERE $6 AND u.org_id = $1 AND u.type = ANY ($5) AND u.date >= $3 AND ($4::date IS NULL OR u.date < $4)), 0) \
     + coalesce((SELECT sum(CASE WHEN $7 THEN l.input_tokens + l.cache_read_tokens + l.cache_write_tokens ELSE 0 END \
                          + CASE WHEN $8 THEN l.output_tokens + l.reasoning_tokens ELSE 0 END) \
                   FROM usage_tracker.ai_usage_log l \
                  WHERE ($7 OR $8) AND l.org_id = $1 AND l.created_at >= $9 AND l.created_at < $10 \
                    AND NOT l.cached), 0)"
}

/// The arguments of [`initial_sql`] for `rule`'s period [start, end).
fn initial_args<'a>(
    ctx: &OrgContext,
    rule: &LimitRule,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<Vec<pgrx::datum::DatumWithOid<'a>>> {
    let end_arg: Option<Date> = match end {
        Some(e) => Some(to_pg_date(e)?),
        None => None,
    };
    let (ai_in, ai_out) = rule.ai_sides();
    let (from, to) = match (start, end, ai_in || ai_out) {
        (Some(s), Some(e), true) => (
            crate::orgs::local_midnight(s, &ctx.time_zone)?,
            crate::orgs::local_midnight(e, &ctx.time_zone)?,
        ),
        _ => (
            TimestampWithTimeZone::negative_infinity(),
            TimestampWithTimeZone::positive_infinity(),
        ),
    };
    Ok(vec![
        ctx.org_id.into(),
        rule.key.clone().into(),
        pg_period_start(start)?.into(),
        end_arg.into(),
        rule.event_types.clone().into(),
        rule.source.counts_events().into(),
        ai_in.into(),
        ai_out.into(),
        from.into(),
        to.into(),
    ])
}

/// What `rule`'s period row would start from now (read paths before the
/// row exists), as an exact total.
pub fn initial_used(
    ctx: &OrgContext,
    rule: &LimitRule,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<i128> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT ({})::text", initial_sql()));
    let args = initial_args(ctx, rule, start, end)?;
    let total: Option<String> = Spi::connect(|c| -> Result<_> {
        let p = plan(c, sql, &args, false)?;
        crate::spi_util::first(c.select(&*p, Some(1), &args)?)
    })?;
    crate::validate::total_i128("used", total)
}

/// Period rows are spread over this many slots: unconditional writers (an
/// event, a logged AI request) add to the slot of their backend, so one
/// busy organization's writers do not queue on one row; a decision
/// (consume, reserve) locks every slot and sees the exact sum.
pub const QUOTA_SLOTS: i32 = 16;

/// The slot this backend writes to.
pub fn my_slot(slots: i32) -> i32 {
    // SAFETY: reads a backend global.
    (unsafe { pg_sys::MyProcPid }).rem_euclid(slots)
}

/// Whether the database has 0.3.0's objects (period row slots, limit
/// sources, ...); a new build serves an older schema until ALTER EXTENSION
/// usage_tracker UPDATE (see relcache::has_column).
pub fn schema_0_3() -> Result<bool> {
    crate::relcache::has_column(LIMIT_DEFINITIONS, "source")
}

/// Creates the period rows of a limit (every slot) if missing, slot 0
/// starting from the truth (see [`initial_sql`]). Returns whether it
/// created them.
pub fn ensure_quota_row(
    ctx: &OrgContext,
    rule: &LimitRule,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<bool> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SQL_0_2: &str = "INSERT INTO usage_tracker_private.quota_usage (org_id, limit_key, period_start, period_end, used) \
        SELECT $1, $2, $3, $4, coalesce(sum(u.count), 0)::bigint FROM usage_tracker.organization_usage u \
        WHERE u.org_id = $1 AND u.type = ANY ($5) AND u.date >= $3 AND ($4::date IS NULL OR u.date < $4) \
        ON CONFLICT (org_id, limit_key, period_start) DO NOTHING RETURNING true";
    let mut args = initial_args(ctx, rule, start, end)?;
    let sql: &'static str = if schema_0_3()? {
        SQL.get_or_init(|| {
            format!(
                "INSERT INTO usage_tracker_private.quota_usage (org_id, limit_key, period_start, period_end, slot, used) \
                 SELECT $1, $2, $3, $4, s, CASE WHEN s = 0 THEN ({})::bigint ELSE 0 END \
                   FROM pg_catalog.generate_series(0, {} - 1) AS s \
                 ON CONFLICT (org_id, limit_key, period_start, slot) DO NOTHING RETURNING slot = 0",
                initial_sql(),
                QUOTA_SLOTS
            )
        })
    } else {
        args.truncate(5);
        SQL_0_2
    };
    let created: bool = Spi::connect_mut(|c| -> Result<_> {
        let p = plan(c, sql, &args, true)?;
        let mut created = false;
        for row in c.update(&*p, None, &args)? {
            created |= row.get::<bool>(1)?.unwrap_or(false);
        }
        Ok(created)
    })?;
    Ok(created)
}

/// Adds `quantity` to this backend's slot of a period (whose rows exist);
/// false when they do not.
pub fn add_to_quota_row(
    org: Uuid,
    rule: &LimitRule,
    start: Option<NaiveDate>,
    quantity: i64,
) -> Result<bool> {
    let args = [
        org.into(),
        rule.key.as_str().into(),
        pg_period_start(start)?.into(),
        quantity.into(),
        my_slot(QUOTA_SLOTS).into(),
    ];
    let (sql, args): (&'static str, &[_]) = if schema_0_3()? {
        (
            "UPDATE usage_tracker_private.quota_usage SET used = used + $4, updated_at = pg_catalog.now() \
             WHERE org_id = $1 AND limit_key = $2 AND period_start = $3 AND slot = $5 RETURNING true",
            &args,
        )
    } else {
        (
            "UPDATE usage_tracker_private.quota_usage SET used = used + $4, updated_at = pg_catalog.now() \
             WHERE org_id = $1 AND limit_key = $2 AND period_start = $3 RETURNING true",
            &args[..4],
        )
    };
    crate::spi_util::write_one::<bool>(sql, args).map(|r| r == Some(true))
}

/// One increment of usage.
pub struct Increment<'a> {
    pub ctx: &'a OrgContext,
    pub event_type: &'a str,
    pub quantity: i64,
    pub occurred_at: TimestampWithTimeZone,
    /// Day of the daily counter; the local date of occurred_at by default.
    pub counter_date: Option<NaiveDate>,
    pub user_id: Option<Uuid>,
    pub metadata: Option<Jsonb>,
    pub source: &'static str,
}

/// Records an increment everywhere it counts; returns the event id and the
/// day's new counter total. The caller has authorized it and, for a
/// checked consume, holds the period rows' locks.
pub fn record_event(inc: Increment<'_>, rules: &[LimitRule]) -> Result<(Uuid, i64)> {
    let ctx = inc.ctx;
    let day = inc.counter_date.unwrap_or(ctx.local_date);
    let billing = if day == ctx.local_date {
        ctx.period
    } else {
        billing_period(day, ctx.anchor_day)
    };
    // A limit fed by the AI log only does not count events.
    for rule in rules.iter().filter(|r| r.source.counts_events()) {
        let (start, end) = rule.period(billing);
        // The rows usually exist: one UPDATE. A new period's rows start from
        // the counters (which do not hold this event yet): then add it.
        if !add_to_quota_row(ctx.org_id, rule, start, inc.quantity)? {
            ensure_quota_row(ctx, rule, start, end)?;
            add_to_quota_row(ctx.org_id, rule, start, inc.quantity)?;
        }
    }
    let args = [
        ctx.org_id.into(),
        inc.occurred_at.into(),
        inc.user_id.into(),
        inc.quantity.into(),
        inc.event_type.into(),
        inc.source.into(),
        inc.metadata.into(),
        to_pg_date(day)?.into(),
    ];
    let row: Option<(Option<Uuid>, Option<i64>)> = Spi::connect_mut(|c| -> Result<_> {
        let p = plan(
            c,
            "WITH e AS ( \
               INSERT INTO usage_tracker.usage_events (org_id, occurred_at, user_id, quantity, event_type, source, metadata) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id), \
             c AS ( \
               INSERT INTO usage_tracker.organization_usage AS u (org_id, type, date, count, events, first_at, last_at) \
               VALUES ($1, $5, $8, $4, 1, $2, $2) \
               ON CONFLICT (org_id, type, date) DO UPDATE SET count = u.count + EXCLUDED.count, \
                 events = u.events + 1, first_at = LEAST(u.first_at, EXCLUDED.first_at), \
                 last_at = GREATEST(u.last_at, EXCLUDED.last_at), updated_at = pg_catalog.now() \
               RETURNING u.count) \
             SELECT e.id, c.count FROM e, c",
            &args,
            true,
        )?;
        let t = c.update(&*p, None, &args)?;
        if t.is_empty() {
            return Ok(None);
        }
        Ok(Some(t.first().get_two::<Uuid, i64>()?))
    })?;
    match row {
        Some((Some(id), Some(total))) => Ok((id, total)),
        _ => Err(UsageError::Internal("event insert returned nothing".into())),
    }
}

thread_local! {
    // Event types are only ever added, so a hit stays valid; a miss is re-checked.
    static EVENT_TYPES: std::cell::RefCell<std::collections::HashSet<String>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

/// True when `event_type` is registered.
pub fn known_event_type(event_type: &str) -> Result<bool> {
    if EVENT_TYPES.with(|s| s.borrow().contains(event_type)) {
        return Ok(true);
    }
    let known = crate::spi_util::read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.event_types t WHERE t.event_type = $1)",
        &[event_type.into()],
    )?
    .unwrap_or(false);
    if known {
        EVENT_TYPES.with(|s| s.borrow_mut().insert(event_type.to_string()));
    }
    Ok(known)
}
