//! Every documented limit of the public API, in one place. README's limits
//! table is generated from `usage_tracker.limits()` and the doc test checks
//! that they agree, so the code and the documentation cannot drift.

use pgrx::prelude::*;
use serde_json::json;

use crate::jsonb::JsonLimits;

/// Tokens of one kind in one request.
pub const MAX_TOKENS: i64 = 1_000_000_000_000;
/// Quantity of one usage event, counter increment, consume or reservation.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000_000;
/// A price, USD per million tokens, and its decimal places.
pub const MAX_RATE: i64 = 100_000;
pub const MAX_RATE_SCALE: u32 = 9;
/// A budget, USD per billing period, its decimal places and thresholds.
pub const MAX_BUDGET_USD: i64 = 1_000_000_000_000;
pub const MAX_BUDGET_SCALE: u32 = 6;
pub const MAX_BUDGET_THRESHOLDS: usize = 10;
pub const MAX_THRESHOLD_PCT: i32 = 1000;
/// A report run's cost given by a trusted caller, USD.
pub const MAX_RUN_COST_USD: i64 = 1_000_000_000;
/// A report run limit per user and billing period.
pub const MAX_MONTHLY_RUN_LIMIT: i32 = 1_000_000;
pub const MAX_LATENCY_MS: i32 = 86_400_000;
pub const MAX_TOOL_TURNS: i32 = 100_000;
/// Days a dashboard covers (p_days).
pub const MAX_DASHBOARD_DAYS: i32 = 3660;
/// Days get_usage_summary covers (p_days).
pub const MAX_SUMMARY_DAYS: i32 = 365;
/// Days a date range (summaries, analyses, rollup checks) covers.
pub const MAX_RANGE_DAYS: i64 = 3660;
pub const MAX_DETAIL_ROWS: i32 = 10_000;
pub const MAX_LIST_ROWS: i32 = 1000;
pub const MAX_PENDING_ALERTS: i32 = 1000;
pub const MAX_RESERVATION_TTL_SECONDS: i32 = 86_400;
pub const DEFAULT_RESERVATION_TTL_SECONDS: i32 = 900;
/// How far in the future an event may be (clock skew), and how far in the
/// past a user may record one (older is a backfill: service_role only).
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// Decimal places of USD amounts in JSON results (seed 001's dashboards keep
/// the seed's 2 and 4); tables hold exact values.
pub const MONEY_JSON_SCALE: u32 = 9;

/// Text limits, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
pub const MAX_EMAIL: usize = 320;
pub const MAX_CUSTOMER_NAME: usize = 500;
pub const MAX_SESSION_ID: usize = 200;
pub const MAX_ERROR_MESSAGE: usize = 10_000;
pub const MAX_MODEL: usize = 200;
pub const MAX_NAME: usize = 63;
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_PROJECT_NAME: usize = 200;
pub const MAX_REPORT_CONTENT: usize = 1_048_576;
pub const MAX_COMMIT_REF: usize = 200;
pub const MAX_ERROR_CODE: usize = 100;

/// jsonb arguments: stored size and nesting depth.
pub const METADATA: JsonLimits = JsonLimits {
    max_bytes: 65_536,
    max_depth: 32,
};
pub const CONFIGURATION_SNAPSHOT: JsonLimits = JsonLimits {
    max_bytes: 1_048_576,
    max_depth: 32,
};
/// A batch (log_ai_usage_batch, track_usage_events): events per call, and
/// the array's size and depth (an event's metadata is two levels down).
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const EVENT_BATCH: JsonLimits = JsonLimits {
    max_bytes: 67_108_864,
    max_depth: METADATA.max_depth + 2,
};
pub const PLAN_LIMITS: JsonLimits = JsonLimits {
    max_bytes: 65_536,
    max_depth: 1,
};
pub const PRICE_LIST: JsonLimits = JsonLimits {
    max_bytes: 1_048_576,
    max_depth: 2,
};

fn json_limits(l: JsonLimits) -> serde_json::Value {
    json!({ "max_bytes": l.max_bytes, "max_depth": l.max_depth })
}

/// The documented limits as one JSON object (README's table is made from it).
pub fn all() -> serde_json::Value {
    json!({
        "tokens_per_kind": MAX_TOKENS,
        "quantity": MAX_QUANTITY,
        "price_usd_per_mtok": MAX_RATE,
        "price_decimal_places": MAX_RATE_SCALE,
        "budget_usd": MAX_BUDGET_USD,
        "budget_decimal_places": MAX_BUDGET_SCALE,
        "budget_thresholds": MAX_BUDGET_THRESHOLDS,
        "budget_threshold_pct": MAX_THRESHOLD_PCT,
        "report_run_cost_usd": MAX_RUN_COST_USD,
        "monthly_report_run_limit": MAX_MONTHLY_RUN_LIMIT,
        "latency_ms": MAX_LATENCY_MS,
        "tool_turns": MAX_TOOL_TURNS,
        "dashboard_days": MAX_DASHBOARD_DAYS,
        "usage_summary_days": MAX_SUMMARY_DAYS,
        "date_range_days": MAX_RANGE_DAYS,
        "detail_rows": MAX_DETAIL_ROWS,
        "list_rows": MAX_LIST_ROWS,
        "pending_alerts": MAX_PENDING_ALERTS,
        "reservation_ttl_seconds": MAX_RESERVATION_TTL_SECONDS,
        "clock_skew_seconds": CLOCK_SKEW_SECONDS,
        "json_money_decimal_places": MONEY_JSON_SCALE,
        "idempotency_key_chars": MAX_IDEMPOTENCY_KEY,
        "email_chars": MAX_EMAIL,
        "customer_name_chars": MAX_CUSTOMER_NAME,
        "session_id_chars": MAX_SESSION_ID,
        "error_message_chars": MAX_ERROR_MESSAGE,
        "model_chars": MAX_MODEL,
        "name_chars": MAX_NAME,
        "description_chars": MAX_DESCRIPTION,
        "project_name_chars": MAX_PROJECT_NAME,
        "report_content_chars": MAX_REPORT_CONTENT,
        "metadata": json_limits(METADATA),
        "configuration_snapshot": json_limits(CONFIGURATION_SNAPSHOT),
        "plan_limits": json_limits(PLAN_LIMITS),
        "batch_events": MAX_BATCH_EVENTS,
        "event_batch": json_limits(EVENT_BATCH),
        "price_list": json_limits(PRICE_LIST),
    })
}

/// The documented limits of the API (README's limits table).
#[pg_extern(
    immutable,
    parallel_safe,
    schema = "usage_tracker_private",
    name = "limits"
)]
fn limits() -> pgrx::JsonB {
    pgrx::JsonB(all())
}
