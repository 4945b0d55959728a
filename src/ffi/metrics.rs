//! Binding of the metrics (src/metrics.rs): the blocks of counters Lua bumps with plain stores,
//! the inbox depths and the scrape text; and of the stall watchdog (src/stall.rs), which reports
//! a thread whose loop has stopped turning.
use super::{bytes, guard, guard_value, running};
use crate::metrics;
use crate::status::{Error, Status};
use std::cell::RefCell;

/// The snapshot of the running runtime (no runtime: one thread, empty inbox).
fn snapshot() -> metrics::Snapshot {
    match crate::runtime::current() {
        Some(rt) => metrics::Snapshot { n_core: rt.options.n_core, inbox_depth: rt.inboxes.iter().map(|i| i.len()).collect() },
        None => metrics::Snapshot { n_core: 1, inbox_depth: vec![0] },
    }
}

thread_local! {
    /// The last text `luact_metrics_render` made on this thread (valid until its next call).
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Block `b` of the metrics (0: the cluster's gauges, tid: thread tid's counters), as an array
/// of `metrics::SLOTS` doubles (`luact.metrics.SLOTS`) valid for the life of the process; null
/// when out of range.
/// Only the block's own thread writes to it (thread 1 for block 0).
#[no_mangle]
pub extern "C" fn luact_metrics_block(b: i32) -> *mut f64 {
    guard_value(std::ptr::null_mut(), || if b < 0 { std::ptr::null_mut() } else { metrics::block_ptr(b as usize) })
}

/// Entries waiting in thread tid's inbox now (0 when there is no such thread).
#[no_mangle]
pub extern "C" fn luact_metrics_inbox_depth(tid: i32) -> i32 {
    guard_value(0, || {
        let s = snapshot();
        (tid as usize).checked_sub(1).and_then(|i| s.inbox_depth.get(i)).map_or(0, |&d| d.min(i32::MAX as usize) as i32)
    })
}

/// Renders the metrics as OpenMetrics text; `*out` points to it until this thread's next call.
/// Returns its length, or a negative status.
///
/// # Safety
/// `out` points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn luact_metrics_render(out: *mut *const u8) -> i64 {
    guard(|| {
        if out.is_null() {
            return Err(Error::new(Status::BadArgument, "null output pointer"));
        }
        let text = metrics::render(snapshot());
        let len = text.len().min(i32::MAX as usize) as i32;
        TEXT.with(|t| {
            *t.borrow_mut() = text;
            // SAFETY: `out` is writable (checked non-null above, the caller's promise); the
            // string lives in this thread's TEXT until the next call here.
            unsafe { *out = t.borrow().as_ptr() };
        });
        Ok(len)
    }) as i64
}

/// Sets the activations per node (lines "addr\tcount"); thread 1 calls it once a second.
///
/// # Safety
/// `text` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_metrics_set_activations(text: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise (a Lua string kept alive for the call).
        let t = std::str::from_utf8(unsafe { bytes(text, len) }).map_err(|_| Error::new(Status::BadArgument, "not UTF-8"))?;
        metrics::set_activations(t);
        Ok(0)
    })
}

/// Marks the pair (actor, method) for a duration histogram (src/metrics_methods.rs) and
/// returns its index; `BadArgument` (with the reason in `luact_last_error`) when the name is
/// empty or too long, or when the process has as many pairs as it keeps.
///
/// # Safety
/// `actor` and `method` point to `alen` and `mlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_metrics_method(actor: *const u8, alen: usize, method: *const u8, mlen: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise (Lua strings kept alive for the call).
        let (a, m) = unsafe { (bytes(actor, alen), bytes(method, mlen)) };
        let (a, m) = (String::from_utf8_lossy(a), String::from_utf8_lossy(m));
        match crate::metrics_methods::mark(&a, &m) {
            Ok(i) => Ok(i as i32),
            Err(crate::metrics_methods::MarkError::Full) => Err(Error::new(
                Status::BadArgument,
                format!("at most {} (actor, method) pairs are timed per process", crate::metrics_methods::MAX_PAIRS),
            )),
            Err(crate::metrics_methods::MarkError::BadName) => Err(Error::new(
                Status::BadArgument,
                format!("a method name of 1 to {0} bytes and an actor name of at most {0} bytes expected", crate::metrics_methods::MAX_NAME),
            )),
        }
    })
}

/// Thread tid's store of method histograms (`MAX_PAIRS * STRIDE` doubles, valid for the life of
/// the process; only thread tid writes it); created when `create` is 1, else null until then.
#[no_mangle]
pub extern "C" fn luact_metrics_methods_block(tid: i32, create: i32) -> *mut f64 {
    guard_value(std::ptr::null_mut(), || {
        if tid < 1 {
            return std::ptr::null_mut();
        }
        crate::metrics_methods::store_ptr(tid as usize, create == 1)
    })
}

/// The marked pairs as lines "actor\tmethod" in index order; `*out` points to the text until
/// this thread's next call of this function or of `luact_metrics_render`. Returns its length.
///
/// # Safety
/// `out` points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn luact_metrics_method_names(out: *mut *const u8) -> i64 {
    guard(|| {
        if out.is_null() {
            return Err(Error::new(Status::BadArgument, "null output pointer"));
        }
        let text = crate::metrics_methods::names();
        let len = text.len().min(i32::MAX as usize) as i32;
        TEXT.with(|t| {
            *t.borrow_mut() = text;
            // SAFETY: `out` is writable (checked non-null above); the text lives in TEXT until
            // the next call here.
            unsafe { *out = t.borrow().as_ptr() };
        });
        Ok(len)
    }) as i64
}

/// Starts the stall watchdog of the running runtime: a thread whose loop has not turned for
/// `warn` seconds while not waiting is reported (see src/stall.rs). Once per run (thread 1).
#[no_mangle]
pub extern "C" fn luact_stall_watch(warn: f64) -> i32 {
    guard(|| {
        if !(warn > 0.0) || !warn.is_finite() {
            return Err(Error::new(Status::BadArgument, "stall_warn must be a positive number of seconds"));
        }
        let rt = running()?;
        let (r1, r2) = (rt.clone(), rt.clone());
        crate::stall::watch(
            rt.options.n_core,
            warn,
            move || r1.is_stopping(),
            move |tid| r2.waiting[tid - 1].0.load(std::sync::atomic::Ordering::SeqCst) == 1,
        )
        .map_err(|e| Error::new(Status::Os, format!("cannot start the stall watchdog: {e}")))?;
        Ok(0)
    })
}

/// When thread tid's current stall began (monotonic seconds; 0: none known).
#[no_mangle]
pub extern "C" fn luact_stall_since(tid: i32) -> f64 {
    guard_value(0.0, || if tid < 0 { 0.0 } else { crate::stall::since(tid as usize) })
}
