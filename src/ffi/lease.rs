//! Binding of this node's lease on its virtual actors (src/lease.rs): thread 1 extends and ends
//! it (lua/luact/cluster/lease.lua), every thread asks whether an activation may serve. Process-
//! wide atomics: none of these can panic, so they run without a guard.

/// Extends this node's lease to `until` (monotonic seconds); returns the lease's generation.
#[no_mangle]
pub extern "C" fn luact_lease_extend(until: f64) -> f64 {
    crate::lease::extend(until) as f64
}

/// Ends the lease now; returns the new generation.
#[no_mangle]
pub extern "C" fn luact_lease_lapse() -> f64 {
    crate::lease::lapse() as f64
}

/// The lease's end (monotonic seconds; 0: none).
#[no_mangle]
pub extern "C" fn luact_lease_until() -> f64 {
    crate::lease::until()
}

/// The generation an activation created now belongs to.
#[no_mangle]
pub extern "C" fn luact_lease_current() -> f64 {
    crate::lease::current() as f64
}

/// 1 while an activation of generation `gen` may serve at `now`, else 0.
#[no_mangle]
pub extern "C" fn luact_lease_valid(gen: f64, now: f64) -> i32 {
    crate::lease::valid(gen as u64, now) as i32
}
