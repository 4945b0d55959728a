//! This node's lease on its virtual actor activations (the cluster's at-most-one-activation
//! rule): the monotonic time until which the Raft leader has confirmed this node as a member in
//! good standing, and a generation. An activation records the generation it was created under
//! and serves calls only while that generation is current and the lease has not run out.
//!
//! Two ways a lease ends, with different outcomes:
//! - it *runs out* (no confirmed renewal for a while: the leader was unreachable, a majority was
//!   down, this process was stopped): its activations stop serving, and serve again once a
//!   renewal arrives. That is safe because the leader renews only a process that is not
//!   condemned, and it places a process's activations elsewhere only after condemning it: a
//!   renewal proves that nothing of this process was re-placed meanwhile.
//! - it is *ended* (`lapse`: this process was condemned, leaves, or stops): the generation moves
//!   on and every activation created under the old one never answers again, whichever thread it
//!   lives on.
//!
//! Process-wide atomics: thread 1 writes them (lua/luact/cluster/lease.lua), every thread reads
//! them per call to such an actor.
use std::sync::atomic::{AtomicU64, Ordering};

static UNTIL: AtomicU64 = AtomicU64::new(0); // f64 bits; 0.0: no lease
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Extends the lease to `until` (monotonic seconds; never shortens it). Returns the generation.
pub fn extend(until: f64) -> u64 {
    let mut bits = UNTIL.load(Ordering::Acquire);
    count_renewal(f64::from_bits(bits), until);
    while until > f64::from_bits(bits) {
        match UNTIL.compare_exchange(bits, until.to_bits(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(b) => bits = b,
        }
    }
    GENERATION.load(Ordering::Acquire)
}

/// The generation activations created now belong to.
pub fn current() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// true while an activation of generation `gen` may serve at `now`.
pub fn valid(gen: u64, now: f64) -> bool {
    GENERATION.load(Ordering::Acquire) == gen && f64::from_bits(UNTIL.load(Ordering::Acquire)) > now
}

/// Ends the lease now (this process was condemned, leaves or stops): the generation moves on,
/// so the activations created under the old one never serve again.
/// The metrics of the lease (cluster block, thread 1 the only writer): a renewal, and whether
/// the lease had run out before it.
fn count_renewal(before: f64, until: f64) {
    use crate::metrics as m;
    if until > before {
        m::add(0, m::C_LEASE_RENEWALS, 1.0);
        if before > 0.0 && before <= crate::clock::monotonic() {
            m::add(0, m::C_LEASE_LAPSES, 1.0);
        }
    }
}

pub fn lapse() -> u64 {
    crate::metrics::add(0, crate::metrics::C_LEASE_ENDS, 1.0);
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
    fn a_lease_that_ran_out_serves_again_when_renewed_and_an_ended_one_never() {
        let g0 = lapse();
        assert_eq!(extend(10.0), g0); // from no lease: the same generation
        assert!(valid(g0, 9.0));
        assert!(!valid(g0, 10.0)); // ran out: no serving...
        assert_eq!(extend(12.0), g0);
        assert!(valid(g0, 11.0)); // ...until renewed, under the same generation
        assert_eq!(extend(11.0), g0); // never shortened
        assert_eq!(until(), 12.0);
        assert_eq!(current(), g0);
        let g1 = lapse(); // ended: the old generation never serves again
        assert!(g1 > g0 && !valid(g1, 0.5));
        assert_eq!(extend(20.0), g1);
        assert!(valid(g1, 13.0) && !valid(g0, 13.0));
    }
}
