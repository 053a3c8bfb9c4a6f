//! Retention: how long each kind of row is kept, applied by run_maintenance.
//! The AI log loses whole monthly partitions (a DROP, not a DELETE).

use pgrx::datum::Interval;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::partitions::{month_key, partition_name, to_utc};
use crate::spi_util::{delete_count, read_one, write_one};

const RELATIONS: [&str; 7] = [
    "ai_usage_log",
    "ai_usage_hourly",
    "ai_usage_daily",
    "usage_events",
    "quota_reservations",
    "budget_alerts",
    "report_runs",
];

/// The cutoff instant for `relation` (now - keep), or None when kept forever.
pub fn cutoff(relation: &str) -> Result<Option<TimestampWithTimeZone>> {
    read_one(
        "SELECT pg_catalog.now() - r.keep FROM usage_tracker.retention_policies r \
         WHERE r.relation = $1 ORDER BY r.shipped LIMIT 1",
        &[relation.into()],
    )
}

/// Applies every retention policy; returns what was removed.
pub fn apply() -> Result<Value> {
    let mut out = serde_json::Map::new();
    if let Some(cut) = cutoff("ai_usage_log")? {
        let cut_key = to_utc(cut).map(|t| month_key(&t)).unwrap_or(i32::MIN);
        // Partitions whose whole month is older than the cutoff.
        let names: Vec<String> = Spi::connect(|c| -> Result<Vec<String>> {
            let mut v = Vec::new();
            for row in c.select(
                "SELECT c.relname::text FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'usage_tracker.ai_usage_log'::pg_catalog.regclass ORDER BY 1",
                None,
                &[],
            )? {
                v.push(row.get::<String>(1)?.unwrap_or_default());
            }
            Ok(v)
        })?;
        let mut dropped = Vec::new();
        for name in names {
            let Some(key) = parse_partition_key(&name) else {
                continue;
            };
            // The partition ends where the next month starts: at or before
            // the start of the cutoff's month.
            if key < cut_key {
                Spi::run(&format!(
                    "SET LOCAL lock_timeout = '5s'; DROP TABLE usage_tracker_private.{}",
                    partition_name(key)
                ))?;
                dropped.push(name);
            }
        }
        let keys = delete_count(
            "DELETE FROM usage_tracker_private.ai_usage_idempotency WHERE created_at < $1",
            &[cut.into()],
        )?;
        out.insert("log_partitions_dropped".into(), json!(dropped));
        out.insert("idempotency_keys_deleted".into(), json!(keys));
    }
    if let Some(cut) = cutoff("ai_usage_hourly")? {
        out.insert(
            "hourly_rollup_rows_deleted".into(),
            json!(crate::rollups::trim_hourly(cut)?),
        );
    }
    if let Some(cut) = cutoff("ai_usage_daily")? {
        out.insert(
            "daily_rollup_rows_deleted".into(),
            json!(crate::rollups::trim_daily(cut)?),
        );
    }
    for (relation, sql) in [
        ("usage_events", "DELETE FROM usage_tracker.usage_events WHERE occurred_at < $1"),
        ("quota_reservations", "DELETE FROM usage_tracker.quota_reservations WHERE status <> 'open' AND resolved_at < $1"),
        ("budget_alerts", "DELETE FROM usage_tracker.budget_alerts WHERE delivered_at < $1"),
        ("report_runs", "DELETE FROM usage_tracker.report_runs WHERE status <> 'running' AND completed_at < $1"),
    ] {
        if let Some(cut) = cutoff(relation)? {
            out.insert(format!("{relation}_deleted"), json!(delete_count(sql, &[cut.into()])?));
        }
    }
    Ok(Value::Object(out))
}

/// `ai_usage_log_y2026m11` -> months since year 0.
fn parse_partition_key(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("ai_usage_log_y")?;
    let (y, m) = rest.split_once('m')?;
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then_some(y * 12 + m - 1)
}

fn set_impl(relation: Option<String>, keep: Option<Interval>) -> Result<bool> {
    require_trusted("set_retention")?;
    let relation = relation.ok_or(UsageError::NullValue("p_relation"))?;
    if !RELATIONS.contains(&relation.as_str()) {
        return Err(UsageError::invalid(
            "p_relation",
            format!("'{relation}' is not one of {}", RELATIONS.join(", ")),
        ));
    }
    if let Some(k) = &keep {
        let ok: Option<bool> = read_one("SELECT $1 >= interval '1 day'", &[(*k).into()])?;
        if ok != Some(true) {
            return Err(UsageError::out_of_range(
                "p_keep",
                "keep rows at least one day (NULL keeps them forever)",
            ));
        }
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.retention_policies AS r (relation, keep) VALUES ($1, $2) \
         ON CONFLICT (relation, shipped) DO UPDATE SET keep = EXCLUDED.keep, updated_at = pg_catalog.now() RETURNING true",
        &[relation.into(), keep.into()],
    )?;
    Ok(true)
}

/// Sets how long run_maintenance keeps a kind of row (service_role); NULL
/// keeps it forever.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_retention"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_retention(p_relation: Option<String>, p_keep: Option<Interval>) -> PgResult<bool> {
    guarded(|| set_impl(p_relation, p_keep))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn partition_names_parse() {
        assert_eq!(
            parse_partition_key("ai_usage_log_y2026m11"),
            Some(2026 * 12 + 10)
        );
        assert_eq!(parse_partition_key("ai_usage_log_y2026m13"), None);
        assert_eq!(parse_partition_key("something_else"), None);
    }
}
