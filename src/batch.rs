//! Batches of events given as one jsonb array (log_ai_usage_batch,
//! track_usage_events). The array is checked as a whole (kind, count, size,
//! depth) and each event's values are read with the SQLSTATE the same value
//! would raise as a function argument, named `events[i].key` (low in the
//! tree: errors, limits and jsonb only).

use std::collections::BTreeMap;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{FromDatum, PgSqlErrorCode, PgTryBuilder, Uuid};
use serde_json::value::RawValue;

use crate::errors::{Result, UsageError};
use crate::jsonb::Jsonb;
use crate::limits;

/// A batch argument as JSON text (PostgreSQL's own output of the jsonb,
/// so each event's `metadata` is exactly the text of its stored value).
pub struct Batch {
    text: String,
}

impl Batch {
    /// Checks `p_events`: a JSON array of at most MAX_BATCH_EVENTS elements
    /// within the batch's size and depth (22004, 22023, 54000).
    pub fn parse(events: Option<Jsonb>) -> Result<Batch> {
        let events = events.ok_or(UsageError::NullValue("p_events"))?;
        let Some(n) = events.array_len() else {
            return Err(UsageError::invalid(
                "p_events",
                "must be a JSON array of event objects",
            ));
        };
        if n > limits::MAX_BATCH_EVENTS {
            return Err(UsageError::TooLarge {
                name: "p_events",
                detail: format!(
                    "{n} events; at most {} per batch (split it)",
                    limits::MAX_BATCH_EVENTS
                ),
            });
        }
        let size = events.size();
        if size > limits::EVENT_BATCH.max_bytes {
            return Err(UsageError::TooLarge {
                name: "p_events",
                detail: format!(
                    "{size} bytes as jsonb; at most {} per batch (split it)",
                    limits::EVENT_BATCH.max_bytes
                ),
            });
        }
        events.check("p_events", limits::EVENT_BATCH)?;
        Ok(Batch {
            text: events.to_text(),
        })
    }

    /// The events, in input order.
    pub fn events(&self) -> Result<Vec<&RawValue>> {
        serde_json::from_str(&self.text)
            .map_err(|e| UsageError::Internal(format!("batch text: {e}")))
    }
}

/// One event of a batch: its index and its keys' raw JSON values.
pub struct Event<'a> {
    pub index: usize,
    fields: BTreeMap<String, &'a RawValue>,
}

/// A value that does not parse as its type (22P02), or any error a type's
/// input function raised.
fn bad(index: usize, key: &str, code: PgSqlErrorCode, detail: String) -> UsageError {
    UsageError::InEvent {
        index,
        field: format!(".{key}"),
        code,
        detail,
    }
}

/// Calls a type's input function on `text`; an error it raises becomes
/// the value's error (its SQLSTATE and message).
fn pg_input(
    input: unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum,
    text: &str,
) -> std::result::Result<pg_sys::Datum, (PgSqlErrorCode, String)> {
    let c = std::ffi::CString::new(text).map_err(|_| {
        (
            PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER,
            "contains a NUL character".to_string(),
        )
    })?;
    PgTryBuilder::new(|| {
        // SAFETY: input functions take (cstring, typioparam, typmod) and
        // return a datum in the current memory context.
        let d = unsafe {
            pgrx::direct_function_call_as_datum(
                input,
                &[
                    Some(pg_sys::Datum::from(c.as_ptr())),
                    Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                    Some(pg_sys::Datum::from(-1i32)),
                ],
            )
        };
        d.ok_or((
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "must not be null".to_string(),
        ))
    })
    .catch_others(|e| match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
            Err((r.sql_error_code(), r.message().to_string()))
        }
        other => other.rethrow(),
    })
    .execute()
}

impl<'a> Event<'a> {
    /// Reads element `index`: a JSON object whose keys are all in `allowed`
    /// (the function's parameter names without `p_`).
    pub fn parse(index: usize, raw: &'a RawValue, allowed: &[&str]) -> Result<Event<'a>> {
        if !raw.get().starts_with('{') {
            return Err(UsageError::InEvent {
                index,
                field: String::new(),
                code: PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                detail: "must be a JSON object".into(),
            });
        }
        let fields: BTreeMap<String, &'a RawValue> = serde_json::from_str(raw.get())
            .map_err(|e| UsageError::Internal(format!("batch event: {e}")))?;
        if let Some(k) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(bad(
                index,
                k,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "unknown key (an event's keys are the parameter names without p_: {})",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Event { index, fields })
    }

    /// Whether the event has `key` (even as null): a missing key takes the
    /// parameter's default, null is NULL.
    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The raw value of `key`; JSON null and a missing key are None.
    fn raw(&self, key: &str) -> Option<&'a str> {
        self.fields
            .get(key)
            .map(|r| r.get())
            .filter(|r| *r != "null")
    }

    /// A scalar's text: a string's content, or a number's or boolean's JSON
    /// text (as PostgREST passes them to SQL); objects and arrays are 22023.
    fn scalar(&self, key: &str, type_name: &str) -> Result<Option<String>> {
        let Some(raw) = self.raw(key) else {
            return Ok(None);
        };
        match raw.as_bytes()[0] {
            b'"' => serde_json::from_str::<String>(raw)
                .map(Some)
                .map_err(|e| UsageError::Internal(format!("batch string: {e}"))),
            b'{' | b'[' => Err(bad(
                self.index,
                key,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("must be a {type_name}, not a JSON object or array"),
            )),
            _ => Ok(Some(raw.to_string())),
        }
    }

    pub fn text(&self, key: &str) -> Result<Option<String>> {
        self.scalar(key, "string")
    }

    fn integer<T: std::str::FromStr>(&self, key: &str, sql_type: &str) -> Result<Option<T>> {
        let Some(s) = self.scalar(key, sql_type)? else {
            return Ok(None);
        };
        let t = s.trim();
        if let Ok(v) = t.parse::<T>() {
            return Ok(Some(v));
        }
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                self.index,
                key,
                PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("value \"{s}\" is out of range for type {sql_type}"),
            ));
        }
        Err(bad(
            self.index,
            key,
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {sql_type}: \"{s}\""),
        ))
    }

    pub fn bigint(&self, key: &str) -> Result<Option<i64>> {
        self.integer(key, "bigint")
    }

    pub fn int(&self, key: &str) -> Result<Option<i32>> {
        self.integer(key, "integer")
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let Some(s) = self.scalar(key, "boolean")? else {
            return Ok(None);
        };
        // PostgreSQL's boolean input (parse_bool): any unique prefix of
        // true/false/yes/no, on/off, 1/0, case-insensitive.
        let t = s.trim().to_ascii_lowercase();
        let is_prefix = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
        if is_prefix("true", 1) || is_prefix("yes", 1) || t == "on" || t == "1" {
            return Ok(Some(true));
        }
        if is_prefix("false", 1) || is_prefix("no", 1) || is_prefix("off", 2) || t == "0" {
            return Ok(Some(false));
        }
        Err(bad(
            self.index,
            key,
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type boolean: \"{s}\""),
        ))
    }

    fn typed<T: FromDatum>(
        &self,
        key: &str,
        sql_type: &str,
        input: unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum,
    ) -> Result<Option<T>> {
        let Some(s) = self.scalar(key, sql_type)? else {
            return Ok(None);
        };
        let d = pg_input(input, &s).map_err(|(code, m)| bad(self.index, key, code, m))?;
        // SAFETY: the datum was just made by the type's input function.
        let v = unsafe { T::from_datum(d, false) };
        v.map(Some)
            .ok_or_else(|| UsageError::Internal(format!("{sql_type} input")))
    }

    /// A uuid; the canonical form is read here, any other form (braces, no
    /// hyphens, upper case, errors) by uuid's input function.
    pub fn uuid(&self, key: &str) -> Result<Option<Uuid>> {
        if let Some(raw) = self.raw(key) {
            if let Some(u) = canonical_uuid(raw) {
                return Ok(Some(u));
            }
        }
        self.typed(key, "uuid", pg_sys::uuid_in)
    }

    /// A time, read as `timestamptz` reads text (the session's TimeZone for
    /// a time without offset, as for an argument).
    pub fn timestamptz(&self, key: &str) -> Result<Option<TimestampWithTimeZone>> {
        self.typed(key, "timestamp with time zone", pg_sys::timestamptz_in)
    }

    /// A JSON value stored as jsonb (its kind and limits are checked by the
    /// caller, as for an argument).
    pub fn jsonb(&self, key: &str) -> Result<Option<Jsonb>> {
        self.raw(key).map(Jsonb::from_text).transpose()
    }
}

/// `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"` (a JSON string, lower case).
fn canonical_uuid(raw: &str) -> Option<Uuid> {
    let b = raw.as_bytes();
    if b.len() != 38 || b[0] != b'"' || b[37] != b'"' {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut hi: Option<u8> = None;
    for (i, c) in b[1..37].iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if *c != b'-' {
                return None;
            }
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                out[n] = (h << 4) | v;
                n += 1;
            }
        }
    }
    (n == 16).then(|| Uuid::from_bytes(out))
}

/// Builds the JSON array of results (ids) in input order.
pub fn id_array(ids: &[Uuid]) -> Result<Jsonb> {
    let mut s = String::with_capacity(ids.len() * 39 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(&id.to_string());
        s.push('"');
    }
    s.push(']');
    Jsonb::from_text(&s)
}

/// A new random (version 4) UUID from the server's strong random source,
/// as gen_random_uuid() makes them: a batch numbers its rows before it
/// writes them.
pub fn new_uuid() -> Result<Uuid> {
    let mut b = [0u8; 16];
    // SAFETY: fills the 16-byte buffer.
    let ok = unsafe { pg_sys::pg_strong_random(b.as_mut_ptr().cast(), b.len()) };
    if !ok {
        return Err(UsageError::Internal("pg_strong_random failed".into()));
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(Uuid::from_bytes(b))
}
