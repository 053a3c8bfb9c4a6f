//! `run_maintenance()`: all periodic work, safe to call any time and
//! concurrently (each step serializes on its own lock).

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::errors::{at_boundary, PgResult, Result};
use crate::identity::require_trusted;
use crate::partitions;

/// Months of log partitions kept ready ahead of the current one.
pub const PARTITIONS_AHEAD: i32 = 2;

fn run() -> Result<serde_json::Value> {
    require_trusted("run_maintenance")?;
    let (_, now) = partitions::txn_now()?;
    let created = partitions::ensure_ahead(&now, PARTITIONS_AHEAD)?;
    let expired = crate::usage::quotas::expire_reservations()?;
    let stuck = crate::report_runs::expire_stuck_runs()?;
    let rollups = crate::rollups::fold()?;
    let retention = crate::retention::apply()?;
    Ok(serde_json::json!({
        "partitions_created": created,
        "reservations_expired": expired,
        "report_runs_timed_out": stuck,
        "rollups": rollups,
        "retention": retention,
    }))
}

/// Periodic work: creates the log partitions for this month and the next
/// ones, marks expired reservations and fails report runs stuck in running
/// (usage_tracker.report_run_timeout, default 1 hour), and applies the
/// retention policies and folds new log rows into the daily rollup.
/// Schedule it every
/// minute with pg_cron. Returns what it did.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "run_maintenance"
)]
#[search_path(pg_catalog, pg_temp)]
fn run_maintenance() -> PgResult<JsonB> {
    at_boundary(run()).map(JsonB)
}
