//! `Jsonb`: a jsonb value kept as PostgreSQL's own binary datum.
//!
//! pgrx's `JsonB` turns every jsonb into text and parses it with serde, whose
//! recursion limit (128) made deeply nested documents fail with XX000 on the
//! way in and, once stored, on every read that returned them. This type
//! passes the datum through untouched: arguments are checked (root kind,
//! size, depth) by walking the binary containers, stored as they came, and
//! reads hand back what SPI produced without parsing it. Only values the
//! extension must look into are parsed, after their depth was checked.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};

use crate::errors::{Result, UsageError};

/// A jsonb datum (detoasted on first look, in the current memory context).
#[derive(Clone, Copy, Debug)]
pub struct Jsonb(pg_sys::Datum);

// JEntry and container header bits (src/include/utils/jsonb.h).
const JB_CMASK: u32 = 0x0FFF_FFFF;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;

/// Limits of one jsonb argument.
#[derive(Clone, Copy, Debug)]
pub struct JsonLimits {
    /// Largest stored size in bytes (jsonb's binary form).
    pub max_bytes: usize,
    /// Deepest nesting of objects and arrays (the root is 1).
    pub max_depth: usize,
}

impl Jsonb {
    /// The value parsed from JSON text (used for values the extension builds).
    pub fn from_text(text: &str) -> Result<Jsonb> {
        let c = std::ffi::CString::new(text)
            .map_err(|_| UsageError::Internal("JSON text with a NUL byte".into()))?;
        // SAFETY: jsonb_in takes a NUL-terminated string and returns a new datum.
        let d = unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(c.as_ptr().into())])
        };
        d.map(Jsonb)
            .ok_or_else(|| UsageError::Internal("jsonb_in returned NULL".into()))
    }

    /// The detoasted varlena.
    fn varlena(&self) -> *mut pg_sys::varlena {
        // SAFETY: the datum is a jsonb varlena (a function argument or an SPI
        // value copied into a live context); detoasting returns it or a copy.
        unsafe { pg_sys::pg_detoast_datum(self.0.cast_mut_ptr()) }
    }

    /// Size of the stored (binary) value in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: a detoasted varlena has a 4-byte header.
        unsafe { pgrx::varsize_any_exhdr(self.varlena()) }
    }

    fn root(&self) -> *const u32 {
        // SAFETY: the data of a jsonb varlena starts with its root container.
        unsafe { pgrx::vardata_any(self.varlena()) as *const u32 }
    }

    pub fn is_object(&self) -> bool {
        // SAFETY: reads the root container's header.
        let header = unsafe { *self.root() };
        header & pg_sys::JB_FOBJECT != 0
    }

    /// The number of elements when the value is a JSON array (not a scalar).
    pub fn array_len(&self) -> Option<usize> {
        // SAFETY: reads the root container's header.
        let header = unsafe { *self.root() };
        (header & pg_sys::JB_FARRAY != 0 && header & pg_sys::JB_FSCALAR == 0)
            .then_some((header & JB_CMASK) as usize)
    }

    /// Nesting depth of objects and arrays (a scalar is 0, `{}` 1), counted
    /// up to `stop` (deeper values report `stop`).
    pub fn depth(&self, stop: usize) -> usize {
        // SAFETY: walks the binary containers of a valid jsonb value, each
        // child located as jsonb_util.c does (getJsonbOffset, INTALIGN).
        unsafe { container_depth(self.root(), stop) }
    }

    /// Checks the argument `name` against its limits (22023).
    pub fn check(&self, name: &'static str, limits: JsonLimits) -> Result<()> {
        let size = self.size();
        if size > limits.max_bytes {
            return Err(UsageError::invalid(
                name,
                format!("is {size} bytes as jsonb; at most {}", limits.max_bytes),
            ));
        }
        if self.depth(limits.max_depth + 1) > limits.max_depth {
            return Err(UsageError::invalid(
                name,
                format!("is nested deeper than {} levels", limits.max_depth),
            ));
        }
        Ok(())
    }

    /// Checks an object argument: a JSON object within its limits.
    pub fn check_object(&self, name: &'static str, limits: JsonLimits) -> Result<()> {
        if !self.is_object() {
            return Err(UsageError::invalid(name, "must be a JSON object"));
        }
        self.check(name, limits)
    }

    /// The value as JSON text.
    pub fn to_text(self) -> String {
        // SAFETY: jsonb_out returns a palloc'd C string for a valid jsonb.
        unsafe {
            let cstr = pgrx::direct_function_call::<&core::ffi::CStr>(
                pg_sys::jsonb_out,
                &[Some(pg_sys::Datum::from(self.varlena()))],
            );
            cstr.map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    }

    /// The value parsed with serde (callers check the depth first).
    pub fn to_value(self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.to_text())
            .map_err(|e| UsageError::Internal(format!("jsonb to serde: {e}")))
    }

    /// The binary value's bytes (detoasted): equal documents have equal bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the slice covers the detoasted value's data, valid for the
        // datum's lifetime (the function call or the context it was copied to).
        unsafe {
            let v = self.varlena();
            std::slice::from_raw_parts(
                pgrx::vardata_any(v) as *const u8,
                pgrx::varsize_any_exhdr(v),
            )
        }
    }
}

unsafe fn container_depth(container: *const u32, stop: usize) -> usize {
    if stop == 0 {
        return 0;
    }
    let header = unsafe { *container };
    let count = (header & JB_CMASK) as usize;
    let children = unsafe { container.add(1) };
    let n = if header & pg_sys::JB_FOBJECT != 0 {
        count * 2
    } else {
        count
    };
    // Values of an object follow its keys: children [count, 2*count).
    let first_value = if header & pg_sys::JB_FOBJECT != 0 {
        count
    } else {
        0
    };
    let data = unsafe { (children as *const u8).add(n * 4) };
    let mut deepest = 0;
    let mut offset: usize = 0;
    for i in 0..n {
        let je = unsafe { *children.add(i) };
        // getJsonbOffset: the sum of lengths since the last stored offset.
        let start = offset;
        if je & JENTRY_HAS_OFF != 0 {
            offset = (je & JENTRY_OFFLENMASK) as usize;
        } else {
            offset += (je & JENTRY_OFFLENMASK) as usize;
        }
        if i >= first_value && je & JENTRY_TYPEMASK == JENTRY_ISCONTAINER {
            let child = unsafe { data.add((start + 3) & !3) } as *const u32;
            let d = unsafe { container_depth(child, stop - 1) };
            deepest = deepest.max(d);
            if deepest + 1 >= stop {
                break;
            }
        }
    }
    // A scalar root is a one-element array flagged JB_FSCALAR: depth 0.
    if header & pg_sys::JB_FSCALAR != 0 {
        deepest
    } else {
        deepest + 1
    }
}

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            None
        } else {
            Some(Jsonb(datum))
        }
    }

    unsafe fn from_datum_in_memory_context(
        mut memory_context: PgMemoryContexts,
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // Values read through SPI must outlive SPI's memory: copy them out.
        memory_context.switch_to(|_| unsafe {
            Some(Jsonb(pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                datum.cast_mut_ptr(),
            ))))
        })
    }
}

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Jsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

unsafe impl SqlTranslatable for Jsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Jsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: std::result::Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: std::result::Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

/// One jsonb value from a read-only query through a kept plan, without
/// parsing it (NULL or no row: None).
pub fn read(sql: &'static str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Result<Option<Jsonb>> {
    crate::spi_util::read_one::<Jsonb>(sql, args)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn j(text: &str) -> Jsonb {
        Jsonb::from_text(text).unwrap()
    }

    #[pg_test]
    fn depth_and_kind() {
        assert_eq!(j("1").depth(100), 0);
        assert_eq!(j("\"x\"").depth(100), 0);
        assert_eq!(j("{}").depth(100), 1);
        assert_eq!(j("[]").depth(100), 1);
        assert_eq!(j(r#"{"a": 1, "b": [1, {"c": [2]}]}"#).depth(100), 4);
        assert_eq!(j(r#"[[[]], {"x": {"y": {}}}]"#).depth(100), 4);
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert_eq!(j(&deep).depth(100), 100);
        assert_eq!(j(&deep).depth(1000), 300);
        assert!(j("{}").is_object());
        assert!(!j("[]").is_object());
        assert!(!j("3").is_object());
    }

    #[pg_test]
    fn depth_with_long_values_between_containers() {
        // Offsets are stored every 32 entries: cross that stride.
        let mut parts = Vec::new();
        for i in 0..70 {
            parts.push(format!("\"k{i:03}\": \"{}\"", "v".repeat(i)));
        }
        parts.push(r#""zz": {"a": {"b": [1, 2, {"c": 3}]}}"#.to_string());
        let doc = format!("{{{}}}", parts.join(", "));
        assert_eq!(j(&doc).depth(100), 5);
    }
}
