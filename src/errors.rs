//! One error type for the extension, each variant with an explicit SQLSTATE.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

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
    /// 22003: a number outside its documented range.
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
    /// XX000: a bug; never expected.
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
}

impl From<pgrx::spi::Error> for UsageError {
    fn from(e: pgrx::spi::Error) -> Self {
        UsageError::Internal(format!("SPI: {e}"))
    }
}

impl From<UsageError> for ErrorReport {
    #[track_caller]
    fn from(e: UsageError) -> Self {
        ErrorReport::new(e.sqlstate(), e.to_string(), "usage_tracker")
    }
}

/// Result type of every `#[pg_extern]`: errors reach the client with their SQLSTATE.
pub type PgResult<T> = std::result::Result<T, ErrorReport>;

/// Converts a domain result at the SQL boundary.
pub fn at_boundary<T>(r: Result<T>) -> PgResult<T> {
    r.map_err(ErrorReport::from)
}
