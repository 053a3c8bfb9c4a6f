//! Budgets in USD per organization or user and billing period, fed by the
//! cost of logged AI usage; each threshold alerts once per period through
//! an outbox table and pg_notify.

use std::cell::RefCell;
use std::collections::HashSet;
use std::str::FromStr;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};

use crate::jsonb::Jsonb;
use rust_decimal::Decimal;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{
    authorize_admin, authorize_member, caller, is_member, require_trusted, Caller,
};
use crate::limits;
use crate::orgs::{context, period_bounds, to_pg_date};
use crate::partitions::txn_now;
use crate::pricing::to_numeric;
use crate::relcache::Stamp;
use crate::spi_util::{plan, read_one, write_one};

/// The pg_notify channel of budget alerts.
pub const ALERT_CHANNEL: &str = "usage_tracker_budget_alerts";

thread_local! {
    /// The organizations that have a budget (any), with the stamp they were
    /// read at: logging checks it instead of querying budgets every time.
    static BUDGETED_ORGS: RefCell<Option<(Stamp, HashSet<Uuid>)>> = const { RefCell::new(None) };
}

/// Whether `org` has any budget (so a logged cost may count against one).
pub fn org_has_budget(org: Uuid) -> Result<bool> {
    let fresh =
        BUDGETED_ORGS.with(|c| matches!(&*c.borrow(), Some((stamp, _)) if stamp.is_current()));
    if !fresh {
        let stamp = crate::relcache::stamp("usage_tracker.budgets")?;
        let orgs = Spi::connect(|c| -> Result<HashSet<Uuid>> {
            let mut set = HashSet::new();
            for row in c.select(
                "SELECT DISTINCT b.org_id FROM usage_tracker.budgets b",
                None,
                &[],
            )? {
                if let Some(o) = row.get::<Uuid>(1)? {
                    set.insert(o);
                }
            }
            Ok(set)
        })?;
        BUDGETED_ORGS.with(|c| *c.borrow_mut() = Some((stamp, orgs)));
    }
    Ok(BUDGETED_ORGS.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|(_, set)| set.contains(&org))
    }))
}

struct Budget {
    id: Uuid,
    amount: AnyNumeric,
    thresholds: Vec<i32>,
}

/// One logged request's cost for the budgets: who, when, how much.
pub struct Spend {
    pub user: Uuid,
    pub at: TimestampWithTimeZone,
    pub cost: Decimal,
}

/// The budget periods of an organization met in one call, each valid for
/// instants in [from, to): a batch's requests mostly share one.
struct Periods(
    Vec<(
        i64,
        i64,
        chrono::NaiveDate,
        (TimestampWithTimeZone, TimestampWithTimeZone),
    )>,
);

impl Periods {
    fn of(&mut self, org: Uuid, at: TimestampWithTimeZone) -> Result<usize> {
        let t = at.into_inner();
        if let Some(i) = self.0.iter().position(|p| p.0 <= t && t < p.1) {
            return Ok(i);
        }
        let ctx = context(org, at)?;
        let (from, to) = period_bounds(&ctx)?;
        self.0
            .push((from.into_inner(), to.into_inner(), ctx.period.0, (from, to)));
        Ok(self.0.len() - 1)
    }
}

/// Adds the cost of requests just logged in `org` (ids `exclude`, written
/// in this transaction) to every budget they fall under — once per budget
/// and period, however many requests — and raises the alerts whose
/// threshold the spend crosses.
pub fn apply_ai_costs(org: Uuid, spends: &[Spend], exclude: &[Uuid]) -> Result<()> {
    if spends.iter().all(|s| s.cost.is_zero()) {
        return Ok(());
    }
    let mut users: Vec<Uuid> = spends.iter().map(|s| s.user).collect();
    users.sort_unstable_by_key(|u| *u.as_bytes());
    users.dedup();
    let budgets: Vec<(Budget, Option<Uuid>)> = Spi::connect(|c| -> Result<_> {
        let args = [org.into(), users.into()];
        let p = plan(
            c,
            "SELECT b.budget_id, b.amount_usd, b.thresholds_pct, b.user_id FROM usage_tracker.budgets b \
             WHERE b.org_id = $1 AND (b.user_id IS NULL OR b.user_id = ANY ($2)) ORDER BY b.budget_id",
            &args,
            false,
        )?;
        let mut v = Vec::new();
        for row in c.select(&*p, None, &args)? {
            v.push((
                Budget {
                    id: row
                        .get::<Uuid>(1)?
                        .ok_or_else(|| UsageError::Internal("budget id".into()))?,
                    amount: row
                        .get::<AnyNumeric>(2)?
                        .ok_or_else(|| UsageError::Internal("budget amount".into()))?,
                    thresholds: row.get::<Vec<i32>>(3)?.unwrap_or_default(),
                },
                row.get::<Uuid>(4)?,
            ));
        }
        Ok(v)
    })?;
    if budgets.is_empty() {
        return Ok(());
    }
    // Each request's period, then the sum per (budget, period).
    let mut periods = Periods(Vec::new());
    let mut of_spend = Vec::with_capacity(spends.len());
    for s in spends {
        of_spend.push(periods.of(org, s.at)?);
    }
    let legacy = !crate::usage::schema_0_3()?;
    for (b, scope_user) in &budgets {
        let mut sums = vec![Decimal::ZERO; periods.0.len()];
        for (s, p) in spends.iter().zip(&of_spend) {
            if scope_user.is_none_or(|u| u == s.user) {
                sums[*p] = sums[*p]
                    .checked_add(s.cost)
                    .ok_or_else(|| UsageError::overflow("budget spend"))?;
            }
        }
        for (p, sum) in sums.into_iter().enumerate() {
            if sum.is_zero() {
                continue;
            }
            let (_, _, start, bounds) = periods.0[p];
            if legacy {
                apply_0_2(org, b, *scope_user, start, bounds, sum, exclude)?;
                continue;
            }
            // Add to this backend's slot; a new period's rows start from
            // what was logged before this call (a budget set mid-period
            // starts from the truth).
            if !add_spend(org, b.id, start, sum)? {
                write_one::<bool>(
                    "INSERT INTO usage_tracker_private.budget_spend (org_id, budget_id, period_start, slot, spent_usd) \
                     SELECT $1, $2, $3, s, CASE WHEN s = 0 THEN \
                              (SELECT coalesce(sum(l.total_cost_usd), 0) FROM usage_tracker.ai_usage_log l \
                                WHERE l.org_id = $1 AND ($4::uuid IS NULL OR l.user_id = $4) AND l.created_at >= $5 \
                                  AND l.created_at < $6 AND l.id <> ALL ($7)) ELSE 0 END \
                       FROM pg_catalog.generate_series(0, $8 - 1) AS s \
                     ON CONFLICT (org_id, budget_id, period_start, slot) DO NOTHING RETURNING true",
                    &[
                        org.into(),
                        b.id.into(),
                        to_pg_date(start)?.into(),
                        (*scope_user).into(),
                        bounds.0.into(),
                        bounds.1.into(),
                        exclude.to_vec().into(),
                        BUDGET_SLOTS.into(),
                    ],
                )?;
                add_spend(org, b.id, start, sum)?;
            }
            alert_crossed(Some((org, b.id, to_pg_date(start)?)))?;
        }
    }
    Ok(())
}

/// Spread over this many slots, like quota rows: a busy organization's
/// requests add to their backend's slot instead of queueing on one row.
pub const BUDGET_SLOTS: i32 = 16;

fn add_spend(org: Uuid, budget: Uuid, start: chrono::NaiveDate, cost: Decimal) -> Result<bool> {
    let added: Option<bool> = write_one(
        "UPDATE usage_tracker_private.budget_spend SET spent_usd = spent_usd + $4, updated_at = pg_catalog.now() \
         WHERE org_id = $1 AND budget_id = $2 AND period_start = $3 AND slot = $5 RETURNING true",
        &[
            org.into(),
            budget.into(),
            to_pg_date(start)?.into(),
            to_numeric(cost)?.into(),
            crate::usage::my_slot(BUDGET_SLOTS).into(),
        ],
    )?;
    Ok(added == Some(true))
}

/// Raises the alerts of thresholds a budget's spend (the sum of its slots)
/// has crossed and that have no alert yet this period (the outbox rows are
/// the record: nothing else is locked, so concurrent requests cannot
/// deadlock on it): for one budget
/// and period, or (None) for every budget of periods that started in the
/// last 40 days (run_maintenance catches up what concurrent requests, each
/// not seeing the other's spend, left unalerted). budget_alerts' unique key
/// makes each threshold alert once whatever the concurrency; a notification
/// names only the alert (any login may LISTEN on the channel). Returns how
/// many alerts it raised.
pub fn alert_crossed(one: Option<(Uuid, Uuid, pgrx::datum::Date)>) -> Result<i64> {
    let (org, budget, start) = match one {
        Some((o, b, s)) => (Some(o), Some(b), Some(s)),
        None => (None, None, None),
    };
    let n: Option<i64> = write_one(
        "WITH t AS (SELECT s.org_id, s.budget_id, s.period_start, sum(s.spent_usd) AS spent \
                      FROM usage_tracker_private.budget_spend s \
                     WHERE CASE WHEN $1::uuid IS NULL THEN s.period_start >= (pg_catalog.now() - interval '40 days')::date \
                                ELSE s.org_id = $1 AND s.budget_id = $2 AND s.period_start = $3 END \
                     GROUP BY 1, 2, 3), \
              c AS (SELECT t.org_id, t.budget_id, t.period_start, t.spent, b.user_id, b.amount_usd, th \
                      FROM t JOIN usage_tracker.budgets b ON b.org_id = t.org_id AND b.budget_id = t.budget_id \
                     CROSS JOIN LATERAL pg_catalog.unnest(b.thresholds_pct) AS th \
                     WHERE t.spent * 100 >= b.amount_usd * th \
                       AND NOT EXISTS (SELECT 1 FROM usage_tracker.budget_alerts x \
                                        WHERE x.org_id = t.org_id AND x.budget_id = t.budget_id \
                                          AND x.period_start = t.period_start AND x.threshold_pct = th)), \
              a AS (INSERT INTO usage_tracker.budget_alerts (org_id, budget_id, user_id, period_start, threshold_pct, spent_usd, amount_usd) \
                    SELECT c.org_id, c.budget_id, c.user_id, c.period_start, c.th, c.spent, c.amount_usd FROM c \
                    ON CONFLICT (org_id, budget_id, period_start, threshold_pct) DO NOTHING \
                    RETURNING alert_id) \
         SELECT count(pg_catalog.pg_notify($4, pg_catalog.jsonb_build_object('alert_id', a.alert_id)::text)) \
           FROM a",
        &[org.into(), budget.into(), start.into(), ALERT_CHANNEL.into()],
    )?;
    Ok(n.unwrap_or(0))
}

/// A database not updated to 0.3.0 yet: one spend row per period.
fn apply_0_2(
    org: Uuid,
    b: &Budget,
    scope_user: Option<Uuid>,
    start: chrono::NaiveDate,
    (from, to): (TimestampWithTimeZone, TimestampWithTimeZone),
    cost: Decimal,
    exclude: &[Uuid],
) -> Result<()> {
    write_one::<bool>(
        "INSERT INTO usage_tracker_private.budget_spend (org_id, budget_id, period_start, spent_usd) \
         SELECT $1, $2, $3, coalesce(sum(l.total_cost_usd), 0) FROM usage_tracker.ai_usage_log l \
          WHERE l.org_id = $1 AND ($4::uuid IS NULL OR l.user_id = $4) AND l.created_at >= $5 AND l.created_at < $6 \
            AND l.id <> ALL ($7) \
         ON CONFLICT (org_id, budget_id, period_start) DO NOTHING RETURNING true",
        &[
            org.into(),
            b.id.into(),
            to_pg_date(start)?.into(),
            scope_user.into(),
            from.into(),
            to.into(),
            exclude.to_vec().into(),
        ],
    )?;
    write_one::<i64>(
        "WITH s AS (UPDATE usage_tracker_private.budget_spend SET spent_usd = spent_usd + $4, \
                           updated_at = pg_catalog.now() \
                     WHERE org_id = $1 AND budget_id = $2 AND period_start = $3 \
                     RETURNING spent_usd, alerted_pct), \
              c AS (SELECT t, s.spent_usd FROM s, pg_catalog.unnest($5::integer[]) AS t \
                     WHERE NOT (t = ANY (s.alerted_pct)) AND s.spent_usd * 100 >= $6 * t), \
              u AS (UPDATE usage_tracker_private.budget_spend SET alerted_pct = alerted_pct || (SELECT pg_catalog.array_agg(c.t) FROM c) \
                     WHERE org_id = $1 AND budget_id = $2 AND period_start = $3 AND EXISTS (SELECT 1 FROM c) RETURNING 1), \
              a AS (INSERT INTO usage_tracker.budget_alerts (org_id, budget_id, user_id, period_start, threshold_pct, spent_usd, amount_usd) \
                    SELECT $1, $2, $7, $3, c.t, c.spent_usd, $6 FROM c \
                    ON CONFLICT (org_id, budget_id, period_start, threshold_pct) DO NOTHING RETURNING alert_id) \
         SELECT count(pg_catalog.pg_notify($8, pg_catalog.jsonb_build_object('alert_id', a.alert_id)::text)) FROM a",
        &[
            org.into(),
            b.id.into(),
            to_pg_date(start)?.into(),
            to_numeric(cost)?.into(),
            b.thresholds.clone().into(),
            b.amount.clone().into(),
            scope_user.into(),
            ALERT_CHANNEL.into(),
        ],
    )?;
    Ok(())
}

fn set_budget_impl(
    org: Option<Uuid>,
    amount: Option<AnyNumeric>,
    user: Option<Uuid>,
    thresholds: Option<Vec<Option<i32>>>,
) -> Result<Uuid> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    authorize_admin(who, org)?;
    if let Some(u) = user {
        // A budget for someone outside the organization would count nothing
        // and tell the admin about a stranger.
        if !is_member(org, u)? {
            return Err(UsageError::invalid(
                "p_user_id",
                "is not a member of this organization",
            ));
        }
    }
    let amount = amount.ok_or(UsageError::NullValue("p_amount_usd"))?;
    let amount = Decimal::from_str(&amount.to_string()).map_err(|_| {
        UsageError::out_of_range("p_amount_usd", format!("{amount} is not a finite amount"))
    })?;
    if amount <= Decimal::ZERO || amount > Decimal::from(limits::MAX_BUDGET_USD) {
        return Err(UsageError::out_of_range(
            "p_amount_usd",
            format!(
                "{amount} is not above 0 and at most {}",
                limits::MAX_BUDGET_USD
            ),
        ));
    }
    if amount.normalize().scale() > limits::MAX_BUDGET_SCALE {
        return Err(UsageError::invalid(
            "p_amount_usd",
            format!("at most {} decimal places", limits::MAX_BUDGET_SCALE),
        ));
    }
    let thresholds: Vec<i32> = thresholds
        .unwrap_or_else(|| vec![Some(80), Some(100)])
        .into_iter()
        .map(|t| t.ok_or(UsageError::NullValue("p_thresholds_pct")))
        .collect::<Result<_>>()?;
    if thresholds.is_empty() || thresholds.len() > limits::MAX_BUDGET_THRESHOLDS {
        return Err(UsageError::invalid(
            "p_thresholds_pct",
            format!("give 1 to {} thresholds", limits::MAX_BUDGET_THRESHOLDS),
        ));
    }
    for t in &thresholds {
        crate::validate::in_range("p_thresholds_pct", *t, 1, limits::MAX_THRESHOLD_PCT)?;
    }
    let id: Option<Uuid> = write_one(
        "INSERT INTO usage_tracker.budgets AS b (org_id, user_id, amount_usd, thresholds_pct) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET amount_usd = EXCLUDED.amount_usd, \
           thresholds_pct = EXCLUDED.thresholds_pct, updated_at = pg_catalog.now() RETURNING b.budget_id",
        &[org.into(), user.into(), to_numeric(amount)?.into(), thresholds.into()],
    )?;
    id.ok_or_else(|| UsageError::Internal("budget insert".into()))
}

/// Sets the budget of an organization (p_user_id NULL) or of one user in it,
/// in USD per billing period, with alert thresholds in percent (default 80
/// and 100). Org admins and service_role. Returns the budget id.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_budget"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_budget(
    p_org_id: Option<Uuid>,
    p_amount_usd: Option<AnyNumeric>,
    p_user_id: Option<Uuid>,
    p_thresholds_pct: Option<Vec<Option<i32>>>,
) -> PgResult<Uuid> {
    guarded(|| set_budget_impl(p_org_id, p_amount_usd, p_user_id, p_thresholds_pct))
}

fn delete_budget_impl(org: Option<Uuid>, id: Option<Uuid>) -> Result<bool> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let id = id.ok_or(UsageError::NullValue("p_budget_id"))?;
    authorize_admin(who, org)?;
    let gone: Option<bool> = write_one(
        "WITH s AS (DELETE FROM usage_tracker_private.budget_spend WHERE org_id = $1 AND budget_id = $2) \
         DELETE FROM usage_tracker.budgets WHERE org_id = $1 AND budget_id = $2 RETURNING true",
        &[org.into(), id.into()],
    )?;
    Ok(gone.unwrap_or(false))
}

/// Deletes a budget (org admins and service_role); its alerts stay.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "delete_budget"
)]
#[search_path(pg_catalog, pg_temp)]
fn delete_budget(p_org_id: Option<Uuid>, p_budget_id: Option<Uuid>) -> PgResult<bool> {
    guarded(|| delete_budget_impl(p_org_id, p_budget_id))
}

fn status_impl(org: Option<Uuid>) -> Result<Jsonb> {
    let who = caller()?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    authorize_member(who, org)?;
    // Members see the organization's budget and their own; admins all.
    let only = match who {
        Caller::Trusted => None,
        Caller::User(me) => match authorize_admin(who, org) {
            Ok(_) => None,
            Err(_) => Some(me),
        },
    };
    let (now_ts, _) = txn_now()?;
    let ctx = context(org, now_ts)?;
    let (start, end) = ctx.period;
    let (from, to) = period_bounds(&ctx)?;
    let json: Option<Jsonb> = read_one(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
             'budget_id', b.budget_id, 'user_id', b.user_id, 'amount_usd', b.amount_usd, \
             'spent_usd', round(s.spent, 9), 'used_pct', round(100 * s.spent / b.amount_usd, 2), \
             'thresholds_pct', b.thresholds_pct, 'alerted_pct', coalesce(al.alerted_pct, '{}'), \
             'period_start', $4, 'period_end', $5) ORDER BY b.user_id NULLS FIRST, b.budget_id), '[]'::jsonb) \
           FROM usage_tracker.budgets b \
           LEFT JOIN (SELECT s.budget_id, sum(s.spent_usd) AS spent_usd \
                        FROM usage_tracker_private.budget_spend s WHERE s.org_id = $1 AND s.period_start = $4 \
                       GROUP BY s.budget_id) bs ON bs.budget_id = b.budget_id \
           LEFT JOIN LATERAL (SELECT pg_catalog.array_agg(x.threshold_pct ORDER BY x.threshold_pct) AS alerted_pct \
                                FROM usage_tracker.budget_alerts x WHERE x.org_id = b.org_id \
                                 AND x.budget_id = b.budget_id AND x.period_start = $4) al ON true \
           CROSS JOIN LATERAL (SELECT coalesce(bs.spent_usd, (SELECT coalesce(sum(l.total_cost_usd), 0) \
                 FROM usage_tracker.ai_usage_log l WHERE l.org_id = b.org_id \
                  AND (b.user_id IS NULL OR l.user_id = b.user_id) AND l.created_at >= $6 AND l.created_at < $7)) AS spent) s \
          WHERE b.org_id = $1 AND ($2::uuid IS NULL OR b.user_id IS NULL OR b.user_id = $2) AND $3::integer = 0",
        &[
            org.into(),
            only.into(),
            0i32.into(),
            to_pg_date(start)?.into(),
            to_pg_date(end)?.into(),
            from.into(),
            to.into(),
        ],
    )?;
    json.ok_or_else(|| UsageError::Internal("budget status".into()))
}

/// Budgets of an organization with what was spent this billing period.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_budget_status"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_budget_status(p_org_id: Option<Uuid>) -> PgResult<Jsonb> {
    guarded(|| status_impl(p_org_id))
}

fn pending_impl(limit: Option<i32>) -> Result<Jsonb> {
    require_trusted("get_pending_alerts")?;
    let limit = crate::validate::in_range(
        "p_limit",
        limit.unwrap_or(100),
        1,
        limits::MAX_PENDING_ALERTS,
    )?;
    let json: Option<Jsonb> = read_one(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) ORDER BY a.created_at, a.alert_id), '[]'::jsonb) \
           FROM (SELECT * FROM usage_tracker.budget_alerts WHERE delivered_at IS NULL \
                  ORDER BY created_at, alert_id LIMIT $1) a",
        &[(limit as i64).into()],
    )?;
    json.ok_or_else(|| UsageError::Internal("pending alerts".into()))
}

/// Undelivered budget alerts, oldest first (service_role), for an edge
/// function that delivers them as webhooks.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "get_pending_alerts"
)]
#[search_path(pg_catalog, pg_temp)]
fn get_pending_alerts(p_limit: Option<i32>) -> PgResult<Jsonb> {
    guarded(|| pending_impl(p_limit))
}

fn mark_impl(org: Option<Uuid>, id: Option<Uuid>, error: Option<String>) -> Result<bool> {
    require_trusted("mark_alert_delivered")?;
    let org = org.ok_or(UsageError::NullValue("p_org_id"))?;
    let id = id.ok_or(UsageError::NullValue("p_alert_id"))?;
    if let Some(e) = &error {
        if e.chars().count() > 10_000 {
            return Err(UsageError::TooLong {
                name: "p_error",
                max: 10_000,
            });
        }
    }
    let found: Option<bool> = write_one(
        "UPDATE usage_tracker.budget_alerts SET attempts = attempts + 1, last_error = $3, \
           delivered_at = CASE WHEN $3::text IS NULL THEN pg_catalog.now() END \
         WHERE org_id = $1 AND alert_id = $2 AND delivered_at IS NULL RETURNING true",
        &[org.into(), id.into(), error.into()],
    )?;
    Ok(found.unwrap_or(false))
}

/// Records a delivery attempt of an alert (service_role): delivered when
/// p_error is NULL, else kept pending with the error. False if it was
/// already delivered or does not exist.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "mark_alert_delivered"
)]
#[search_path(pg_catalog, pg_temp)]
fn mark_alert_delivered(
    p_org_id: Option<Uuid>,
    p_alert_id: Option<Uuid>,
    p_error: Option<String>,
) -> PgResult<bool> {
    guarded(|| mark_impl(p_org_id, p_alert_id, p_error))
}
