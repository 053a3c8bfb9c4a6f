//! Writing prepared requests: one row (with its key claimed in the same
//! statement), or a batch's rows with one INSERT per month partition; then
//! accounting for them (AI-fed limits, budgets) once per organization and
//! period.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};

use super::Prepared;
use crate::errors::{Result, UsageError};
use crate::jsonb::Jsonb;
use crate::partitions;
use crate::pricing::to_numeric;
use crate::spi_util::plan;
use crate::usage::ai_limits::{self, Fed, PeriodSum};
use crate::usage::budgets::{self, Spend};
use crate::validate;

const LOG: &str = "usage_tracker.ai_usage_log";

const LOG_COLUMNS: &str = "org_id, user_id, project_id, created_at, customer_id, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    latency_ms, tool_turns, price_id, cached, status, request_type, provider, model_used, \
    input_cost_usd, output_cost_usd, cache_read_cost_usd, cache_write_cost_usd, reasoning_cost_usd, \
    total_cost_usd, potential_cost_usd, user_email, customer_name, session_id, error_message, \
    idempotency_key, metadata, total_tokens";

const LOG_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32";

/// (month partition, with a key, with a digest, 0.3.0 schema, feeding
/// AI-fed limits in the same statement).
type InsertKind = (i32, bool, bool, bool, bool);

thread_local! {
    // Statements per kind, kept for the backend's life: a handful of
    // months at most.
    static INSERTS: RefCell<HashMap<InsertKind, &'static str>> = RefCell::new(HashMap::new());
    static BATCH_INSERTS: RefCell<HashMap<i32, &'static str>> = RefCell::new(HashMap::new());
}

/// The insert of one row into the month partition `key`. Rows go straight
/// into their partition (the caller just made sure it exists), which spares
/// every call the partition routing of an insert into the parent; Postgres
/// still checks the partition's bounds. With an idempotency key, the
/// statement claims the key first (with the payload's digest, $34); no row
/// comes back when the key was already taken (by a committed or concurrent
/// call). With `feed`, the same statement adds the request's tokens to the
/// organization's AI-fed period rows that exist (this backend's slot) and
/// returns the limit keys it added to: one statement instead of two.
fn insert_sql(key: i32, with_key: bool, digest: bool, current: bool, feed: bool) -> &'static str {
    let id = (key, with_key, digest, current, feed);
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
    let insert = if with_key {
        format!(
            "k AS ( \
               INSERT INTO usage_tracker_private.ai_usage_idempotency (org_id, idempotency_key, log_id, user_id, created_at{digest_col}) \
               VALUES ($1, $30, pg_catalog.gen_random_uuid(), $2, $4{digest_val}) \
               ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING log_id), \
             ins AS (INSERT INTO usage_tracker_private.{part} (id, {columns}) \
             SELECT k.log_id, {values} FROM k RETURNING id)"
        )
    } else {
        format!(
            "ins AS (INSERT INTO usage_tracker_private.{part} ({columns}) VALUES ({values}) \
             RETURNING id)"
        )
    };
    let sql = if feed {
        // Feed arguments follow the others: keys, period starts, amounts, slot.
        let b = 32 + usize::from(current) + usize::from(digest);
        format!(
            "WITH {insert}, \
             fed AS (UPDATE usage_tracker_private.quota_usage q SET used = q.used + f.n, updated_at = pg_catalog.now() \
                       FROM ROWS FROM (pg_catalog.unnest(${a}::text[]), pg_catalog.unnest(${b2}::date[]), \
                                       pg_catalog.unnest(${c}::bigint[])) AS f(limit_key, period_start, n) \
                      WHERE q.org_id = $1 AND q.limit_key = f.limit_key AND q.period_start = f.period_start \
                        AND q.slot = ${d} AND EXISTS (SELECT 1 FROM ins) \
                      RETURNING q.limit_key) \
             SELECT ins.id, (SELECT pg_catalog.array_agg(fed.limit_key) FROM fed) FROM ins",
            a = b + 1,
            b2 = b + 2,
            c = b + 3,
            d = b + 4
        )
    } else {
        format!("WITH {insert} SELECT ins.id, NULL::text[] FROM ins")
    };
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    INSERTS.with(|m| m.borrow_mut().insert(id, sql));
    sql
}

/// The buckets with tokens but no price, as stored (NULL when none).
fn unpriced(p: &Prepared) -> Option<Vec<String>> {
    (!p.costs.unpriced.is_empty()).then(|| p.costs.unpriced.iter().map(|b| b.to_string()).collect())
}

/// Writes one request, adding to the AI-fed period rows of `fed` that exist;
/// its id and the limit keys added to, or None when its key was claimed by
/// a concurrent call first.
pub fn insert_one(p: &Prepared, fed: &[PeriodSum]) -> Result<Option<(Uuid, Vec<String>)>> {
    let when = partitions::to_utc(p.created_at)
        .ok_or_else(|| UsageError::Internal("infinite time".into()))?;
    partitions::ensure_for(&when)?;
    let c = &p.costs;
    let u = &p.u;
    let mut args: Vec<DatumWithOid> = vec![
        p.org.into(),
        p.user.into(),
        u.project_id.into(),
        p.created_at.into(),
        u.customer_id.into(),
        p.toks.input.into(),
        p.toks.output.into(),
        p.toks.cache_read.into(),
        p.toks.cache_write.into(),
        p.toks.reasoning.into(),
        u.latency_ms.into(),
        p.tool_turns.into(),
        p.price_id.into(),
        p.cached.into(),
        p.status.as_str().into(),
        p.request_type.as_str().into(),
        p.provider.clone().into(),
        p.model.as_str().into(),
        to_numeric(c.input)?.into(),
        to_numeric(c.output)?.into(),
        to_numeric(c.cache_read)?.into(),
        to_numeric(c.cache_write)?.into(),
        to_numeric(c.reasoning)?.into(),
        to_numeric(c.total)?.into(),
        to_numeric(c.potential)?.into(),
        u.user_email.clone().into(),
        u.customer_name.clone().into(),
        u.session_id.clone().into(),
        u.error_message.clone().into(),
        u.idempotency_key.clone().into(),
        u.metadata.into(),
        p.total_tokens.into(),
    ];
    let current = crate::relcache::has_column(LOG, "unpriced_buckets")?;
    if current {
        args.push(unpriced(p).into());
    }
    if let Some(d) = &p.digest {
        args.push(d.clone().into());
    }
    let feed = current && !fed.is_empty();
    if feed {
        args.push(
            fed.iter()
                .map(|s| s.rule.key.clone())
                .collect::<Vec<_>>()
                .into(),
        );
        args.push(
            fed.iter()
                .map(|s| crate::usage::pg_period_start(s.start))
                .collect::<Result<Vec<_>>>()?
                .into(),
        );
        args.push(fed.iter().map(|s| s.n).collect::<Vec<_>>().into());
        args.push(crate::usage::my_slot(crate::usage::QUOTA_SLOTS).into());
    }
    let sql = insert_sql(
        p.month,
        u.idempotency_key.is_some(),
        p.digest.is_some(),
        current,
        feed,
    );
    Spi::connect_mut(|c| -> Result<_> {
        let pl = plan(c, sql, &args, true)?;
        let t = c.update(&*pl, None, &args)?;
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        match row.get::<Uuid>(1)? {
            Some(id) => Ok(Some((id, row.get::<Vec<String>>(2)?.unwrap_or_default()))),
            None => Ok(None),
        }
    })
}

/// The batch insert into month partition `key`: every column an array,
/// unnested in one statement (0.3.0 schema: batches exist only there).
fn batch_insert_sql(key: i32) -> &'static str {
    if let Some(sql) = BATCH_INSERTS.with(|m| m.borrow().get(&key).copied()) {
        return sql;
    }
    let part = partitions::partition_name(key);
    // $1 the ids, $2..$33 LOG_COLUMNS, $34 unpriced buckets (comma-joined).
    let params = (1..=34)
        .map(|i| format!("pg_catalog.unnest(${i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let cols = (1..=33)
        .map(|i| format!("u.c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let names = (1..=34)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO usage_tracker_private.{part} (id, {LOG_COLUMNS}, unpriced_buckets) \
         SELECT {cols}, pg_catalog.string_to_array(u.c34, ',') \
           FROM ROWS FROM ({params}) AS u({names})"
    );
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    BATCH_INSERTS.with(|m| m.borrow_mut().insert(key, sql));
    sql
}

/// A batch's columns for one partition.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    org: Vec<Uuid>,
    user: Vec<Uuid>,
    project: Vec<Option<Uuid>>,
    created_at: Vec<TimestampWithTimeZone>,
    customer_id: Vec<Option<i64>>,
    tokens: [Vec<i64>; 5],
    latency_ms: Vec<Option<i32>>,
    tool_turns: Vec<i32>,
    price_id: Vec<Option<i32>>,
    cached: Vec<bool>,
    status: Vec<String>,
    request_type: Vec<String>,
    provider: Vec<Option<String>>,
    model: Vec<String>,
    costs: [Vec<AnyNumeric>; 7],
    texts: [Vec<Option<String>>; 5],
    metadata: Vec<Option<Jsonb>>,
    total_tokens: Vec<i64>,
    unpriced: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, id: Uuid, p: &Prepared) -> Result<()> {
        let u = &p.u;
        let c = &p.costs;
        self.id.push(id);
        self.org.push(p.org);
        self.user.push(p.user);
        self.project.push(u.project_id);
        self.created_at.push(p.created_at);
        self.customer_id.push(u.customer_id);
        let t = &p.toks;
        for (col, v) in self.tokens.iter_mut().zip([
            t.input,
            t.output,
            t.cache_read,
            t.cache_write,
            t.reasoning,
        ]) {
            col.push(v);
        }
        self.latency_ms.push(u.latency_ms);
        self.tool_turns.push(p.tool_turns);
        self.price_id.push(p.price_id);
        self.cached.push(p.cached);
        self.status.push(p.status.clone());
        self.request_type.push(p.request_type.clone());
        self.provider.push(p.provider.clone());
        self.model.push(p.model.clone());
        for (col, v) in self.costs.iter_mut().zip([
            c.input,
            c.output,
            c.cache_read,
            c.cache_write,
            c.reasoning,
            c.total,
            c.potential,
        ]) {
            col.push(to_numeric(v)?);
        }
        for (col, v) in self.texts.iter_mut().zip([
            &u.user_email,
            &u.customer_name,
            &u.session_id,
            &u.error_message,
            &u.idempotency_key,
        ]) {
            col.push(v.clone());
        }
        self.metadata.push(u.metadata);
        self.total_tokens.push(p.total_tokens);
        self.unpriced.push(unpriced(p).map(|b| b.join(",")));
        Ok(())
    }

    fn into_args(self) -> Vec<DatumWithOid<'static>> {
        let [input, output, cache_read, cache_write, reasoning] = self.tokens;
        let [ci, co, ccr, ccw, cr, ct, cp] = self.costs;
        let [email, customer_name, session, error, key] = self.texts;
        vec![
            self.id.into(),
            self.org.into(),
            self.user.into(),
            self.project.into(),
            self.created_at.into(),
            self.customer_id.into(),
            input.into(),
            output.into(),
            cache_read.into(),
            cache_write.into(),
            reasoning.into(),
            self.latency_ms.into(),
            self.tool_turns.into(),
            self.price_id.into(),
            self.cached.into(),
            self.status.into(),
            self.request_type.into(),
            self.provider.into(),
            self.model.into(),
            ci.into(),
            co.into(),
            ccr.into(),
            ccw.into(),
            cr.into(),
            ct.into(),
            cp.into(),
            email.into(),
            customer_name.into(),
            session.into(),
            error.into(),
            key.into(),
            self.metadata.into(),
            self.total_tokens.into(),
            self.unpriced.into(),
        ]
    }
}

/// Writes a batch's new rows (ids given), one INSERT per month partition.
pub fn insert_many(rows: &[(&Prepared, Uuid)]) -> Result<()> {
    let mut by_month: BTreeMap<i32, Columns> = BTreeMap::new();
    for (p, id) in rows {
        by_month.entry(p.month).or_default().push(*id, p)?;
    }
    for (month, cols) in by_month {
        let first = rows
            .iter()
            .find(|(p, _)| p.month == month)
            .and_then(|(p, _)| partitions::to_utc(p.created_at))
            .ok_or_else(|| UsageError::Internal("batch month".into()))?;
        partitions::ensure_for(&first)?;
        let args = cols.into_args();
        let n = Spi::connect_mut(|c| -> Result<usize> {
            let p = plan(c, batch_insert_sql(month), &args, true)?;
            Ok(c.update(&*p, None, &args)?.len())
        })?;
        if n == 0 {
            return Err(UsageError::Internal("batch insert wrote nothing".into()));
        }
    }
    Ok(())
}

/// The tokens a request counts against AI-fed limits (none for a response
/// served from the application's own cache: it used no provider tokens).
pub fn fed(p: &Prepared) -> Result<Option<Fed>> {
    if p.cached {
        return Ok(None);
    }
    let t = &p.toks;
    let input = validate::add("tokens", t.input, t.cache_read)
        .and_then(|n| validate::add("tokens", n, t.cache_write))?;
    let output = validate::add("tokens", t.output, t.reasoning)?;
    Ok(Some(Fed {
        at: p.created_at,
        input,
        output,
    }))
}

/// Adds the cost of requests just written (all of one organization) to its
/// budgets: one write per budget and period.
pub fn apply_budgets(rows: &[(&Prepared, Uuid)]) -> Result<()> {
    let Some((first, _)) = rows.first() else {
        return Ok(());
    };
    let org = first.org;
    if rows.iter().all(|(p, _)| p.costs.total.is_zero()) || !budgets::org_has_budget(org)? {
        return Ok(());
    }
    let spends: Vec<Spend> = rows
        .iter()
        .map(|(p, _)| Spend {
            user: p.user,
            at: p.created_at,
            cost: p.costs.total,
        })
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|(_, id)| *id).collect();
    budgets::apply_ai_costs(org, &spends, &ids)
}

/// Counts a batch's new rows against their organizations' AI-fed limits
/// and budgets: per organization, one write per limit and period and one
/// per budget and period.
pub fn account(rows: &[(&Prepared, Uuid)]) -> Result<()> {
    let mut orgs: BTreeMap<[u8; 16], Vec<(&Prepared, Uuid)>> = BTreeMap::new();
    for (p, id) in rows {
        orgs.entry(*p.org.as_bytes()).or_default().push((p, *id));
    }
    for rows in orgs.values() {
        let org = rows[0].0.org;
        let mut requests = Vec::new();
        for (p, _) in rows {
            if let Some(f) = fed(p)? {
                requests.push(f);
            }
        }
        ai_limits::feed(org, &requests)?;
        apply_budgets(rows)?;
    }
    Ok(())
}
