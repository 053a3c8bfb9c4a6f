//! usage_tracker: usage metering for SaaS and AI products inside Postgres.
//!
//! The public schema `usage_tracker` holds SECURITY INVOKER wrappers (in
//! sql/finalize.sql) and RLS-protected tables; the SECURITY DEFINER bodies
//! defined here live in `usage_tracker_private`.

// Functions return pgrx's ErrorReport so that errors keep their SQLSTATE;
// boxing it would lose that, and the error path is cold.
#![allow(clippy::result_large_err)]

::pgrx::pg_module_magic!(name, version);

// Low in the tree: errors, limits, jsonb, validate, spi_util, subxact and
// identity reach no other module of the extension.
mod batch;
mod errors;
mod jsonb;
mod limits;
mod spi_util;
mod subxact;
mod validate;

mod identity;
mod invoker;
mod orgs;
mod partitions;
mod pricing;
mod projects;
mod relcache;

mod ai_log;
mod cache_analytics;
mod dashboards;
mod maintenance;
mod membership;
mod report_runs;
mod retention;
mod rollups;
mod usage;

/// Clients get a SQLSTATE and a clear message, never a Rust backtrace, even
/// when the server runs with RUST_BACKTRACE set: backtraces are not even
/// captured (errors::guarded logs what went wrong to the server log).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: the backend is single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
}

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);

/// The schema of the SECURITY DEFINER bodies (created in bootstrap.sql).
#[pgrx::pg_schema]
mod usage_tracker_private {}

pgrx::extension_sql_file!(
    "../sql/usage.sql",
    name = "usage_tables",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/report_runs.sql",
    name = "report_runs_tables",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/rollups.sql",
    name = "rollup_tables",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!(
    "../sql/projects.sql",
    name = "project_tables",
    requires = ["bootstrap"]
);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
