//! This node's lease on its virtual actor activations (the cluster's at-most-one-activation
//! rule): the monotonic time until which the Raft leader has confirmed this node as a member in
//! good standing, and a generation that grows each time the lease lapses. An activation records
//! the generation it was created under and serves calls only while that generation is current
//! and the lease has not run out, so an activation that outlived a lapse (a SIGSTOP, a
//! partition) never answers again, whichever thread it lives on. Process-wide atomics: thread 1
//! writes them (lua/luact/cluster/lease.lua), every thread reads them per call to such an actor.
use std::sync::atomic::{AtomicU64, Ordering};

static UNTIL: AtomicU64 = AtomicU64::new(0); // f64 bits; 0.0: no lease
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A lease that ran out by `now` lapses: the generation moves on (once, whichever thread sees
/// it first).
fn settle(now: f64) {
    let bits = UNTIL.load(Ordering::Acquire);
    let cur = f64::from_bits(bits);
    if cur > 0.0 && cur <= now && UNTIL.compare_exchange(bits, 0f64.to_bits(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}

/// Extends the lease to `until` (monotonic seconds; never shortens it). A lease that had run
/// out by `now` lapses first, so activations of the lapsed lease stay superseded. Returns the
/// generation.
pub fn extend(until: f64, now: f64) -> u64 {
    settle(now);
    let mut bits = UNTIL.load(Ordering::Acquire);
    while until > f64::from_bits(bits) {
        match UNTIL.compare_exchange(bits, until.to_bits(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(b) => bits = b,
        }
    }
    GENERATION.load(Ordering::Acquire)
}

/// The generation activations created now belong to (after a lapse by `now` is settled).
pub fn current(now: f64) -> u64 {
    settle(now);
    GENERATION.load(Ordering::Acquire)
}

/// true while an activation of generation `gen` may serve at `now`.
pub fn valid(gen: u64, now: f64) -> bool {
    GENERATION.load(Ordering::Acquire) == gen && f64::from_bits(UNTIL.load(Ordering::Acquire)) > now
}

/// Ends the lease now (the node leaves or was superseded): the generation moves on.
pub fn lapse() -> u64 {
    UNTIL.store(0f64.to_bits(), Ordering::Release);
    GENERATION.fetch_add(1, Ordering::AcqRel) + 1
}

pub fn until() -> f64 {
    f64::from_bits(UNTIL.load(Ordering::Acquire))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_out_into_a_new_generation_and_is_never_shortened() {
        let g0 = lapse();
        assert_eq!(extend(10.0, 5.0), g0); // from no lease: the same generation
        assert!(valid(g0, 9.0));
        assert!(!valid(g0, 10.0)); // ran out
        assert_eq!(extend(12.0, 6.0), g0); // still valid at 6: longer, same generation
        assert_eq!(extend(11.0, 7.0), g0); // never shortened
        assert_eq!(until(), 12.0);
        let g1 = extend(20.0, 13.0); // it ran out at 12 < 13: a new generation
        assert!(g1 > g0);
        assert!(!valid(g0, 14.0) && valid(g1, 14.0));
        assert_eq!(current(21.0), g1 + 1); // ran out at 20
        assert!(!valid(g1, 15.0));
        let g2 = lapse();
        assert!(g2 > g1 + 1 && !valid(g2, 0.5));
    }
}
