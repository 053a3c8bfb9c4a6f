//! Argument checks shared by every subsystem (low in the tree: it reaches
//! no other module of the extension but errors, limits and jsonb).

use crate::errors::{Result, UsageError};
use crate::jsonb::Jsonb;
use crate::limits;

/// Text no longer than `max` characters (22001).
pub fn check_len(name: &'static str, v: &Option<String>, max: usize) -> Result<()> {
    match v {
        Some(s) if s.chars().count() > max => Err(UsageError::TooLong { name, max }),
        _ => Ok(()),
    }
}

/// A required argument.
pub fn required<T>(name: &'static str, v: Option<T>) -> Result<T> {
    v.ok_or(UsageError::NullValue(name))
}

/// A token count: 0..=MAX_TOKENS, NULL as 0 (22003).
pub fn tokens(name: &'static str, v: Option<i64>) -> Result<i64> {
    let v = v.unwrap_or(0);
    if !(0..=limits::MAX_TOKENS).contains(&v) {
        return Err(UsageError::out_of_range(
            name,
            format!("{v} is not between 0 and {}", limits::MAX_TOKENS),
        ));
    }
    Ok(v)
}

/// A quantity: required, 0..=MAX_QUANTITY (22004, 22003).
pub fn quantity(name: &'static str, q: Option<i64>) -> Result<i64> {
    let q = q.ok_or(UsageError::NullValue(name))?;
    if !(0..=limits::MAX_QUANTITY).contains(&q) {
        return Err(UsageError::out_of_range(
            name,
            format!("{q} is not between 0 and {}", limits::MAX_QUANTITY),
        ));
    }
    Ok(q)
}

/// An integer in `lo..=hi`, or 22003.
pub fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T> {
    if v < lo || v > hi {
        return Err(UsageError::out_of_range(
            name,
            format!("{v} is not between {lo} and {hi}"),
        ));
    }
    Ok(v)
}

/// 1 to MAX_IDEMPOTENCY_KEY printable ASCII characters, no spaces.
pub fn valid_idempotency_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= limits::MAX_IDEMPOTENCY_KEY
        && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

pub fn idempotency_key(name: &'static str, k: &Option<String>) -> Result<()> {
    match k {
        Some(k) if !valid_idempotency_key(k) => Err(UsageError::invalid(
            name,
            format!(
                "must be 1 to {} printable ASCII characters without spaces",
                limits::MAX_IDEMPOTENCY_KEY
            ),
        )),
        _ => Ok(()),
    }
}

/// A metadata argument: NULL, or a JSON object within METADATA's limits.
pub fn metadata(name: &'static str, m: &Option<Jsonb>) -> Result<()> {
    match m {
        Some(m) => m.check_object(name, limits::METADATA),
        None => Ok(()),
    }
}

/// Lower case letters, digits and _, starting with a letter, at most 63
/// characters (request types, event types, plans, limits).
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= limits::MAX_NAME
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// A required name (see [`valid_name`]).
pub fn name(param: &'static str, v: &Option<String>) -> Result<String> {
    let v = v.clone().ok_or(UsageError::NullValue(param))?;
    if v.is_empty() {
        return Err(UsageError::invalid(param, "must not be empty"));
    }
    if v.len() > limits::MAX_NAME {
        return Err(UsageError::TooLong {
            name: param,
            max: limits::MAX_NAME,
        });
    }
    if !valid_name(&v) {
        return Err(UsageError::invalid(
            param,
            "use lower case letters, digits and _, starting with a letter",
        ));
    }
    Ok(v)
}

/// Lower case letters, digits, '.', '_' or '-', at most 64.
pub fn valid_provider(p: &str) -> bool {
    let b = p.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

pub fn provider(name: &'static str, p: &Option<String>) -> Result<()> {
    match p {
        Some(p) if !valid_provider(p) => Err(UsageError::invalid(
            name,
            "use lower case letters, digits, '.', '_' or '-' (at most 64)",
        )),
        _ => Ok(()),
    }
}

/// `a + b` for totals, or 22003 naming the total.
pub fn add(name: &'static str, a: i64, b: i64) -> Result<i64> {
    a.checked_add(b).ok_or_else(|| UsageError::overflow(name))
}

/// Parses a numeric total read as text (sums are numeric in SQL) into an
/// i128, which holds any sum of bigints the extension can store; anything
/// else is 22003.
pub fn total_i128(name: &'static str, text: Option<String>) -> Result<i128> {
    match text {
        None => Ok(0),
        Some(t) => t.parse::<i128>().map_err(|_| UsageError::overflow(name)),
    }
}

/// A total that must fit a bigint result, or 22003.
pub fn to_bigint(name: &'static str, v: i128) -> Result<i64> {
    i64::try_from(v).map_err(|_| UsageError::overflow(name))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn idempotency_key_rules() {
        assert!(valid_idempotency_key("req_01H8X-abc:1"));
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(201)] {
            assert!(!valid_idempotency_key(bad), "{bad:?}");
        }
    }

    #[pg_test]
    fn totals_never_wrap() {
        assert!(add("t", i64::MAX, 1).is_err());
        assert_eq!(add("t", 2, 3).unwrap(), 5);
        assert_eq!(
            total_i128("t", Some("18446744073709551614".into())).unwrap(),
            18446744073709551614
        );
        assert!(to_bigint("t", 18446744073709551614).is_err());
        assert!(total_i128("t", Some("1e400".into())).is_err());
    }
}
