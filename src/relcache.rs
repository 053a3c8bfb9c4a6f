//! Per-backend copies of small tables read on every logged request (the
//! price catalog; which organizations have budgets), kept fresh through
//! Postgres' relcache invalidations: a statement trigger on each table
//! queues an invalidation of the table, which every backend processes at
//! its next transaction (this one at once), and a callback registered here
//! bumps that table's generation. A copy is valid while the generation it
//! was loaded at is current.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use pgrx::prelude::*;

use crate::errors::{Result, UsageError};
use crate::spi_util::read_one;

thread_local! {
    /// Invalidations seen per relation oid.
    static GENERATIONS: RefCell<HashMap<u32, u64>> = RefCell::new(HashMap::new());
    /// Bumped by a full relcache reset (every copy is stale).
    static RESETS: Cell<u64> = const { Cell::new(0) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Relcache callback. It may run in the middle of anything, so it only
/// bumps counters; if the map is busy it counts a reset instead.
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid {
        RESETS.with(|r| r.set(r.get().wrapping_add(1)));
        return;
    }
    let done = GENERATIONS.with(|g| match g.try_borrow_mut() {
        Ok(mut m) => {
            let e = m.entry(relid.to_u32()).or_insert(0);
            *e = e.wrapping_add(1);
            true
        }
        Err(_) => false,
    });
    if !done {
        RESETS.with(|r| r.set(r.get().wrapping_add(1)));
    }
}

/// Where a copy stands: the relation's oid and the invalidations seen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    oid: u32,
    generation: u64,
    resets: u64,
}

impl Stamp {
    /// The stamped relation's oid.
    pub fn oid(&self) -> pg_sys::Oid {
        pg_sys::Oid::from(self.oid)
    }

    /// Whether nothing invalidated the relation since this stamp.
    pub fn is_current(&self) -> bool {
        let generation = GENERATIONS.with(|g| g.borrow().get(&self.oid).copied().unwrap_or(0));
        generation == self.generation && RESETS.with(|r| r.get()) == self.resets
    }
}

/// Stamps `relation` (a constant, schema-qualified name) before a copy of it
/// is loaded; the oid is looked up each time (DROP and CREATE EXTENSION in
/// one session give the table a new one).
pub fn stamp(relation: &'static str) -> Result<Stamp> {
    if !REGISTERED.with(|r| r.get()) {
        // SAFETY: registers a callback that only touches thread-locals,
        // once per backend (registrations last as long as the backend).
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0)) };
        REGISTERED.with(|r| r.set(true));
    }
    let oid: Option<pg_sys::Oid> = read_one(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[relation.into()],
    )?;
    let oid = oid
        .ok_or_else(|| UsageError::Internal(format!("{relation} does not exist")))?
        .to_u32();
    Ok(Stamp {
        oid,
        generation: GENERATIONS.with(|g| g.borrow().get(&oid).copied().unwrap_or(0)),
        resets: RESETS.with(|r| r.get()),
    })
}

/// (relation, column) -> whether it exists, as of a stamp of the relation.
type ColumnCache = HashMap<(&'static str, &'static str), (Stamp, bool)>;

thread_local! {
    static COLUMNS: RefCell<ColumnCache> = RefCell::new(HashMap::new());
}

/// Whether `relation` has `column`, cached until the relation changes. A
/// new build serves a database whose extension is not updated yet (between
/// installing the build and ALTER EXTENSION usage_tracker UPDATE): code that
/// needs a column added by a newer release asks here and does without it.
pub fn has_column(relation: &'static str, column: &'static str) -> Result<bool> {
    let cached = COLUMNS.with(|c| {
        c.borrow()
            .get(&(relation, column))
            .filter(|(stamp, _)| stamp.is_current())
            .map(|(_, has)| *has)
    });
    if let Some(has) = cached {
        return Ok(has);
    }
    let stamp = stamp(relation)?;
    let has: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.regclass \
           AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped)",
        &[relation.into(), column.into()],
    )?;
    let has = has.unwrap_or(false);
    COLUMNS.with(|c| c.borrow_mut().insert((relation, column), (stamp, has)));
    Ok(has)
}

/// Refuses (55000) a function that needs a column added by a newer release
/// while the database's extension is not updated yet.
pub fn require_column(relation: &'static str, column: &'static str) -> Result<()> {
    if has_column(relation, column)? {
        return Ok(());
    }
    Err(UsageError::NotOpen(format!(
        "usage_tracker's SQL objects are older than its library ({relation}.{column} is missing): \
         run ALTER EXTENSION usage_tracker UPDATE"
    )))
}

#[pg_schema]
mod usage_tracker_private {
    use pgrx::prelude::*;

    use crate::errors::UsageError;

    /// Statement trigger on a table other backends keep a copy of: queues
    /// an invalidation of the table for every backend (at commit) and this
    /// one (at once).
    #[pg_trigger]
    fn cached_table_changed<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> std::result::Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, UsageError> {
        let relid = trigger
            .relid()
            .map_err(|e| UsageError::Internal(e.to_string()))?;
        // SAFETY: queues a relcache invalidation for an existing relation,
        // as ALTER TABLE does.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
        Ok(None)
    }
}
