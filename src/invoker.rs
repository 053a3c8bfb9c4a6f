//! C invoker wrappers for the ingest functions.
//!
//! The public schema holds SECURITY INVOKER wrappers that call the SECURITY
//! DEFINER bodies in usage_tracker_private. A `LANGUAGE sql` wrapper is
//! inlined by the planner, which re-parses its body on every plan: with
//! prepared statements that happens once, but callers on the simple query
//! protocol (psql, drivers in their default mode, poolers in transaction
//! mode) plan every call, and for log_ai_usage's 23 parameters that cost
//! about a third of the call. These wrappers are C functions instead: they
//! find the body of the same name and argument types in
//! usage_tracker_private (once per backend), check that the caller may
//! execute it (as calling it from SQL would), and call it through fmgr
//! (which switches to the definer and applies its settings), passing the
//! arguments through untouched.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::prelude::*;

thread_local! {
    /// Public wrapper oid -> definer body oid. Oids are not reused within a
    /// backend's life in practice; after DROP and CREATE EXTENSION the
    /// wrappers have new oids and are looked up again.
    static TARGETS: RefCell<HashMap<u32, pg_sys::Oid>> = RefCell::new(HashMap::new());
}

fn target_of(wrapper: pg_sys::Oid) -> pg_sys::Oid {
    if let Some(t) = TARGETS.with(|m| m.borrow().get(&wrapper.to_u32()).copied()) {
        return t;
    }
    let target: Option<pg_sys::Oid> = Spi::get_one_with_args(
        "SELECT b.oid FROM pg_catalog.pg_proc w JOIN pg_catalog.pg_proc b \
             ON b.proname = w.proname AND b.proargtypes = w.proargtypes \
          WHERE w.oid = $1 AND b.pronamespace = 'usage_tracker_private'::pg_catalog.regnamespace",
        &[wrapper.into()],
    )
    .unwrap_or(None);
    let Some(target) = target else {
        pgrx::error!(
            "usage_tracker: the body of this wrapper is missing (reinstall the extension)"
        );
    };
    TARGETS.with(|m| m.borrow_mut().insert(wrapper.to_u32(), target));
    target
}

// PostgreSQL 16 removed the per-kind ACL checks (pg_proc_aclcheck, ...) in
// favour of object_aclcheck(class, oid, ...): the one API difference between
// the supported majors that this crate touches.
#[cfg(feature = "pg15")]
unsafe fn may_execute(f: pg_sys::Oid) -> bool {
    pg_sys::pg_proc_aclcheck(
        f,
        pg_sys::GetUserId(),
        pg_sys::ACL_EXECUTE as pg_sys::AclMode,
    ) == pg_sys::AclResult::ACLCHECK_OK
}

// 16, 17, 18: the generic check, with pg_proc's class id.
#[cfg(not(feature = "pg15"))]
unsafe fn may_execute(f: pg_sys::Oid) -> bool {
    pg_sys::object_aclcheck(
        pg_sys::ProcedureRelationId,
        f,
        pg_sys::GetUserId(),
        pg_sys::ACL_EXECUTE as pg_sys::AclMode,
    ) == pg_sys::AclResult::ACLCHECK_OK
}

/// Calls the definer body of the wrapper being called with the same
/// arguments; returns its result (and NULL flag).
///
/// # Safety
/// `fcinfo` is the call info of a wrapper declared in SQL with the same
/// argument types as its body.
unsafe fn forward(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let flinfo = (*fcinfo).flinfo;
    // The body's FmgrInfo lives as long as the calling expression (fn_extra).
    let mut body = (*flinfo).fn_extra as *mut pg_sys::FmgrInfo;
    if body.is_null() {
        let target = target_of((*flinfo).fn_oid);
        if !may_execute(target) {
            pgrx::pg_sys::panic::ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "permission denied: the caller may not execute this function's body",
                "usage_tracker",
            )
            .report(PgLogLevel::ERROR);
        }
        body = pg_sys::MemoryContextAllocZero(
            (*flinfo).fn_mcxt,
            std::mem::size_of::<pg_sys::FmgrInfo>(),
        ) as *mut pg_sys::FmgrInfo;
        pg_sys::fmgr_info_cxt(target, body, (*flinfo).fn_mcxt);
        (*flinfo).fn_extra = body.cast();
    }
    let nargs = (*fcinfo).nargs as usize;
    let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
        + nargs * std::mem::size_of::<pg_sys::NullableDatum>();
    let call = pg_sys::palloc0(size) as pg_sys::FunctionCallInfo;
    (*call).flinfo = body;
    (*call).fncollation = (*fcinfo).fncollation;
    (*call).nargs = nargs as i16;
    let from = (*fcinfo).args.as_slice(nargs);
    let to = (*call).args.as_mut_slice(nargs);
    to.copy_from_slice(from);
    let f = (*body)
        .fn_addr
        .unwrap_or_else(|| pgrx::error!("usage_tracker: wrapper body has no entry point"));
    let result = f(call);
    (*fcinfo).isnull = (*call).isnull;
    pg_sys::pfree(call.cast());
    result
}

/// Declares a C wrapper `$name` (SQL: `AS 'MODULE_PATHNAME', '$name'`).
macro_rules! invoker {
    ($name:ident, $finfo:ident) => {
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        #[no_mangle]
        #[pg_guard]
        #[doc(hidden)]
        /// # Safety
        /// Called by PostgreSQL's fmgr as a version-1 C function.
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            forward(fcinfo)
        }
    };
}

invoker!(log_ai_usage_invoker, pg_finfo_log_ai_usage_invoker);
invoker!(
    log_ai_usage_batch_invoker,
    pg_finfo_log_ai_usage_batch_invoker
);
invoker!(
    track_usage_event_invoker,
    pg_finfo_track_usage_event_invoker
);
invoker!(
    track_usage_events_invoker,
    pg_finfo_track_usage_events_invoker
);
