//! The monotonic and wall clocks every thread reads (seconds as f64).

fn read(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Seconds since an arbitrary fixed point; never goes backwards.
pub fn monotonic() -> f64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Seconds since the Unix epoch.
pub fn wall() -> f64 {
    read(libc::CLOCK_REALTIME)
}

/// Blocks the calling OS thread for `seconds` (the whole VM stops: it is `util.sleep`).
pub fn blocking_sleep(seconds: f64) {
    if !(seconds > 0.0) {
        return;
    }
    let d = std::time::Duration::from_secs_f64(seconds.min(1e9));
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_advances() {
        let a = super::monotonic();
        super::blocking_sleep(0.002);
        assert!(super::monotonic() - a >= 0.002);
    }
}
