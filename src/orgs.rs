//! Organization settings and billing periods.
//!
//! Days and periods are computed in the organization's time zone (UTC by
//! default) by Postgres' own time zone code, never in the session's.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{Datelike, Months, NaiveDate};
use pgrx::datum::{Date, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::spi_util::{plan, read_one, write_one};

/// An organization's settings and the local date of an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgContext {
    pub org_id: Uuid,
    pub plan: String,
    pub time_zone: String,
    pub anchor_day: u32,
    /// The instant's date in the organization's time zone.
    pub local_date: NaiveDate,
    /// The billing period containing local_date: [start, end).
    pub period: (NaiveDate, NaiveDate),
}

pub fn to_naive(d: Date) -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(d.year(), d.month() as u32, d.day() as u32)
        .ok_or_else(|| UsageError::Internal(format!("date out of range: {d}")))
}

pub fn to_pg_date(d: NaiveDate) -> Result<Date> {
    Date::new(d.year(), d.month() as u8, d.day() as u8)
        .map_err(|e| UsageError::Internal(format!("date {d}: {e}")))
}

/// Settings of `org` (defaults when it has no row) and the local date of `at`.
pub fn context(org: Uuid, at: TimestampWithTimeZone) -> Result<OrgContext> {
    const SQL: &str = "SELECT coalesce(o.plan, (SELECT p.plan FROM usage_tracker.plans p WHERE p.is_default ORDER BY p.shipped LIMIT 1)), \
        coalesce(o.time_zone, 'UTC'), coalesce(o.billing_anchor_day, 1)::integer, \
        ($2 AT TIME ZONE coalesce(o.time_zone, 'UTC'))::date \
        FROM (SELECT $1::uuid AS org_id) x LEFT JOIN usage_tracker.organizations o ON o.org_id = x.org_id";
    Spi::connect(|c| {
        let args = [org.into(), at.into()];
        let p = plan(c, SQL, &args, false)?;
        let row = c.select(&*p, Some(1), &args)?.first();
        let anchor_day = row.get::<i32>(3)?.unwrap_or(1) as u32;
        let local_date = to_naive(
            row.get::<Date>(4)?
                .ok_or_else(|| UsageError::Internal("local date".into()))?,
        )?;
        Ok(OrgContext {
            org_id: org,
            plan: row.get::<String>(1)?.unwrap_or_else(|| "trial".into()),
            time_zone: row.get::<String>(2)?.unwrap_or_else(|| "UTC".into()),
            anchor_day,
            local_date,
            period: billing_period(local_date, anchor_day),
        })
    })
}

/// Contexts met by one call (a batch), each valid for the local day it was
/// read for: a batch's events mostly share a few, read once.
#[derive(Default)]
pub struct ContextCache(HashMap<Uuid, Vec<(i64, i64, Rc<OrgContext>)>>);

impl ContextCache {
    /// `org`'s context for the local day containing `at`.
    pub fn get(&mut self, org: Uuid, at: TimestampWithTimeZone) -> Result<Rc<OrgContext>> {
        let t = at.into_inner();
        let days = self.0.entry(org).or_default();
        if let Some((_, _, ctx)) = days.iter().find(|(from, to, _)| *from <= t && t < *to) {
            return Ok(ctx.clone());
        }
        let ctx = Rc::new(context(org, at)?);
        let day = ctx.local_date;
        let next = day
            .succ_opt()
            .ok_or_else(|| UsageError::Internal("last day".into()))?;
        let from = local_midnight(day, &ctx.time_zone)?.into_inner();
        let to = local_midnight(next, &ctx.time_zone)?.into_inner();
        days.push((from, to, ctx.clone()));
        Ok(ctx)
    }
}

/// The anchor day in a given month, clamped to the month's length.
fn anchor_in(year: i32, month: u32, anchor: u32) -> NaiveDate {
    let mut day = anchor.min(31);
    loop {
        if let Some(d) = NaiveDate::from_ymd_opt(year, month, day) {
            return d;
        }
        day -= 1;
    }
}

/// The billing period [start, end) containing `day`, for periods starting
/// on `anchor` (1..31; months too short for it start on their last day).
pub fn billing_period(day: NaiveDate, anchor: u32) -> (NaiveDate, NaiveDate) {
    let this = anchor_in(day.year(), day.month(), anchor);
    let start = if day >= this {
        this
    } else {
        let prev = day.with_day(1).unwrap() - Months::new(1);
        anchor_in(prev.year(), prev.month(), anchor)
    };
    let next = start.with_day(1).unwrap() + Months::new(1);
    (start, anchor_in(next.year(), next.month(), anchor))
}

/// Start of period `kind` ("day", "week" (ISO, Monday), "month", "year")
/// containing `day`, and the day after it ends.
pub fn calendar_period(day: NaiveDate, kind: &str) -> Result<(NaiveDate, NaiveDate)> {
    Ok(match kind {
        "day" => (day, day.succ_opt().unwrap()),
        "week" => {
            let start = day - chrono::Duration::days(day.weekday().num_days_from_monday() as i64);
            (start, start + chrono::Duration::days(7))
        }
        "month" => {
            let start = day.with_day(1).unwrap();
            (start, start + Months::new(1))
        }
        "year" => {
            let start = NaiveDate::from_ymd_opt(day.year(), 1, 1).unwrap();
            (
                start,
                NaiveDate::from_ymd_opt(day.year() + 1, 1, 1).unwrap(),
            )
        }
        other => {
            return Err(UsageError::invalid(
                "p_period",
                format!("'{other}' is not day, week, month or year"),
            ))
        }
    })
}

/// Midnight of `day` in `time_zone`, as an instant.
pub fn local_midnight(day: NaiveDate, time_zone: &str) -> Result<TimestampWithTimeZone> {
    let ts: Option<TimestampWithTimeZone> = read_one(
        "SELECT ($1::timestamp AT TIME ZONE $2)",
        &[to_pg_date(day)?.into(), time_zone.into()],
    )?;
    ts.ok_or_else(|| UsageError::Internal("local midnight".into()))
}

/// The billing period containing the context's local date, as the instants
/// it starts and ends (midnights in the organization's time zone).
pub fn period_bounds(ctx: &OrgContext) -> Result<(TimestampWithTimeZone, TimestampWithTimeZone)> {
    let (s, e) = ctx.period;
    Ok((
        local_midnight(s, &ctx.time_zone)?,
        local_midnight(e, &ctx.time_zone)?,
    ))
}

/// Validates an inclusive range of days given as two arguments: both set,
/// finite, in order, and at most MAX_RANGE_DAYS long.
pub fn date_range(
    from: Option<Date>,
    to: Option<Date>,
    names: (&'static str, &'static str),
) -> Result<(NaiveDate, NaiveDate)> {
    let from = from.ok_or(UsageError::NullValue(names.0))?;
    let to = to.ok_or(UsageError::NullValue(names.1))?;
    if !from.is_finite() || !to.is_finite() {
        return Err(UsageError::invalid(names.0, "dates must be finite"));
    }
    let (s, e) = (to_naive(from)?, to_naive(to)?);
    if e < s {
        return Err(UsageError::invalid(
            names.1,
            format!("is before {}", names.0),
        ));
    }
    if (e - s).num_days() >= MAX_RANGE_DAYS {
        return Err(UsageError::out_of_range(
            names.1,
            format!("ranges may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((s, e))
}

/// Longest range of days a summary, analysis or rollup check may cover.
pub const MAX_RANGE_DAYS: i64 = crate::limits::MAX_RANGE_DAYS;

fn set_plan(org: Option<Uuid>, plan_name: Option<String>) -> Result<String> {
    require_trusted("set_org_plan")?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let plan_name = plan_name.ok_or(UsageError::NullValue("p_plan"))?;
    let known: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.plans p WHERE p.plan = $1)",
        &[plan_name.as_str().into()],
    )?;
    if known != Some(true) {
        return Err(UsageError::invalid(
            "p_plan",
            format!("'{plan_name}' is not a plan"),
        ));
    }
    write_one::<String>(
        "INSERT INTO usage_tracker.organizations AS o (org_id, plan) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET plan = EXCLUDED.plan, updated_at = pg_catalog.now() \
         RETURNING o.plan",
        &[org.into(), plan_name.as_str().into()],
    )?;
    Ok(plan_name)
}

/// Puts an organization on a plan (service_role). Limits apply from the
/// next check; usage already recorded in the period still counts.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_org_plan"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_org_plan(p_org_id: Option<Uuid>, p_plan: Option<String>) -> PgResult<String> {
    guarded(|| set_plan(p_org_id, p_plan))
}

fn set_settings(org: Option<Uuid>, tz: Option<String>, anchor: Option<i32>) -> Result<bool> {
    require_trusted("set_org_settings")?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    if let Some(tz) = &tz {
        let known: Option<bool> = read_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names t WHERE t.name = $1)",
            &[tz.as_str().into()],
        )?;
        if known != Some(true) {
            return Err(UsageError::invalid(
                "p_time_zone",
                format!("'{tz}' is not a time zone name"),
            ));
        }
    }
    if let Some(a) = anchor {
        if !(1..=31).contains(&a) {
            return Err(UsageError::out_of_range(
                "p_billing_anchor_day",
                format!("{a} is not between 1 and 31"),
            ));
        }
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.organizations AS o (org_id, time_zone, billing_anchor_day) \
         VALUES ($1, coalesce($2, 'UTC'), coalesce($3, 1)::smallint) \
         ON CONFLICT (org_id) DO UPDATE SET time_zone = coalesce($2, o.time_zone), \
           billing_anchor_day = coalesce($3::smallint, o.billing_anchor_day), updated_at = pg_catalog.now() \
         RETURNING true",
        &[org.into(), tz.into(), anchor.into()],
    )?;
    Ok(true)
}

/// Sets an organization's time zone and billing anchor day (service_role);
/// NULL leaves a setting as it is.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_org_settings"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_org_settings(
    p_org_id: Option<Uuid>,
    p_time_zone: Option<String>,
    p_billing_anchor_day: Option<i32>,
) -> PgResult<bool> {
    guarded(|| set_settings(p_org_id, p_time_zone, p_billing_anchor_day))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    macro_rules! periods {
        ($($name:ident: $day:expr, $anchor:expr => $start:expr, $end:expr;)*) => {
            $(
                #[pg_test]
                fn $name() {
                    assert_eq!(billing_period(d($day), $anchor), (d($start), d($end)));
                }
            )*
        };
    }

    periods! {
        calendar_month: "2026-11-22", 1 => "2026-11-01", "2026-12-01";
        first_day: "2026-11-01", 1 => "2026-11-01", "2026-12-01";
        anchor_mid_month_before: "2026-11-14", 15 => "2026-10-15", "2026-11-15";
        anchor_mid_month_on: "2026-11-15", 15 => "2026-11-15", "2026-12-15";
        anchor_31_in_february: "2026-02-28", 31 => "2026-02-28", "2026-03-31";
        anchor_31_before_feb_end: "2026-02-27", 31 => "2026-01-31", "2026-02-28";
        anchor_30_leap_year: "2028-02-29", 30 => "2028-02-29", "2028-03-30";
        year_boundary: "2027-01-05", 10 => "2026-12-10", "2027-01-10";
    }

    #[pg_test]
    fn calendar_periods() {
        assert_eq!(
            calendar_period(d("2026-11-22"), "week").unwrap(),
            (d("2026-11-16"), d("2026-11-23"))
        );
        assert_eq!(
            calendar_period(d("2026-11-22"), "month").unwrap(),
            (d("2026-11-01"), d("2026-12-01"))
        );
        assert_eq!(
            calendar_period(d("2026-11-22"), "year").unwrap(),
            (d("2026-01-01"), d("2027-01-01"))
        );
        assert_eq!(
            calendar_period(d("2026-11-22"), "day").unwrap(),
            (d("2026-11-22"), d("2026-11-23"))
        );
        assert!(calendar_period(d("2026-11-22"), "fortnight").is_err());
    }
}
