//! Seed 000: per-organization counters by type and day, their per-period
//! counts and summaries, detail records and the seed's six analyses.

use chrono::NaiveDate;
use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::Uuid;

use super::{record_event, rules_for, Increment};
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{authorize_member, caller, org_role, require_trusted, Caller, OrgRole};
use crate::jsonb::Jsonb;
use crate::limits::MAX_DETAIL_ROWS;
use crate::orgs::{calendar_period, context, local_midnight, to_naive, to_pg_date, OrgContext};
use crate::partitions::{txn_now, MAX_YEAR, MIN_YEAR};
use crate::validate::{self, required};

fn check_type_name(param: &'static str, t: &Option<String>) -> Result<String> {
    validate::name(param, t)
}

fn increment(
    org: Option<Uuid>,
    usage_type: Option<String>,
    count: Option<i64>,
    date: Option<Date>,
    metadata: Option<Jsonb>,
) -> Result<i64> {
    let who = caller()?;
    let org = required("org_id", org)?;
    let user = authorize_member(who, org)?;
    let usage_type = check_type_name("type", &usage_type)?;
    let count = validate::quantity("count", count)?;
    validate::metadata("metadata", &metadata)?;
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let (day, occurred_at) = match date {
        None => (ctx.local_date, now_ts),
        Some(d) if !d.is_finite() => {
            return Err(UsageError::invalid("date", "must be a finite date"))
        }
        Some(d) => {
            let day = to_naive(d)?;
            if !(MIN_YEAR..=MAX_YEAR).contains(&chrono::Datelike::year(&day)) {
                return Err(UsageError::invalid(
                    "date",
                    format!("must be between {MIN_YEAR} and {MAX_YEAR}"),
                ));
            }
            if day > ctx.local_date {
                return Err(UsageError::invalid("date", "is in the future"));
            }
            if day == ctx.local_date {
                (day, now_ts)
            } else {
                if who != Caller::Trusted {
                    return Err(UsageError::forbidden(
                        "only service_role may record usage for a past date",
                    ));
                }
                (day, local_midnight(day, &ctx.time_zone)?)
            }
        }
    };
    let rules = rules_for(&ctx.plan, &usage_type)?;
    let (_, total) = record_event(
        Increment {
            ctx: &ctx,
            event_type: &usage_type,
            quantity: count,
            occurred_at,
            counter_date: Some(day),
            user_id: user,
            metadata,
            source: "counter",
        },
        &rules,
    )?;
    Ok(total)
}

/// Seed 000: adds `count` to the organization's counter of `type` for
/// `date` (today in the organization's time zone by default) and records a
/// detail row with `metadata`. Returns the day's new total. Safe under any
/// number of concurrent callers.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "increment_organization_usage"
)]
#[search_path(pg_catalog, pg_temp)]
fn increment_organization_usage(
    org_id: Option<Uuid>,
    r#type: Option<String>,
    count: Option<i64>,
    date: Option<Date>,
    metadata: Option<Jsonb>,
) -> PgResult<i64> {
    guarded(|| increment(org_id, r#type, count, date, metadata))
}

/// Reads need membership of the organization (counts are org-wide).
fn read_context(org: Option<Uuid>) -> Result<(Caller, OrgContext)> {
    let who = caller()?;
    let org = required("p_org_id", org)?;
    authorize_member(who, org)?;
    let (now_ts, _) = txn_now()?;
    Ok((who, context(org, now_ts)?))
}

fn sum_types(
    org: Uuid,
    types: Option<Vec<String>>,
    from: NaiveDate,
    to_exclusive: NaiveDate,
) -> Result<Jsonb> {
    let json: Option<Jsonb> = crate::spi_util::read_one(
        "SELECT coalesce(pg_catalog.jsonb_object_agg(s.type, s.total), '{}'::jsonb) FROM ( \
           SELECT u.type, sum(u.count) AS total FROM usage_tracker.organization_usage u \
            WHERE u.org_id = $1 AND ($2::text[] IS NULL OR u.type = ANY ($2)) AND u.date >= $3 AND u.date < $4 \
            GROUP BY u.type ORDER BY u.type) s",
        &[org.into(), types.into(), to_pg_date(from)?.into(), to_pg_date(to_exclusive)?.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("summary".into()))
}

fn period_count(
    org: Option<Uuid>,
    usage_type: Option<String>,
    period: Option<String>,
) -> Result<i64> {
    let (_, ctx) = read_context(org)?;
    let usage_type = check_type_name("p_type", &usage_type)?;
    let period = period.ok_or(UsageError::NullValue("p_period"))?;
    let (from, to) = calendar_period(ctx.local_date, &period)?;
    let total: Option<String> = crate::spi_util::read_one(
        "SELECT sum(u.count)::text FROM usage_tracker.organization_usage u \
          WHERE u.org_id = $1 AND u.type = $2 AND u.date >= $3 AND u.date < $4",
        &[
            ctx.org_id.into(),
            usage_type.into(),
            to_pg_date(from)?.into(),
            to_pg_date(to)?.into(),
        ],
    )?;
    // A total past bigint is an error, never a wrapped or zero count.
    validate::to_bigint("count", validate::total_i128("count", total)?)
}

/// Seed 000's get_message_count / get_reasoning_count for any type: the
/// total of `p_type` in the current day, ISO week, month or year, in the
/// organization's time zone.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_usage_count"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_usage_count(
    p_org_id: Option<Uuid>,
    p_type: Option<String>,
    p_period: Option<String>,
) -> PgResult<i64> {
    guarded(|| period_count(p_org_id, p_type, p_period))
}

fn period_counts(org: Option<Uuid>, period: Option<String>) -> Result<Jsonb> {
    let (_, ctx) = read_context(org)?;
    let period = period.ok_or(UsageError::NullValue("p_period"))?;
    let (from, to) = calendar_period(ctx.local_date, &period)?;
    sum_types(ctx.org_id, None, from, to)
}

/// Seed 000's get_usage_summary(period): `{"message": 450, "reasoning": 320, ...}`
/// for the current day, week, month or year.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_usage_counts"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_usage_counts(p_org_id: Option<Uuid>, p_period: Option<String>) -> PgResult<Jsonb> {
    guarded(|| period_counts(p_org_id, p_period))
}

fn check_range(start: Option<Date>, end: Option<Date>) -> Result<(NaiveDate, NaiveDate)> {
    crate::orgs::date_range(start, end, ("start_date", "end_date"))
}

fn summary(org: Option<Uuid>, start: Option<Date>, end: Option<Date>) -> Result<Jsonb> {
    let (_, ctx) = read_context(org)?;
    let (s, e) = check_range(start, end)?;
    sum_types(ctx.org_id, None, s, e.succ_opt().unwrap_or(e))
}

/// Seed 000: totals per type from `start_date` to `end_date` (inclusive,
/// days in the organization's time zone): `{"message": 450, ...}`.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_organization_usage_summary"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_organization_usage_summary(
    org_id: Option<Uuid>,
    start_date: Option<Date>,
    end_date: Option<Date>,
) -> PgResult<Jsonb> {
    guarded(|| summary(org_id, start_date, end_date))
}

fn details(
    org: Option<Uuid>,
    usage_type: Option<String>,
    start: Option<Date>,
    end: Option<Date>,
    limit: Option<i32>,
) -> Result<Jsonb> {
    let (who, ctx) = read_context(org)?;
    let usage_type = match usage_type {
        Some(_) => Some(check_type_name("p_usage_type", &usage_type)?),
        None => None,
    };
    let limit = validate::in_range("p_limit", limit.unwrap_or(100), 1, MAX_DETAIL_ROWS)?;
    let from = match start {
        Some(d) if d.is_finite() => Some(local_midnight(to_naive(d)?, &ctx.time_zone)?),
        Some(_) => return Err(UsageError::invalid("p_start_date", "must be finite")),
        None => None,
    };
    let to = match end {
        Some(d) if d.is_finite() => {
            let e = to_naive(d)?;
            Some(local_midnight(e.succ_opt().unwrap_or(e), &ctx.time_zone)?)
        }
        Some(_) => return Err(UsageError::invalid("p_end_date", "must be finite")),
        None => None,
    };
    // Members see their own detail rows; admins and owners the org's.
    let only_user = match who {
        Caller::Trusted => None,
        Caller::User(me) => match org_role(ctx.org_id, me)? {
            Some(r) if r >= OrgRole::Admin => None,
            _ => Some(me),
        },
    };
    let json: Option<Jsonb> = crate::spi_util::read_one(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(d) ORDER BY d.\"timestamp\" DESC, d.id), '[]'::jsonb) \
           FROM (SELECT e.id, e.org_id, e.event_type AS type, e.quantity AS count, e.occurred_at AS \"timestamp\", \
                        e.metadata, e.recorded_at AS created_at, e.user_id \
                   FROM usage_tracker.usage_events e \
                  WHERE e.org_id = $1 AND ($2::text IS NULL OR e.event_type = $2) \
                    AND ($3::timestamptz IS NULL OR e.occurred_at >= $3) AND ($4::timestamptz IS NULL OR e.occurred_at < $4) \
                    AND ($5::uuid IS NULL OR e.user_id = $5) \
                  ORDER BY e.occurred_at DESC, e.id LIMIT $6) d",
        &[ctx.org_id.into(), usage_type.into(), from.into(), to.into(), only_user.into(), (limit as i64).into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("details".into()))
}

/// Seed 000's get_usage_details: detail records, newest first, filtered by
/// type and date range (organization's time zone), at most `p_limit`.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_usage_details"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_usage_details(
    p_org_id: Option<Uuid>,
    p_usage_type: Option<String>,
    p_start_date: Option<Date>,
    p_end_date: Option<Date>,
    p_limit: Option<i32>,
) -> PgResult<Jsonb> {
    guarded(|| details(p_org_id, p_usage_type, p_start_date, p_end_date, p_limit))
}

/// The SQL of each of seed 000's example analyses, over one organization's
/// counters ($1 org, $2 first day, $3 day after the last, $4 time zone).
fn analysis_sql(kind: &str) -> Result<&'static str> {
    Ok(match kind {
        "daily" => "SELECT u.date, u.type, u.count FROM usage_tracker.organization_usage u \
                    WHERE u.org_id = $1 AND u.date >= $2 AND u.date < $3 ORDER BY u.date, u.type",
        "weekly" => "SELECT pg_catalog.date_trunc('week', u.date)::date AS week_start, u.type, sum(u.count) AS count \
                     FROM usage_tracker.organization_usage u \
                     WHERE u.org_id = $1 AND u.date >= $2 AND u.date < $3 GROUP BY 1, 2 ORDER BY 1, 2",
        "monthly" => "SELECT m.month, m.type, m.count, \
                        pg_catalog.lag(m.count) OVER (PARTITION BY m.type ORDER BY m.month) AS previous_count, \
                        round(100.0 * (m.count - pg_catalog.lag(m.count) OVER (PARTITION BY m.type ORDER BY m.month)) \
                              / NULLIF(pg_catalog.lag(m.count) OVER (PARTITION BY m.type ORDER BY m.month), 0), 2) AS change_pct \
                      FROM (SELECT pg_catalog.date_trunc('month', u.date)::date AS month, u.type, sum(u.count) AS count \
                              FROM usage_tracker.organization_usage u \
                             WHERE u.org_id = $1 AND u.date >= $2 AND u.date < $3 GROUP BY 1, 2) m \
                      ORDER BY m.month, m.type",
        "hourly" => "SELECT pg_catalog.date_part('hour', e.occurred_at AT TIME ZONE $4)::integer AS hour_of_day, \
                       e.event_type AS type, count(*) AS events, sum(e.quantity) AS count \
                     FROM usage_tracker.usage_events e \
                     WHERE e.org_id = $1 AND e.occurred_at >= ($2::timestamp AT TIME ZONE $4) \
                       AND e.occurred_at < ($3::timestamp AT TIME ZONE $4) GROUP BY 1, 2 ORDER BY 1, 2",
        "ratio" => "SELECT d.date, d.messages, d.reasoning, \
                      round(d.reasoning::numeric / NULLIF(d.messages, 0), 4) AS reasoning_per_message \
                    FROM (SELECT u.date, \
                            coalesce(sum(u.count) FILTER (WHERE u.type = 'message'), 0) AS messages, \
                            coalesce(sum(u.count) FILTER (WHERE u.type = 'reasoning'), 0) AS reasoning \
                          FROM usage_tracker.organization_usage u \
                          WHERE u.org_id = $1 AND u.type IN ('message', 'reasoning') AND u.date >= $2 AND u.date < $3 \
                          GROUP BY u.date) d ORDER BY d.date",
        other => return Err(UsageError::invalid("p_kind", format!("'{other}' is not an analysis"))),
    })
}

fn analysis(
    kind: Option<String>,
    org: Option<Uuid>,
    start: Option<Date>,
    end: Option<Date>,
) -> Result<Jsonb> {
    let kind = kind.ok_or(UsageError::NullValue("p_kind"))?;
    let sql = analysis_sql(&kind)?;
    let (_, ctx) = read_context(org)?;
    let (s, e) = check_range(start, end)?;
    let wrapped = format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a)), '[]'::jsonb) FROM ({sql}) a"
    );
    let json: Option<Jsonb> = Spi::connect(|c| {
        let t = c.select(
            &wrapped,
            Some(1),
            &[
                ctx.org_id.into(),
                to_pg_date(s)?.into(),
                to_pg_date(e.succ_opt().unwrap_or(e))?.into(),
                ctx.time_zone.as_str().into(),
            ],
        )?;
        crate::spi_util::first(t)
    })?;
    json.ok_or_else(|| UsageError::Internal("analysis".into()))
}

/// Seed 000's example analyses for one organization, as a JSON array; the
/// public wrappers turn it into rows. Kinds: daily, weekly, monthly,
/// hourly, ratio.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "usage_analysis"
)]
#[search_path(pg_catalog, pg_temp)]
fn usage_analysis(
    p_kind: Option<String>,
    p_org_id: Option<Uuid>,
    p_start_date: Option<Date>,
    p_end_date: Option<Date>,
) -> PgResult<Jsonb> {
    guarded(|| analysis(p_kind, p_org_id, p_start_date, p_end_date))
}

fn compare(start: Option<Date>, end: Option<Date>, usage_type: Option<String>) -> Result<Jsonb> {
    require_trusted("usage_compare_organizations")?;
    let (s, e) = check_range(start, end)?;
    let usage_type = match usage_type {
        Some(_) => Some(check_type_name("p_type", &usage_type)?),
        None => None,
    };
    let json: Option<Jsonb> = crate::spi_util::read_one(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) ORDER BY a.type, a.rank, a.org_id), '[]'::jsonb) FROM ( \
           SELECT t.org_id, t.type, t.count, \
                  round(100.0 * t.count / NULLIF(sum(t.count) OVER (PARTITION BY t.type), 0), 2) AS share_pct, \
                  rank() OVER (PARTITION BY t.type ORDER BY t.count DESC) AS rank \
             FROM (SELECT u.org_id, u.type, sum(u.count) AS count FROM usage_tracker.organization_usage u \
                    WHERE u.date >= $1 AND u.date < $2 AND ($3::text IS NULL OR u.type = $3) \
                    GROUP BY 1, 2) t) a",
        &[to_pg_date(s)?.into(), to_pg_date(e.succ_opt().unwrap_or(e))?.into(), usage_type.into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("compare".into()))
}

/// Seed 000's comparison across organizations (service_role only): totals
/// per organization and type, with share and rank.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "usage_compare_organizations"
)]
#[search_path(pg_catalog, pg_temp)]
fn usage_compare_organizations(
    p_start_date: Option<Date>,
    p_end_date: Option<Date>,
    p_type: Option<String>,
) -> PgResult<Jsonb> {
    guarded(|| compare(p_start_date, p_end_date, p_type))
}
