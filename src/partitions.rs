//! Monthly partitions of the AI usage log, created on demand and ahead.
//!
//! Each partition carries the primary key and indexes itself (the parent has
//! none): partitions are not extension members, so pg_dump recreates them
//! with their indexes, and an index on the extension-owned parent would be
//! created a second time by ATTACH PARTITION during a restore.
//!
//! A new partition is created as a plain table and then attached: ATTACH
//! PARTITION takes only SHARE UPDATE EXCLUSIVE on the log, so writers and
//! readers never wait behind it (CREATE TABLE ... PARTITION OF would take
//! ACCESS EXCLUSIVE on the whole log).

use std::cell::RefCell;
use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::errors::{Result, UsageError};
use crate::relcache::Stamp;
use crate::spi_util::read_one;

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Advisory lock class for partition creation ("ut" in ASCII).
const PARTITION_LOCK_CLASS: i32 = 0x7574;

/// Events must fall in this range of years (partitions are monthly).
pub const MIN_YEAR: i32 = 1970;
pub const MAX_YEAR: i32 = 2199;

pub fn to_utc(ts: TimestampWithTimeZone) -> Option<DateTime<Utc>> {
    if !ts.is_finite() {
        return None;
    }
    let raw: pg_sys::TimestampTz = ts.into();
    DateTime::<Utc>::from_timestamp_micros(raw.checked_add(PG_EPOCH_OFFSET_MICROS)?)
}

/// The transaction's start time (`now()`), as Postgres and as chrono values.
pub fn txn_now() -> Result<(TimestampWithTimeZone, DateTime<Utc>)> {
    // SAFETY: reads the transaction start time.
    let raw = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let ts = TimestampWithTimeZone::try_from(raw)
        .map_err(|_| UsageError::Internal("transaction start time".into()))?;
    let utc = to_utc(ts).ok_or_else(|| UsageError::Internal("transaction start time".into()))?;
    Ok((ts, utc))
}

/// Months since year 0, the key of a partition.
pub fn month_key(t: &DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

fn month_start(key: i32) -> String {
    format!(
        "{:04}-{:02}-01 00:00:00+00",
        key.div_euclid(12),
        key.rem_euclid(12) + 1
    )
}

pub fn partition_name(key: i32) -> String {
    format!(
        "ai_usage_log_y{:04}m{:02}",
        key.div_euclid(12),
        key.rem_euclid(12) + 1
    )
}

thread_local! {
    /// Months known to have a partition, valid while the log's relcache
    /// entry is: attaching, detaching or dropping a partition (retention,
    /// another session's maintenance) and DROP EXTENSION all invalidate it.
    static KNOWN: RefCell<Option<(Stamp, HashSet<i32>)>> = const { RefCell::new(None) };
}

/// Makes sure the month of `t` has a partition, and takes the log's own
/// writer lock. Rows go straight into their partition, which does not lock
/// the parent; the rollup fold waits for the parent's lockers
/// (src/rollups.rs) to know every row numbered before it looked is
/// committed or gone, so every writer must hold this lock before it draws
/// its ingest_seq. Cheap after the first call per backend and month (a
/// fast-path lock).
pub fn ensure_for(t: &DateTime<Utc>) -> Result<()> {
    ensure_partition(t)?;
    let oid = KNOWN.with(|k| k.borrow().as_ref().map(|(stamp, _)| stamp.oid()));
    let oid = oid.ok_or_else(|| UsageError::Internal("log relation".into()))?;
    // SAFETY: locks an existing relation (its oid was just looked up or is
    // still valid per the relcache) in the mode an INSERT into it takes.
    unsafe { pg_sys::LockRelationOid(oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
    Ok(())
}

fn ensure_partition(t: &DateTime<Utc>) -> Result<()> {
    let key = month_key(t);
    let known = KNOWN.with(
        |k| matches!(&*k.borrow(), Some((stamp, set)) if stamp.is_current() && set.contains(&key)),
    );
    if known {
        return Ok(());
    }
    if !KNOWN.with(|k| {
        k.borrow()
            .as_ref()
            .is_some_and(|(stamp, _)| stamp.is_current())
    }) {
        let stamp = crate::relcache::stamp("usage_tracker.ai_usage_log")?;
        KNOWN.with(|k| *k.borrow_mut() = Some((stamp, HashSet::new())));
    }
    // A partition created by this transaction is not remembered: if the
    // transaction rolls back it is gone, and the next call checks again.
    if !ensure_month(key)? {
        KNOWN.with(|k| {
            if let Some((_, set)) = k.borrow_mut().as_mut() {
                set.insert(key);
            }
        });
    }
    Ok(())
}

fn exists(name: &str) -> Result<bool> {
    let found: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE i.inhparent = 'usage_tracker.ai_usage_log'::pg_catalog.regclass \
           AND n.nspname = 'usage_tracker_private' AND c.relname = $1)",
        &[name.into()],
    )?;
    Ok(found.unwrap_or(false))
}

/// Creates and attaches the partition for month `key` unless it exists.
/// Returns true when it created one. Safe under concurrency: creators of
/// the same month serialize on an advisory lock and re-check.
pub fn ensure_month(key: i32) -> Result<bool> {
    let year = key.div_euclid(12);
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(UsageError::invalid(
            "time",
            format!("events must be between {MIN_YEAR} and {MAX_YEAR}"),
        ));
    }
    let name = partition_name(key);
    if exists(&name)? {
        return Ok(false);
    }
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[PARTITION_LOCK_CLASS.into(), key.into()],
    )?;
    if exists(&name)? {
        return Ok(false);
    }
    let (from, to) = (month_start(key), month_start(key + 1));
    // Until ALTER EXTENSION ... UPDATE to 0.3.0 the log has no unpriced_buckets.
    let unpriced = if crate::relcache::has_column("usage_tracker.ai_usage_log", "unpriced_buckets")?
    {
        "price_id IS NULL OR unpriced_buckets IS NOT NULL"
    } else {
        "price_id IS NULL"
    };
    // Names and bounds come from integers, never from input.
    let ddl = format!(
        "CREATE TABLE usage_tracker_private.{name} \
           (LIKE usage_tracker.ai_usage_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE); \
         ALTER TABLE usage_tracker_private.{name} ADD CONSTRAINT {name}_pkey \
           PRIMARY KEY (org_id, created_at, id); \
         CREATE INDEX {name}_user_idx ON usage_tracker_private.{name} (user_id, created_at); \
         CREATE INDEX {name}_unpriced_idx ON usage_tracker_private.{name} (model_used) \
           WHERE {unpriced}; \
         CREATE INDEX {name}_seq_idx ON usage_tracker_private.{name} USING brin (ingest_seq); \
         CREATE INDEX {name}_time_idx ON usage_tracker_private.{name} USING brin (created_at); \
         ALTER TABLE usage_tracker_private.{name} ADD CONSTRAINT {name}_bounds \
           CHECK (created_at >= '{from}' AND created_at < '{to}'); \
         ALTER TABLE usage_tracker.ai_usage_log ATTACH PARTITION usage_tracker_private.{name} \
           FOR VALUES FROM ('{from}') TO ('{to}'); \
         ALTER TABLE usage_tracker_private.{name} DROP CONSTRAINT {name}_bounds; \
         ALTER TABLE usage_tracker_private.{name} ENABLE ROW LEVEL SECURITY; \
         REVOKE ALL ON usage_tracker_private.{name} FROM PUBLIC, anon, authenticated, service_role; \
         COMMENT ON TABLE usage_tracker_private.{name} IS 'Partition of usage_tracker.ai_usage_log for {from} up to {to}'"
    );
    Spi::run(&ddl)?;
    Ok(true)
}

/// Summarizes the page ranges written since the last call in the BRIN
/// indexes of every log partition (on ingest_seq and created_at); returns
/// how many. A range not summarized yet matches every BRIN search, so
/// without this the fold and every read of the unfolded rows scan all
/// pages written since autovacuum last got to the partition — at 40,000
/// rows a second, millions of rows. Called by each fold pass.
pub fn summarize_brin() -> Result<i64> {
    let n: Option<i64> = crate::spi_util::write_one(
        "SELECT coalesce(sum(pg_catalog.brin_summarize_new_values(i.indexrelid)), 0)::bigint \
           FROM pg_catalog.pg_inherits h \
           JOIN pg_catalog.pg_index i ON i.indrelid = h.inhrelid \
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
           JOIN pg_catalog.pg_am a ON a.oid = c.relam AND a.amname = 'brin' \
          WHERE h.inhparent = 'usage_tracker.ai_usage_log'::pg_catalog.regclass",
        &[],
    )?;
    Ok(n.unwrap_or(0))
}

/// Creates the partitions of this month (UTC) and `months_ahead` more.
pub fn ensure_ahead(now: &DateTime<Utc>, months_ahead: i32) -> Result<i32> {
    let base = month_key(now);
    let mut created = 0;
    for key in base..=base + months_ahead {
        if ensure_month(key)? {
            created += 1;
        }
    }
    Ok(created)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn month_keys_and_names() {
        let t = DateTime::parse_from_rfc3339("2026-12-31T23:59:59.999Z")
            .unwrap()
            .to_utc();
        let key = month_key(&t);
        assert_eq!(partition_name(key), "ai_usage_log_y2026m12");
        assert_eq!(month_start(key + 1), "2027-01-01 00:00:00+00");
    }

    #[pg_test]
    fn creates_a_partition_once() {
        let key = 2031 * 12 + 4;
        assert!(ensure_month(key).unwrap());
        assert!(!ensure_month(key).unwrap());
        let n: Option<i64> = Spi::get_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'usage_tracker.ai_usage_log'::regclass \
             AND inhrelid = 'usage_tracker_private.ai_usage_log_y2031m05'::regclass",
        )
        .unwrap();
        assert_eq!(n, Some(1));
    }

    #[pg_test]
    fn rejects_absurd_years() {
        assert!(ensure_month(1900 * 12).is_err());
        assert!(ensure_month(2500 * 12).is_err());
    }
}
