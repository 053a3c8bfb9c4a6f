//! Running a step in its own subtransaction, as PL/pgSQL's
//! `BEGIN ... EXCEPTION` does: if the step fails, only its own work is
//! rolled back and the caller learns why; the transaction goes on.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, PgTryBuilder};

use crate::errors::{log_server_only, Result, UsageError};

/// Why a step failed: its SQLSTATE and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub sqlstate: String,
    pub message: String,
}

fn sqlstate(code: PgSqlErrorCode) -> String {
    let mut n = code as i32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        // PGUNSIXBIT: six bits per character, '0' based.
        s.push(char::from(b'0' + (n & 0x3F) as u8));
        n >>= 6;
    }
    s
}

impl StepError {
    fn from_usage(e: &UsageError) -> Self {
        StepError {
            sqlstate: sqlstate(e.sqlstate()),
            message: e.to_string(),
        }
    }

    fn from_caught(e: &CaughtError) -> Self {
        let r = match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        StepError {
            sqlstate: sqlstate(r.sql_error_code()),
            message: r.message().to_string(),
        }
    }
}

enum Outcome<T> {
    Done(T),
    Failed(UsageError),
    Raised(CaughtError),
}

/// Runs `step` in a subtransaction. Its result, or, when it returned an
/// error or PostgreSQL raised one, its SQLSTATE and message (also written
/// to the server log) after rolling back what it did.
pub fn attempt<T>(
    name: &str,
    step: impl FnOnce() -> Result<T>,
) -> std::result::Result<T, StepError> {
    // SAFETY: the sequence of PL/pgSQL's exec_stmt_block: remember the
    // memory context and resource owner, start a subtransaction, and on
    // either outcome release or roll it back and restore both.
    let (cxt, owner) = unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cxt);
        (cxt, owner)
    };
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| match step() {
        Ok(v) => Outcome::Done(v),
        Err(e) => Outcome::Failed(e),
    }))
    .catch_others(Outcome::Raised)
    .execute();
    // SAFETY: see above; the error state was flushed when pgrx caught it.
    unsafe {
        pg_sys::MemoryContextSwitchTo(cxt);
        match &outcome {
            Outcome::Done(_) => pg_sys::ReleaseCurrentSubTransaction(),
            _ => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(cxt);
        pg_sys::CurrentResourceOwner = owner;
    }
    let err = match outcome {
        Outcome::Done(v) => return Ok(v),
        Outcome::Failed(e) => StepError::from_usage(&e),
        Outcome::Raised(e) => StepError::from_caught(&e),
    };
    log_server_only(&format!(
        "usage_tracker: {name} failed and was rolled back: {} {}",
        err.sqlstate, err.message
    ));
    Err(err)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn sqlstate_text() {
        assert_eq!(
            sqlstate(PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
            "22003"
        );
        assert_eq!(
            sqlstate(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE),
            "42501"
        );
    }

    #[pg_test]
    fn a_failed_step_rolls_back_only_itself() {
        Spi::run("CREATE TEMP TABLE t (x int)").unwrap();
        let ok = attempt("first", || {
            Spi::run("INSERT INTO t VALUES (1)")?;
            Ok(1)
        });
        assert_eq!(ok, Ok(1));
        let failed = attempt("second", || {
            Spi::run("INSERT INTO t VALUES (2)")?;
            Spi::run("SELECT 9223372036854775807::bigint + 1")?;
            Ok(2)
        });
        assert_eq!(failed.map_err(|e| e.sqlstate), Err("22003".to_string()));
        let refused = attempt("third", || -> Result<i32> {
            Spi::run("INSERT INTO t VALUES (3)")?;
            Err(UsageError::invalid("x", "no"))
        });
        assert_eq!(refused.map_err(|e| e.sqlstate), Err("22023".to_string()));
        let rows: Option<i64> = Spi::get_one("SELECT sum(x) FROM t").unwrap();
        assert_eq!(rows, Some(1));
    }
}
