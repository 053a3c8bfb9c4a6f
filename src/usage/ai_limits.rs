//! Limits fed by the AI log: one meter. The tokens of every request logged
//! with log_ai_usage count against the organization's token limits whose
//! source is `ai_log` or `both` (ai_tokens by default), in the same period
//! rows the events feed, so check_usage_limit, consume_quota and
//! reservations see them and decide exactly.
//!
//! The ingest path keeps, per backend, each organization's plan and
//! current billing period and each plan's AI-fed limits (invalidated
//! through the relcache when organizations, plans or limits change): an
//! organization without a finite AI-fed limit costs nothing more, one with
//! such a limit one UPDATE per limit.

use std::cell::RefCell;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use std::rc::Rc;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;

use super::{add_to_quota_row, ai_fed_rules, ensure_quota_row, LimitRule, Source};
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::orgs::{context, period_bounds, OrgContext};
use crate::relcache::{stamp, Stamp};
use crate::spi_util::{read_one, write_one};
use crate::validate;

/// Stamps of several relations: valid while all are.
struct Stamps(Vec<Stamp>);

impl Stamps {
    fn of(relations: &[&'static str]) -> Result<Stamps> {
        relations
            .iter()
            .map(|r| stamp(r))
            .collect::<Result<Vec<_>>>()
            .map(Stamps)
    }

    fn is_current(&self) -> bool {
        self.0.iter().all(Stamp::is_current)
    }
}

const ORG_RELATIONS: [&str; 2] = ["usage_tracker.organizations", "usage_tracker.plans"];
const LIMIT_RELATIONS: [&str; 3] = [
    "usage_tracker.limit_definitions",
    "usage_tracker.plan_limits",
    "usage_tracker.limit_settings",
];
/// Organizations remembered per backend before the copy starts over.
const MAX_CACHED_ORGS: usize = 100_000;

/// An organization's context for its current billing period, valid for
/// instants in [from, to) (microseconds since 2000).
struct Period {
    from: i64,
    to: i64,
    ctx: OrgContext,
}

type Orgs = (Stamps, HashMap<Uuid, Rc<Period>>);
type Plans = (Stamps, HashMap<String, Rc<Vec<LimitRule>>>);

thread_local! {
    static ORGS: RefCell<Option<Orgs>> = const { RefCell::new(None) };
    static PLANS: RefCell<Option<Plans>> = const { RefCell::new(None) };
}

/// The organization's context for the billing period containing `at`.
fn period_of(org: Uuid, at: TimestampWithTimeZone) -> Result<Rc<Period>> {
    let t = at.into_inner();
    let hit = ORGS.with(|c| {
        c.borrow().as_ref().and_then(|(stamps, map)| {
            if !stamps.is_current() {
                return None;
            }
            map.get(&org).filter(|p| p.from <= t && t < p.to).cloned()
        })
    });
    if let Some(p) = hit {
        return Ok(p);
    }
    let stale = ORGS.with(|c| !c.borrow().as_ref().is_some_and(|(s, _)| s.is_current()));
    if stale {
        // Stamped first: a change seen while loading leaves the copy stale.
        let stamps = Stamps::of(&ORG_RELATIONS)?;
        ORGS.with(|c| *c.borrow_mut() = Some((stamps, HashMap::new())));
    }
    let ctx = context(org, at)?;
    let (from, to) = period_bounds(&ctx)?;
    let p = Rc::new(Period {
        from: from.into_inner(),
        to: to.into_inner(),
        ctx,
    });
    ORGS.with(|c| {
        if let Some((_, map)) = c.borrow_mut().as_mut() {
            if map.len() >= MAX_CACHED_ORGS {
                map.clear();
            }
            map.insert(org, p.clone());
        }
    });
    Ok(p)
}

/// The plan's limits the AI log feeds with a finite maximum.
fn finite_rules(plan: &str) -> Result<Rc<Vec<LimitRule>>> {
    let hit = PLANS.with(|c| {
        c.borrow().as_ref().and_then(|(stamps, map)| {
            if stamps.is_current() {
                map.get(plan).cloned()
            } else {
                None
            }
        })
    });
    if let Some(r) = hit {
        return Ok(r);
    }
    let stale = PLANS.with(|c| !c.borrow().as_ref().is_some_and(|(s, _)| s.is_current()));
    if stale {
        let stamps = Stamps::of(&LIMIT_RELATIONS)?;
        PLANS.with(|c| *c.borrow_mut() = Some((stamps, HashMap::new())));
    }
    let rules: Vec<LimitRule> = ai_fed_rules(plan)?
        .into_iter()
        .filter(|r| r.max >= 0)
        .collect();
    let rules = Rc::new(rules);
    PLANS.with(|c| {
        if let Some((_, map)) = c.borrow_mut().as_mut() {
            map.insert(plan.to_string(), rules.clone());
        }
    });
    Ok(rules)
}

/// One logged request for the limits: when, and its `input` tokens
/// (uncached input, cache reads and writes) and `output` tokens (output,
/// reasoning).
pub struct Fed {
    pub at: TimestampWithTimeZone,
    pub input: i64,
    pub output: i64,
}

/// What requests add to one period row of an AI-fed limit.
pub struct PeriodSum {
    pub rule: LimitRule,
    pub start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    period: Rc<Period>,
    pub n: i64,
}

/// What requests of `org` add to its AI-fed limits: one sum per limit and
/// period, in limit-key order (every writer locks period rows in it).
pub fn sums(org: Uuid, requests: &[Fed]) -> Result<Vec<PeriodSum>> {
    // Nothing is fed by the AI log before ALTER EXTENSION ... UPDATE to 0.3.0.
    if requests.iter().all(|r| r.input == 0 && r.output == 0)
        || !crate::relcache::has_column(super::LIMIT_DEFINITIONS, "source")?
    {
        return Ok(Vec::new());
    }
    let mut sums: BTreeMap<(String, Option<NaiveDate>), PeriodSum> = BTreeMap::new();
    for r in requests {
        let period = period_of(org, r.at)?;
        let rules = finite_rules(&period.ctx.plan)?;
        for rule in rules.iter() {
            let (ai_in, ai_out) = rule.ai_sides();
            let n = validate::add(
                "tokens",
                if ai_in { r.input } else { 0 },
                if ai_out { r.output } else { 0 },
            )?;
            if n == 0 {
                continue;
            }
            let (start, end) = rule.period(period.ctx.period);
            match sums.entry((rule.key.clone(), start)) {
                Entry::Occupied(mut e) => {
                    let sum = &mut e.get_mut().n;
                    *sum = validate::add("tokens", *sum, n)?;
                }
                Entry::Vacant(e) => {
                    e.insert(PeriodSum {
                        rule: rule.clone(),
                        start,
                        end,
                        period: period.clone(),
                        n,
                    });
                }
            }
        }
    }
    Ok(sums.into_values().collect())
}

/// Adds the sums to their period rows (this backend's slot). `added`: the
/// limit keys already added by the caller's own statement (the single-call
/// insert adds to existing rows in the same statement).
pub fn write(org: Uuid, sums: &[PeriodSum], added: &[String]) -> Result<()> {
    for s in sums.iter().filter(|s| !added.contains(&s.rule.key)) {
        if add_to_quota_row(org, &s.rule, s.start, s.n)? {
            continue;
        }
        // A new period row starts from the log, these requests included;
        // if another transaction created it meanwhile, add to that.
        if !ensure_quota_row(&s.period.ctx, &s.rule, s.start, s.end)? {
            add_to_quota_row(org, &s.rule, s.start, s.n)?;
        }
    }
    Ok(())
}

/// Counts requests of `org` logged in this transaction (already inserted)
/// against its AI-fed limits: one write per limit and period, however many
/// requests.
pub fn feed(org: Uuid, requests: &[Fed]) -> Result<()> {
    write(org, &sums(org, requests)?, &[])
}

fn set_source(key: Option<String>, source: Option<String>) -> Result<String> {
    require_trusted("set_limit_source")?;
    let key = validate::name("p_limit_key", &key)?;
    let source_text = validate::required("p_source", source)?;
    let source = Source::parse(&source_text).ok_or_else(|| {
        UsageError::invalid(
            "p_source",
            format!("'{source_text}' is not events, ai_log or both"),
        )
    })?;
    let types: Option<Vec<String>> = read_one(
        "SELECT d.event_types FROM usage_tracker.limit_definitions d WHERE d.limit_key = $1",
        &[key.as_str().into()],
    )?;
    let types = types.ok_or_else(|| {
        UsageError::invalid("p_limit_key", format!("'{key}' is not a defined limit"))
    })?;
    let tokens = types
        .iter()
        .any(|t| t == "ai_tokens_input" || t == "ai_tokens_output");
    if source != Source::Events && !tokens {
        return Err(UsageError::invalid(
            "p_source",
            "only a limit on ai_tokens_input or ai_tokens_output can count the AI log",
        ));
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.limit_settings AS s (limit_key, source) VALUES ($1, $2) \
         ON CONFLICT (limit_key) DO UPDATE SET source = EXCLUDED.source, updated_at = pg_catalog.now() \
         RETURNING true",
        &[key.as_str().into(), source_text.as_str().into()],
    )?;
    // Period rows start again from the truth under the new source.
    crate::spi_util::delete_count(
        "DELETE FROM usage_tracker_private.quota_usage WHERE limit_key = $1",
        &[key.into()],
    )?;
    Ok(source_text)
}

/// Sets what counts against a limit (service_role): `events` (usage events
/// of its event types), `ai_log` (the tokens of requests logged with
/// log_ai_usage; token limits only) or `both`. Its period rows are
/// recomputed from history under the new source.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_limit_source"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_limit_source(p_limit_key: Option<String>, p_source: Option<String>) -> PgResult<String> {
    guarded(|| set_source(p_limit_key, p_source))
}
