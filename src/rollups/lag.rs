//! How far the fold is behind the log: rows waiting and the age of the
//! oldest unfolded row.
//!
//! Rows carry no ingestion time (created_at may be a backfill), so each pass
//! records a mark: the sequence position it read and when. A row numbered
//! above a mark drew its number after the mark's time, so the oldest
//! unfolded row (numbered above folded_through) is at most as old as the
//! latest mark at or below folded_through. Marks above folded_through (a
//! pass bounded by usage_tracker.fold_batch_rows) wait for later passes.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

use super::PROGRESS;
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::spi_util::{plan, read_one};

/// Marks kept: the boundary one and the newest others.
const MAX_MARKS: usize = 64;

/// A sequence position and when it was read (microseconds since 2000).
pub type Mark = (i64, TimestampWithTimeZone);

/// Whether the database has 0.3.0's marks (see relcache::has_column).
pub fn has_marks() -> Result<bool> {
    crate::relcache::has_column("usage_tracker_private.rollup_progress", "marks_seq")
}

/// The current position of the log's sequence, and when it was read (the
/// time first: any row numbered above the position came after it).
pub fn read_position() -> Result<Mark> {
    let at: Option<TimestampWithTimeZone> = read_one("SELECT pg_catalog.clock_timestamp()", &[])?;
    let at = at.ok_or_else(|| UsageError::Internal("clock".into()))?;
    let pos: Option<i64> = read_one(
        "SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM usage_tracker_private.ai_usage_log_ingest_seq s",
        &[],
    )?;
    Ok((pos.unwrap_or(0), at))
}

/// The recorded marks, ascending.
pub fn marks() -> Result<Vec<Mark>> {
    if !has_marks()? {
        return Ok(Vec::new());
    }
    Spi::connect(|c| -> Result<_> {
        let args = [PROGRESS.into()];
        let p = plan(
            c,
            "SELECT p.marks_seq, p.marks_at FROM usage_tracker_private.rollup_progress p WHERE p.rollup = $1",
            &args,
            false,
        )?;
        let t = c.select(&*p, Some(1), &args)?;
        if t.is_empty() {
            return Ok(Vec::new());
        }
        let r = t.first();
        let seqs = r.get::<Vec<i64>>(1)?.unwrap_or_default();
        let ats = r.get::<Vec<TimestampWithTimeZone>>(2)?.unwrap_or_default();
        Ok(seqs.into_iter().zip(ats).collect())
    })
}

/// The marks to keep after folding through `folded`: the latest at or
/// below it (it bounds the lag) and those above it, newest first when
/// there are too many (dropping one only loosens the bound).
pub fn prune(mut marks: Vec<Mark>, new: Mark, folded: i64) -> Vec<Mark> {
    marks.push(new);
    marks.sort_by_key(|m| m.0);
    let boundary = marks.iter().rposition(|m| m.0 <= folded);
    let mut kept: Vec<Mark> = Vec::new();
    if let Some(b) = boundary {
        kept.push(marks[b]);
    }
    let above: Vec<Mark> = marks.into_iter().filter(|m| m.0 > folded).collect();
    let skip = above.len().saturating_sub(MAX_MARKS - 1);
    kept.extend(above.into_iter().skip(skip));
    kept
}

/// Writes the marks.
pub fn store(marks: &[Mark]) -> Result<()> {
    if !has_marks()? {
        return Ok(());
    }
    let seqs: Vec<i64> = marks.iter().map(|m| m.0).collect();
    let ats: Vec<TimestampWithTimeZone> = marks.iter().map(|m| m.1).collect();
    crate::spi_util::write_one::<bool>(
        "UPDATE usage_tracker_private.rollup_progress SET marks_seq = $1, marks_at = $2 WHERE rollup = $3 RETURNING true",
        &[seqs.into(), ats.into(), PROGRESS.into()],
    )?;
    Ok(())
}

/// The lag given the marks, the fold position and the sequence position
/// now: rows waiting (at most: numbers of rolled-back writes are skipped)
/// and the age in seconds of the oldest unfolded row (at most; null when
/// no mark bounds it yet, 0 when nothing waits).
pub fn lag(marks: &[Mark], folded: i64, now: Mark) -> Value {
    let waiting = (now.0 - folded).max(0);
    let seconds = if waiting == 0 {
        Some(0.0)
    } else {
        marks
            .iter()
            .rev()
            .find(|m| m.0 <= folded)
            .map(|m| ((now.1.into_inner() - m.1.into_inner()) as f64 / 1e6).max(0.0))
    };
    json!({
        "rows_waiting": waiting,
        "lag_seconds": seconds.map(|s| (s * 1000.0).round() / 1000.0),
    })
}

fn rollup_lag_impl() -> Result<JsonB> {
    require_trusted("rollup_lag")?;
    let folded: Option<(Option<i64>, Option<TimestampWithTimeZone>)> = Spi::connect(|c| {
        let t = c.select(
            "SELECT p.folded_through, p.updated_at FROM usage_tracker_private.rollup_progress p WHERE p.rollup = $1",
            Some(1),
            &[PROGRESS.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, UsageError>(None);
        }
        Ok(Some(t.first().get_two::<i64, TimestampWithTimeZone>()?))
    })?;
    let (folded, last) = folded.map_or((0, None), |(f, u)| (f.unwrap_or(0), u));
    let now = read_position()?;
    let mut v = lag(&marks()?, folded, now);
    v["folded_through"] = json!(folded);
    v["last_fold_at"] = json!(last.map(|t| t.to_iso_string()));
    Ok(JsonB(v))
}

/// How far the rollups are behind the log: rows waiting to be folded and
/// the age of the oldest of them (an upper bound), for monitoring.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "rollup_lag"
)]
#[search_path(pg_catalog, pg_temp)]
fn rollup_lag() -> PgResult<JsonB> {
    guarded(rollup_lag_impl)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    fn at(us: i64) -> TimestampWithTimeZone {
        // SAFETY: any i64 is a valid timestamptz datum.
        unsafe { TimestampWithTimeZone::from_datum(pg_sys::Datum::from(us), false).unwrap() }
    }

    #[pg_test]
    fn marks_keep_the_boundary_and_bound_the_lag() {
        let m = prune(
            vec![(10, at(1_000_000)), (20, at(2_000_000))],
            (30, at(3_000_000)),
            20,
        );
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![20, 30]);
        // Folded through 20 of 30: the oldest waiting row came after the mark at 20.
        let v = lag(&m, 20, (30, at(12_000_000)));
        assert_eq!(v["rows_waiting"], 10);
        assert_eq!(v["lag_seconds"], 10.0);
        // Nothing waiting: no lag.
        assert_eq!(lag(&m, 30, (30, at(99_000_000)))["lag_seconds"], 0.0);
        // No mark at or below the fold position yet: unknown.
        assert!(lag(&[(50, at(1))], 20, (60, at(2)))["lag_seconds"].is_null());
        // Many passes behind: the newest marks and the boundary stay.
        let many: Vec<Mark> = (1..200).map(|i| (i * 10, at(i))).collect();
        let kept = prune(many, (2000, at(2000)), 15);
        assert_eq!(kept.len(), MAX_MARKS);
        assert_eq!(kept[0].0, 10);
        assert_eq!(kept.last().map(|x| x.0), Some(2000));
    }
}
