//! `run_maintenance()`: all periodic work, safe to call any time and
//! concurrently (each step serializes on its own lock).
//!
//! Each step runs in its own subtransaction: a step that fails (a lock
//! timeout, a bug, one organization's data) is rolled back and reported,
//! and the other steps still do their work — no tenant can stop
//! maintenance for everyone.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::partitions;
use crate::subxact::attempt;

/// Months of log partitions kept ready ahead of the current one.
pub const PARTITIONS_AHEAD: i32 = 2;

type Step = (&'static str, fn() -> Result<Value>);

fn partitions_step() -> Result<Value> {
    let (_, now) = partitions::txn_now()?;
    Ok(json!(partitions::ensure_ahead(&now, PARTITIONS_AHEAD)?))
}

fn budget_alerts_step() -> Result<Value> {
    if !crate::usage::schema_0_3()? {
        return Ok(json!(0));
    }
    Ok(json!(crate::usage::budgets::alert_crossed(None)?))
}

const STEPS: [Step; 6] = [
    ("partitions_created", partitions_step),
    ("reservations_expired", || {
        Ok(json!(crate::usage::reservations::expire()?))
    }),
    ("budget_alerts_raised", budget_alerts_step),
    ("report_runs_timed_out", || {
        Ok(json!(crate::report_runs::expire_stuck_runs()?))
    }),
    ("rollups", crate::rollups::fold),
    ("retention", crate::retention::apply),
];

fn run() -> Result<Value> {
    require_trusted("run_maintenance")?;
    // SAFETY: reads a backend global.
    if unsafe { pg_sys::XactReadOnly } {
        // Every step writes: say so once rather than failing each of them.
        return Err(UsageError::ReadOnly);
    }
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (name, step) in STEPS {
        match attempt(name, step) {
            Ok(v) => {
                out.insert(name.into(), v);
            }
            Err(e) => {
                out.insert(name.into(), Value::Null);
                pgrx::warning!(
                    "usage_tracker: run_maintenance step {name} failed ({}): {}; the other steps ran",
                    e.sqlstate,
                    e.message
                );
                errors.push(json!({ "step": name, "sqlstate": e.sqlstate, "message": e.message }));
            }
        }
    }
    out.insert("ok".into(), json!(errors.is_empty()));
    out.insert("errors".into(), Value::Array(errors));
    Ok(Value::Object(out))
}

/// Periodic work: creates the log partitions for this month and the next
/// ones, marks expired reservations, raises budget alerts concurrent
/// requests left unraised, fails report runs stuck in running
/// (usage_tracker.report_run_timeout, default 1 hour), folds new log rows
/// into the rollups and applies the retention policies. Each step succeeds
/// or fails on its own; the result says what each did and lists the
/// failures (`ok`, `errors`). Schedule it every minute with pg_cron.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "run_maintenance"
)]
#[search_path(pg_catalog, pg_temp)]
fn run_maintenance() -> PgResult<JsonB> {
    guarded(run).map(JsonB)
}
