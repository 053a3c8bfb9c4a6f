//! usage_tracker: usage metering for SaaS and AI products inside Postgres.
//!
//! The public schema `usage_tracker` holds SECURITY INVOKER wrappers (in
//! sql/finalize.sql) and RLS-protected tables; the SECURITY DEFINER bodies
//! defined here live in `usage_tracker_private`.

// Functions return pgrx's ErrorReport so that errors keep their SQLSTATE;
// boxing it would lose that, and the error path is cold.
#![allow(clippy::result_large_err)]

::pgrx::pg_module_magic!(name, version);

mod ai_log;
mod cache_analytics;
mod dashboards;
mod errors;
mod identity;
mod maintenance;
mod membership;
mod orgs;
mod partitions;
mod pricing;
mod relcache;
mod report_runs;
mod retention;
mod rollups;
mod spi_util;
mod usage;

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
