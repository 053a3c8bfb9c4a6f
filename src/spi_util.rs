//! SPI helpers: values always travel as `$n` arguments; hot statements are
//! prepared once per backend and kept (Postgres re-plans them after DDL).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::{FromDatum, IntoDatum, PgOid};

use crate::errors::Result;

thread_local! {
    static PLANS: RefCell<HashMap<(&'static str, bool), Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

/// The kept plan for `sql`, preparing it with the argument types of `args`
/// on first use.
pub fn plan(
    client: &SpiClient<'_>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
    mutating: bool,
) -> Result<Rc<OwnedPreparedStatement>> {
    if let Some(p) = PLANS.with(|m| m.borrow().get(&(sql, mutating)).cloned()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let prepared = if mutating {
        client.prepare_mut(sql, &types)?
    } else {
        client.prepare(sql, &types)?
    };
    let kept = Rc::new(prepared.keep());
    PLANS.with(|m| m.borrow_mut().insert((sql, mutating), kept.clone()));
    Ok(kept)
}

/// First column of the first row, or None when there is no row.
pub fn first<A: FromDatum + IntoDatum>(t: SpiTupleTable<'_>) -> Result<Option<A>> {
    if t.is_empty() {
        return Ok(None);
    }
    Ok(t.first().get_one::<A>()?)
}

/// Read-only query through a kept plan: one value.
pub fn read_one<A: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> Result<Option<A>> {
    Spi::connect(|c| {
        let p = plan(c, sql, args, false)?;
        first(c.select(&*p, Some(1), args)?)
    })
}

/// Writing statement through a kept plan: first value it returns, if any.
pub fn write_one<A: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> Result<Option<A>> {
    Spi::connect_mut(|c| {
        let p = plan(c, sql, args, true)?;
        first(c.update(&*p, None, args)?)
    })
}

/// Runs `DELETE ...` (a statement built from constant names, values only as
/// `$n`) and returns how many rows it deleted.
pub fn delete_count(delete: &str, args: &[DatumWithOid<'_>]) -> Result<i64> {
    let n: Option<i64> = Spi::connect_mut(|c| {
        let t = c.update(
            &format!("WITH d AS ({delete} RETURNING 1) SELECT count(*) FROM d"),
            Some(1),
            args,
        )?;
        first(t)
    })?;
    Ok(n.unwrap_or(0))
}
