//! Plans, limit definitions and event types (service_role): seed 002's
//! tiers held as data.

use pgrx::prelude::*;
use serde_json::{json, Value};

use super::known_event_type;
use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::require_trusted;
use crate::jsonb::Jsonb;
use crate::limits;
use crate::spi_util::{read_one, write_one};
use crate::validate::{check_len, valid_name};

fn name_arg(param: &'static str, v: Option<String>) -> Result<String> {
    let v = v.ok_or(UsageError::NullValue(param))?;
    if !valid_name(&v) {
        return Err(UsageError::invalid(
            param,
            "use lower case letters, digits and _, starting with a letter (at most 63)",
        ));
    }
    Ok(v)
}

fn add_event_type_impl(
    t: Option<String>,
    unit: Option<String>,
    description: Option<String>,
) -> Result<bool> {
    require_trusted("add_event_type")?;
    let t = name_arg("p_event_type", t)?;
    let added: Option<bool> = write_one(
        "INSERT INTO usage_tracker.event_types (event_type, unit, description) \
         VALUES ($1, coalesce($2, 'events'), $3) ON CONFLICT (event_type) DO NOTHING RETURNING true",
        &[t.into(), unit.into(), description.into()],
    )?;
    Ok(added.unwrap_or(false))
}

/// Registers a custom event type (service_role). Returns false if it existed.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "add_event_type"
)]
#[search_path(pg_catalog, pg_temp)]
fn add_event_type(
    p_event_type: Option<String>,
    p_unit: Option<String>,
    p_description: Option<String>,
) -> PgResult<bool> {
    guarded(|| add_event_type_impl(p_event_type, p_unit, p_description))
}

fn define_limit_impl(
    key: Option<String>,
    types: Option<Vec<Option<String>>>,
    unit: Option<String>,
    period: Option<String>,
) -> Result<bool> {
    require_trusted("define_limit")?;
    let key = name_arg("p_limit_key", key)?;
    let types: Vec<String> = types
        .ok_or(UsageError::NullValue("p_event_types"))?
        .into_iter()
        .map(|t| t.ok_or(UsageError::NullValue("p_event_types")))
        .collect::<Result<_>>()?;
    if types.is_empty() || types.len() > 32 {
        return Err(UsageError::invalid(
            "p_event_types",
            "give 1 to 32 event types",
        ));
    }
    for t in &types {
        if !known_event_type(t)? {
            return Err(UsageError::invalid(
                "p_event_types",
                format!("'{t}' is not a known event type"),
            ));
        }
    }
    let period = period.unwrap_or_else(|| "billing_period".into());
    if period != "billing_period" && period != "total" {
        return Err(UsageError::invalid(
            "p_period",
            format!("'{period}' is not billing_period or total"),
        ));
    }
    let unit = unit.unwrap_or_else(|| "units".into());
    let shipped: Option<bool> = read_one(
        "SELECT d.shipped FROM usage_tracker.limit_definitions d WHERE d.limit_key = $1",
        &[key.as_str().into()],
    )?;
    if shipped == Some(true) {
        return Err(UsageError::invalid(
            "p_limit_key",
            format!("'{key}' is shipped and fixed; define a new limit"),
        ));
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.limit_definitions AS d (limit_key, event_types, unit, period) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (limit_key) DO UPDATE SET event_types = EXCLUDED.event_types, unit = EXCLUDED.unit, \
           period = EXCLUDED.period RETURNING true",
        &[key.as_str().into(), types.into(), unit.into(), period.into()],
    )?;
    // Period rows start again from the daily counters under the new definition.
    crate::spi_util::write_one::<bool>(
        "WITH d AS (DELETE FROM usage_tracker_private.quota_usage WHERE limit_key = $1 RETURNING 1) SELECT true",
        &[key.into()],
    )?;
    Ok(true)
}

/// Defines (or redefines) a limit: which event types count against it, its
/// unit, and whether it resets each billing period or counts the total.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "define_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn define_limit(
    p_limit_key: Option<String>,
    p_event_types: Option<Vec<Option<String>>>,
    p_unit: Option<String>,
    p_period: Option<String>,
) -> PgResult<bool> {
    guarded(|| define_limit_impl(p_limit_key, p_event_types, p_unit, p_period))
}

fn create_plan_impl(
    name: Option<String>,
    description: Option<String>,
    plan_limits: Option<Jsonb>,
    is_default: Option<bool>,
    base_plan: Option<String>,
) -> Result<String> {
    require_trusted("create_plan")?;
    let name = name_arg("p_plan", name)?;
    if let Some(b) = &base_plan {
        let known: Option<bool> = read_one(
            "SELECT EXISTS (SELECT 1 FROM usage_tracker.plans p WHERE p.plan = $1)",
            &[b.as_str().into()],
        )?;
        if known != Some(true) {
            return Err(UsageError::invalid(
                "p_base_plan",
                format!("'{b}' is not a plan"),
            ));
        }
    }
    check_len("p_description", &description, limits::MAX_DESCRIPTION)?;
    let limits = match plan_limits {
        Some(j) => {
            j.check_object("p_limits", limits::PLAN_LIMITS)?;
            j.to_value()?
        }
        None => json!({}),
    };
    let Value::Object(limits) = limits else {
        return Err(UsageError::invalid(
            "p_limits",
            "must be a JSON object {limit_key: max}",
        ));
    };
    let mut parsed = Vec::new();
    for (k, v) in limits {
        let max = v
            .as_i64()
            .or_else(|| v.to_string().parse::<i64>().ok())
            .ok_or_else(|| {
                UsageError::invalid("p_limits", format!("{k}: {v} is not an integer"))
            })?;
        if max < -1 {
            return Err(UsageError::out_of_range(
                "p_limits",
                format!("{k}: {max} is below -1 (unlimited)"),
            ));
        }
        parsed.push((k, max));
    }
    // Shipped plans keep their row; their limits can be overridden.
    write_one::<bool>(
        "INSERT INTO usage_tracker.plans AS p (plan, description) VALUES ($1, $2) \
         ON CONFLICT (plan) DO UPDATE SET description = coalesce(EXCLUDED.description, p.description) \
         WHERE NOT p.shipped RETURNING true",
        &[name.as_str().into(), description.into()],
    )?;
    let listed: Vec<String> = parsed.iter().map(|(k, _)| k.clone()).collect();
    for (k, max) in parsed {
        set_limit_row(&name, &k, max)?;
    }
    // Every other limit the plan does not have yet: the base plan's, or
    // unlimited — said out loud, since it is the lenient choice.
    let unset: Vec<String> = crate::spi_util::read_one::<Vec<String>>(
        "SELECT pg_catalog.array_agg(d.limit_key ORDER BY d.limit_key) FROM usage_tracker.limit_definitions d \
          WHERE d.limit_key <> ALL ($2) \
            AND NOT EXISTS (SELECT 1 FROM usage_tracker.plan_limits pl WHERE pl.plan = $1 AND pl.limit_key = d.limit_key)",
        &[name.as_str().into(), listed.into()],
    )?
    .unwrap_or_default();
    match &base_plan {
        Some(base) => {
            write_one::<bool>(
                "WITH b AS (SELECT DISTINCT ON (pl.limit_key) pl.limit_key, pl.max_quantity FROM usage_tracker.plan_limits pl \
                             WHERE pl.plan = $2 AND pl.limit_key = ANY ($3) ORDER BY pl.limit_key, pl.shipped) \
                 INSERT INTO usage_tracker.plan_limits (plan, limit_key, max_quantity) \
                 SELECT $1, b.limit_key, b.max_quantity FROM b RETURNING true",
                &[name.as_str().into(), base.as_str().into(), unset.into()],
            )?;
        }
        None if !unset.is_empty() => {
            pgrx::notice!(
                "plan {name}: limits not listed in p_limits are unlimited: {} (give p_base_plan to copy another plan's)",
                unset.join(", ")
            );
        }
        None => {}
    }
    if is_default.is_some() {
        let shipped: Option<bool> = read_one(
            "SELECT p.shipped FROM usage_tracker.plans p WHERE p.plan = $1",
            &[name.as_str().into()],
        )?;
        if shipped == Some(true) && is_default == Some(true) {
            return Err(UsageError::invalid(
                "p_is_default",
                "a shipped plan cannot become the default; create a custom plan with its limits",
            ));
        }
        if shipped == Some(false) {
            // At most one custom default; it overrides the shipped one (trial).
            write_one::<bool>(
                "WITH a AS (UPDATE usage_tracker.plans SET is_default = false \
                            WHERE is_default AND NOT shipped AND plan <> $1 RETURNING 1), \
                      b AS (UPDATE usage_tracker.plans SET is_default = $2 WHERE plan = $1 RETURNING 1) SELECT true",
                &[name.as_str().into(), is_default.into()],
            )?;
        }
    }
    Ok(name)
}

fn set_limit_row(plan_name: &str, key: &str, max: i64) -> Result<()> {
    let known: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.limit_definitions d WHERE d.limit_key = $1)",
        &[key.into()],
    )?;
    if known != Some(true) {
        return Err(UsageError::invalid(
            "p_limit_key",
            format!("'{key}' is not a defined limit (define_limit)"),
        ));
    }
    write_one::<bool>(
        "INSERT INTO usage_tracker.plan_limits AS l (plan, limit_key, max_quantity) VALUES ($1, $2, $3) \
         ON CONFLICT (plan, limit_key, shipped) DO UPDATE SET max_quantity = EXCLUDED.max_quantity, \
           updated_at = pg_catalog.now() RETURNING true",
        &[plan_name.into(), key.into(), max.into()],
    )?;
    Ok(())
}

/// Creates or updates a custom plan (service_role) with limits given as
/// `{"chat_messages": 1000, "ai_tokens": -1}`; optionally the default plan.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "create_plan"
)]
#[search_path(pg_catalog, pg_temp)]
fn create_plan(
    p_plan: Option<String>,
    p_description: Option<String>,
    p_limits: Option<Jsonb>,
    p_is_default: Option<bool>,
    p_base_plan: Option<String>,
) -> PgResult<String> {
    guarded(|| create_plan_impl(p_plan, p_description, p_limits, p_is_default, p_base_plan))
}

fn set_plan_limit_impl(
    plan_name: Option<String>,
    key: Option<String>,
    max: Option<i64>,
) -> Result<bool> {
    require_trusted("set_plan_limit")?;
    let plan_name = plan_name.ok_or(UsageError::NullValue("p_plan"))?;
    let key = key.ok_or(UsageError::NullValue("p_limit_key"))?;
    let max = max.ok_or(UsageError::NullValue("p_max_quantity"))?;
    if max < -1 {
        return Err(UsageError::out_of_range(
            "p_max_quantity",
            format!("{max} is below -1 (unlimited)"),
        ));
    }
    let known: Option<bool> = read_one(
        "SELECT EXISTS (SELECT 1 FROM usage_tracker.plans p WHERE p.plan = $1)",
        &[plan_name.as_str().into()],
    )?;
    if known != Some(true) {
        return Err(UsageError::invalid(
            "p_plan",
            format!("'{plan_name}' is not a plan"),
        ));
    }
    set_limit_row(&plan_name, &key, max)?;
    Ok(true)
}

/// Sets one limit of a plan (service_role); -1 is unlimited.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_plan_limit"
)]
#[search_path(pg_catalog, pg_temp)]
fn set_plan_limit(
    p_plan: Option<String>,
    p_limit_key: Option<String>,
    p_max_quantity: Option<i64>,
) -> PgResult<bool> {
    guarded(|| set_plan_limit_impl(p_plan, p_limit_key, p_max_quantity))
}
