//! `track_usage_events`: up to MAX_BATCH_EVENTS usage events (seed 002) in
//! one call, with the checks of one `track_usage_event` call per event, all
//! or nothing. The batch is aggregated before it writes: each period row
//! and each daily counter it touches gets one write, whatever the number of
//! events (many writes to one row in one transaction slow down with the
//! row's version chain), then the raw events go in with one INSERT.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use chrono::NaiveDate;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

use super::quotas::{check_event_type, event_time};
use super::{add_to_quota_row, ensure_quota_row, rules_for, LimitRule};
use crate::batch::{id_array, new_uuid, Batch, Event};
use crate::errors::{guarded, PgResult, Result};
use crate::identity::{authorize_member, caller};
use crate::jsonb::Jsonb;
use crate::orgs::{to_pg_date, ContextCache, OrgContext};
use crate::spi_util::plan;
use crate::validate;

/// An event's keys: track_usage_event's parameter names without `p_`.
const KEYS: [&str; 5] = [
    "org_id",
    "event_type",
    "quantity",
    "metadata",
    "occurred_at",
];

/// One checked event.
struct Checked {
    org: Uuid,
    user: Option<Uuid>,
    event_type: String,
    quantity: i64,
    metadata: Option<Jsonb>,
    at: TimestampWithTimeZone,
    ctx: Rc<OrgContext>,
}

/// A period row's increment: its rule, end, context and sum.
type QuotaSum = (LimitRule, Option<NaiveDate>, Rc<OrgContext>, i64);
/// A daily counter's increment: quantity, events, first and last time.
type CounterSum = (i64, i64, TimestampWithTimeZone, TimestampWithTimeZone);

fn track_batch(events: Option<Jsonb>) -> Result<Jsonb> {
    let batch = Batch::parse(events)?;
    let raw = batch.events()?;
    let who = caller()?;

    // Every event read and authorized before any is judged further.
    let mut members: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    let mut parsed = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let e = Event::parse(i, r, &KEYS)?;
        let org = validate::required("p_org_id", e.uuid("org_id")?).map_err(|x| x.in_event(i))?;
        let user = match members.get(&org) {
            Some(u) => *u,
            None => {
                let u = authorize_member(who, org).map_err(|x| x.in_event(i))?;
                members.insert(org, u);
                u
            }
        };
        parsed.push((e, org, user));
    }

    // Checks, each event's organization day, and its limits.
    let mut contexts = ContextCache::default();
    let mut rules: HashMap<(String, String), Rc<Vec<LimitRule>>> = HashMap::new();
    let mut checked = Vec::with_capacity(parsed.len());
    for (e, org, user) in parsed {
        let i = e.index;
        let one = || -> Result<(String, i64, Option<Jsonb>, TimestampWithTimeZone)> {
            let event_type = check_event_type(&e.text("event_type")?)?;
            let quantity = if e.has("quantity") {
                e.bigint("quantity")?
            } else {
                Some(1)
            };
            let quantity = validate::quantity("p_quantity", quantity)?;
            let metadata = e.jsonb("metadata")?;
            validate::metadata("p_metadata", &metadata)?;
            let at = event_time(who, e.timestamptz("occurred_at")?)?;
            Ok((event_type, quantity, metadata, at))
        };
        let (event_type, quantity, metadata, at) = one().map_err(|x| x.in_event(i))?;
        let c = Checked {
            org,
            user,
            event_type,
            quantity,
            metadata,
            at,
            ctx: contexts.get(org, at)?,
        };
        checked.push(c);
    }

    // Aggregate: period rows per (org, limit, period), counters per (org,
    // type, local day); sums checked (22003, nothing written).
    let mut quotas: BTreeMap<([u8; 16], String, Option<NaiveDate>), QuotaSum> = BTreeMap::new();
    let mut counters: BTreeMap<([u8; 16], String, NaiveDate), CounterSum> = BTreeMap::new();
    for c in &checked {
        let key = (c.ctx.plan.clone(), c.event_type.clone());
        let rs = match rules.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = Rc::new(rules_for(&c.ctx.plan, &c.event_type)?);
                rules.insert(key, r.clone());
                r
            }
        };
        // A limit fed by the AI log only does not count events.
        for rule in rs.iter().filter(|r| r.source.counts_events()) {
            let (start, end) = rule.period(c.ctx.period);
            match quotas.entry((*c.org.as_bytes(), rule.key.clone(), start)) {
                Entry::Occupied(mut o) => {
                    let sum = &mut o.get_mut().3;
                    *sum = validate::add("quantity", *sum, c.quantity)?;
                }
                Entry::Vacant(v) => {
                    v.insert((rule.clone(), end, c.ctx.clone(), c.quantity));
                }
            }
        }
        match counters.entry((*c.org.as_bytes(), c.event_type.clone(), c.ctx.local_date)) {
            Entry::Occupied(mut o) => {
                let s = o.get_mut();
                s.0 = validate::add("quantity", s.0, c.quantity)?;
                s.1 += 1;
                if c.at < s.2 {
                    s.2 = c.at;
                }
                if c.at > s.3 {
                    s.3 = c.at;
                }
            }
            Entry::Vacant(v) => {
                v.insert((c.quantity, 1, c.at, c.at));
            }
        }
    }

    // Period rows first, then counters (every writer's lock order), each
    // in key order. A new period's rows start from the counters, which do
    // not hold this batch yet: then add it.
    for ((org, _, start), (rule, end, ctx, n)) in &quotas {
        let org = Uuid::from_bytes(*org);
        if !add_to_quota_row(org, rule, *start, *n)? {
            ensure_quota_row(ctx, rule, *start, *end)?;
            add_to_quota_row(org, rule, *start, *n)?;
        }
    }
    write_counters(&counters)?;
    let ids = (0..checked.len())
        .map(|_| new_uuid())
        .collect::<Result<Vec<_>>>()?;
    write_events(&checked, &ids)?;
    id_array(&ids)
}

/// One array argument: a field of every item.
fn column<I, T, F>(items: I, f: F) -> DatumWithOid<'static>
where
    I: IntoIterator,
    F: Fn(I::Item) -> T,
    T: pgrx::IntoDatum,
{
    items.into_iter().map(f).collect::<Vec<T>>().into()
}

fn write_counters(counters: &BTreeMap<([u8; 16], String, NaiveDate), CounterSum>) -> Result<()> {
    let args = [
        column(counters, |((org, _, _), _)| Uuid::from_bytes(*org)),
        column(counters, |((_, t, _), _)| t.clone()),
        counters
            .keys()
            .map(|(_, _, day)| to_pg_date(*day))
            .collect::<Result<Vec<_>>>()?
            .into(),
        column(counters, |(_, s)| s.0),
        column(counters, |(_, s)| s.1),
        column(counters, |(_, s)| s.2),
        column(counters, |(_, s)| s.3),
    ];
    Spi::connect_mut(|c| -> Result<()> {
        let p = plan(
            c,
            "INSERT INTO usage_tracker.organization_usage AS u (org_id, type, date, count, events, first_at, last_at) \
             SELECT * FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::date[]), pg_catalog.unnest($4::bigint[]), \
                                  pg_catalog.unnest($5::bigint[]), pg_catalog.unnest($6::timestamptz[]), pg_catalog.unnest($7::timestamptz[])) \
             ON CONFLICT (org_id, type, date) DO UPDATE SET count = u.count + EXCLUDED.count, \
               events = u.events + EXCLUDED.events, first_at = LEAST(u.first_at, EXCLUDED.first_at), \
               last_at = GREATEST(u.last_at, EXCLUDED.last_at), updated_at = pg_catalog.now()",
            &args,
            true,
        )?;
        c.update(&*p, None, &args)?;
        Ok(())
    })
}

fn write_events(checked: &[Checked], ids: &[Uuid]) -> Result<()> {
    let args = [
        ids.to_vec().into(),
        column(checked, |c| c.org),
        column(checked, |c| c.at),
        column(checked, |c| c.user),
        column(checked, |c| c.quantity),
        column(checked, |c| c.event_type.clone()),
        column(checked, |c| c.metadata),
    ];
    Spi::connect_mut(|c| -> Result<()> {
        let p = plan(
            c,
            "INSERT INTO usage_tracker.usage_events (id, org_id, occurred_at, user_id, quantity, event_type, source, metadata) \
             SELECT e.id, e.org_id, e.occurred_at, e.user_id, e.quantity, e.event_type, 'event', e.metadata \
               FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::uuid[]), pg_catalog.unnest($3::timestamptz[]), pg_catalog.unnest($4::uuid[]), \
                                  pg_catalog.unnest($5::bigint[]), pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::jsonb[])) \
                    AS e(id, org_id, occurred_at, user_id, quantity, event_type, metadata)",
            &args,
            true,
        )?;
        c.update(&*p, None, &args)?;
        Ok(())
    })
}

/// Records up to 10,000 usage events at once (see the public wrapper
/// usage_tracker.track_usage_events); returns their ids in input order.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "track_usage_events"
)]
#[search_path(pg_catalog, pg_temp)]
fn track_usage_events(p_events: Option<Jsonb>) -> PgResult<Jsonb> {
    guarded(|| track_batch(p_events))
}
