//! One error type for the extension, each variant with an explicit SQLSTATE,
//! and the boundary every SQL-callable body runs behind ([`guarded`]).

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode, PgTryBuilder};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// 42501: the caller may not do this.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// 42501: no user identity in the JWT claims.
    #[error("not authenticated: request.jwt.claims carries no valid user id (sub)")]
    NotAuthenticated,
    /// 22004: a required argument was NULL.
    #[error("{0} must not be null")]
    NullValue(&'static str),
    /// 22003: a number outside its documented range, or a total that cannot
    /// be represented.
    #[error("{name} is out of range: {detail}")]
    OutOfRange { name: &'static str, detail: String },
    /// 22023: a value that is not one of the allowed ones.
    #[error("invalid {name}: {detail}")]
    InvalidParameter { name: &'static str, detail: String },
    /// 22001: text longer than its documented limit.
    #[error("{name} is too long: at most {max} characters")]
    TooLong { name: &'static str, max: usize },
    /// 55000: the object is not in a state that allows this (e.g. a
    /// reservation that is no longer open).
    #[error("{0}")]
    NotOpen(String),
    /// 23505: the request conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// 54000: a request bigger than the documented maximum (e.g. a batch).
    #[error("{name} is too large: {detail}")]
    TooLarge { name: &'static str, detail: String },
    /// 25006: a write in a read-only transaction.
    #[error("cannot write in a read-only transaction")]
    ReadOnly,
    /// One event of a batch was refused: the event's own SQLSTATE, its index
    /// (and field, e.g. `.input_tokens`) in the message.
    #[error("events[{index}]{field}: {detail}")]
    InEvent {
        index: usize,
        field: String,
        code: PgSqlErrorCode,
        detail: String,
    },
    /// XX000: a bug; never expected. The text goes to the server log only.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, UsageError>;

impl UsageError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            UsageError::Forbidden(_) | UsageError::NotAuthenticated => {
                ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            UsageError::NullValue(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            UsageError::OutOfRange { .. } => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            UsageError::InvalidParameter { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            UsageError::TooLong { .. } => ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
            UsageError::Conflict(_) => ERRCODE_UNIQUE_VIOLATION,
            UsageError::NotOpen(_) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            UsageError::TooLarge { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            UsageError::ReadOnly => ERRCODE_READ_ONLY_SQL_TRANSACTION,
            UsageError::InEvent { code, .. } => *code,
            UsageError::Internal(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    pub fn out_of_range(name: &'static str, detail: impl Into<String>) -> Self {
        UsageError::OutOfRange {
            name,
            detail: detail.into(),
        }
    }

    pub fn invalid(name: &'static str, detail: impl Into<String>) -> Self {
        UsageError::InvalidParameter {
            name,
            detail: detail.into(),
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        UsageError::Forbidden(detail.into())
    }

    /// This error as the error of event `index` of a batch: same SQLSTATE,
    /// the argument `p_x` named as the event's key `events[index].x`.
    /// Internal errors stay what they are.
    pub fn in_event(self, index: usize) -> Self {
        let field = |name: &str| format!(".{}", name.strip_prefix("p_").unwrap_or(name));
        let code = self.sqlstate();
        let (field, detail) = match self {
            UsageError::Internal(_) | UsageError::InEvent { .. } => return self,
            UsageError::NullValue(n) => (field(n), "must not be null".to_string()),
            UsageError::OutOfRange { name, detail } => {
                (field(name), format!("out of range: {detail}"))
            }
            UsageError::InvalidParameter { name, detail } => (field(name), detail),
            UsageError::TooLong { name, max } => {
                (field(name), format!("too long: at most {max} characters"))
            }
            UsageError::TooLarge { name, detail } => (field(name), format!("too large: {detail}")),
            other => (String::new(), other.to_string()),
        };
        UsageError::InEvent {
            index,
            field,
            code,
            detail,
        }
    }

    /// A total that does not fit its type: refused rather than wrapped.
    pub fn overflow(name: &'static str) -> Self {
        UsageError::out_of_range(name, "the total cannot be represented")
    }
}

impl From<pgrx::spi::Error> for UsageError {
    fn from(e: pgrx::spi::Error) -> Self {
        UsageError::Internal(format!("SPI: {e}"))
    }
}

/// The message a client sees for an error that is a bug.
const INTERNAL_MESSAGE: &str =
    "usage_tracker: internal error (the server log has the details; please report it)";

impl From<UsageError> for ErrorReport {
    #[track_caller]
    fn from(e: UsageError) -> Self {
        if let UsageError::Internal(text) = &e {
            log_server_only(&format!("usage_tracker internal error: {text}"));
            return ErrorReport::new(e.sqlstate(), INTERNAL_MESSAGE, "usage_tracker");
        }
        ErrorReport::new(e.sqlstate(), e.to_string(), "usage_tracker")
    }
}

/// Result type of every `#[pg_extern]`: errors reach the client with their SQLSTATE.
pub type PgResult<T> = std::result::Result<T, ErrorReport>;

/// Writes to the server log, never to the client (whatever its
/// client_min_messages says).
pub fn log_server_only(text: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        text.to_string(),
        "usage_tracker",
    )
    .report(PgLogLevel::LOG_SERVER_ONLY);
}

/// Errors a client should see as PostgreSQL raised them (message included):
/// retryable conflicts, cancellation, resource limits and read-only
/// transactions carry no internals and tell the caller what to do.
fn passes_through(code: PgSqlErrorCode) -> bool {
    use PgSqlErrorCode::*;
    matches!(
        code,
        ERRCODE_T_R_SERIALIZATION_FAILURE
            | ERRCODE_T_R_DEADLOCK_DETECTED
            | ERRCODE_QUERY_CANCELED
            | ERRCODE_LOCK_NOT_AVAILABLE
            | ERRCODE_READ_ONLY_SQL_TRANSACTION
            | ERRCODE_ADMIN_SHUTDOWN
            | ERRCODE_OUT_OF_MEMORY
            | ERRCODE_DISK_FULL
            | ERRCODE_TOO_MANY_CONNECTIONS
            | ERRCODE_INSUFFICIENT_RESOURCES
            | ERRCODE_CONFIGURATION_LIMIT_EXCEEDED
            | ERRCODE_IDLE_IN_TRANSACTION_SESSION_TIMEOUT
    )
}

/// What a client sees for an error PostgreSQL raised inside a body (from an
/// SPI statement): its SQLSTATE and a clear message, never the statement,
/// its detail (key values of internal tables) or a Rust backtrace — those
/// go to the server log.
fn client_report(e: CaughtError) -> ErrorReport {
    match e {
        CaughtError::ErrorReport(r) => {
            // Our own UsageError already made clean (see From above).
            ErrorReport::new(r.sql_error_code(), r.message().to_string(), "usage_tracker")
        }
        CaughtError::PostgresError(r) => {
            let code = r.sql_error_code();
            log_server_only(&format!(
                "usage_tracker: {code:?} raised inside the extension: {} (detail: {})",
                r.message(),
                r.detail().unwrap_or("none")
            ));
            let message = if passes_through(code) {
                r.message().to_string()
            } else {
                match code {
                    PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE => {
                        "usage_tracker: a total is out of range (it cannot be represented); nothing was written".to_string()
                    }
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR => INTERNAL_MESSAGE.to_string(),
                    _ => format!("usage_tracker: {}", r.message()),
                }
            };
            ErrorReport::new(code, message, "usage_tracker")
        }
        CaughtError::RustPanic { ereport, .. } => {
            log_server_only(&format!(
                "usage_tracker: panic: {} at {}:{}",
                ereport.message(),
                ereport.file(),
                ereport.line_number()
            ));
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                INTERNAL_MESSAGE,
                "usage_tracker",
            )
        }
    }
}

/// Runs a body at the SQL boundary: its errors reach the client with their
/// SQLSTATE and a clear message; PostgreSQL errors from inside keep their
/// SQLSTATE but lose internals; panics become XX000 with the details in the
/// server log only.
pub fn guarded<T>(body: impl FnOnce() -> Result<T>) -> PgResult<T> {
    PgTryBuilder::new(AssertUnwindSafe(|| body().map_err(ErrorReport::from)))
        .catch_others(|e| Err(client_report(e)))
        .execute()
}
