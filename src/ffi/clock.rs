//! Binding of the clocks (src/clock.rs): the monotonic and wall clocks every thread reads, and
//! the blocking sleep behind `luact.util.sleep` (it stops the whole VM).

/// Seconds since an arbitrary fixed point; never goes backwards.
#[no_mangle]
pub extern "C" fn luact_clock_monotonic() -> f64 {
    crate::clock::monotonic()
}

/// Seconds since the Unix epoch.
#[no_mangle]
pub extern "C" fn luact_clock_wall() -> f64 {
    crate::clock::wall()
}

/// Blocks the calling OS thread for `seconds` (nothing else of its VM runs meanwhile).
#[no_mangle]
pub extern "C" fn luact_util_sleep(seconds: f64) {
    super::guard_value((), || crate::clock::blocking_sleep(seconds))
}
