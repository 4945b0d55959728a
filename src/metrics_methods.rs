//! Per-method duration histograms, for the methods a user marks (a body's `__actor_metrics__`):
//! which (actor, method) pairs are timed, one histogram per pair and thread in memory every
//! thread can read, and their metric family (`luact_method_duration_seconds{actor, method}`,
//! summed over the threads).
//!
//! Cardinality is bounded: at most `MAX_PAIRS` pairs per process (first marked, first kept);
//! marking one more is refused, and the actor is not created (the caller says why). Each
//! thread's store is allocated the first time that thread times a method (or a scrape asks),
//! and written only by its own thread (Lua, through an FFI pointer: a plain load and store),
//! as the blocks of src/metrics.rs are. Methods that are not marked cost nothing here.
//!
//! The layout (`STRIDE` doubles per pair: `BOUNDS.len() + 1` buckets, not cumulative, then the
//! sum and the count) is mirrored in lua/luact/metrics.lua (`METHOD_*`): change both together.
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// (actor, method) pairs timed per process.
pub const MAX_PAIRS: usize = 64;
/// Longest actor or method name kept in a label (bytes).
pub const MAX_NAME: usize = 100;
/// Upper bounds of the buckets (seconds), then +Inf: the call latency's, and up to 10 s (a
/// method that waits on other calls can take seconds).
pub const BOUNDS: [f64; 18] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0, 2.5, 5.0, 10.0,
];
pub const SUM: usize = BOUNDS.len() + 1;
pub const COUNT: usize = BOUNDS.len() + 2;
/// Doubles per pair.
pub const STRIDE: usize = 24;
const STORE_LEN: usize = MAX_PAIRS * STRIDE;

/// The pairs marked so far, in index order.
static PAIRS: parking_lot::Mutex<Vec<(String, String)>> = parking_lot::Mutex::new(Vec::new());

/// Threads with a store: as many as the blocks of src/metrics.rs (`BLOCKS`: the cluster's, then
/// one per thread; `luact.start` allows 1024 threads).
const THREADS: usize = 1025;

type Store = Box<[AtomicU64]>;
#[allow(clippy::declare_interior_mutable_const)]
const UNSET: OnceLock<Store> = OnceLock::new();
/// Each thread's store (index tid; 0 unused), allocated on first use.
static STORES: [OnceLock<Store>; THREADS] = [UNSET; THREADS];

#[derive(Debug, PartialEq, Eq)]
pub enum MarkError {
    /// `MAX_PAIRS` pairs are marked already.
    Full,
    /// An empty method name, or a name longer than `MAX_NAME`.
    BadName,
}

/// The index of the pair (actor, method), marking it if it is new.
pub fn mark(actor: &str, method: &str) -> Result<usize, MarkError> {
    if method.is_empty() || method.len() > MAX_NAME || actor.len() > MAX_NAME {
        return Err(MarkError::BadName);
    }
    let mut pairs = PAIRS.lock();
    if let Some(i) = pairs.iter().position(|(a, m)| a == actor && m == method) {
        return Ok(i);
    }
    if pairs.len() >= MAX_PAIRS {
        return Err(MarkError::Full);
    }
    pairs.push((actor.to_string(), method.to_string()));
    Ok(pairs.len() - 1)
}

/// The pairs marked, as lines "actor\tmethod" in index order.
pub fn names() -> String {
    let pairs = PAIRS.lock();
    let mut s = String::new();
    for (a, m) in pairs.iter() {
        s.push_str(a);
        s.push('\t');
        s.push_str(m);
        s.push('\n');
    }
    s
}

fn store(tid: usize, create: bool) -> Option<&'static Store> {
    let cell = STORES.get(tid)?;
    if create {
        Some(cell.get_or_init(|| (0..STORE_LEN).map(|_| AtomicU64::new(0)).collect()))
    } else {
        cell.get()
    }
}

/// Thread tid's store as `MAX_PAIRS * STRIDE` doubles, valid for the life of the process;
/// null for a tid out of range, or (create = false) when the thread has none yet.
pub fn store_ptr(tid: usize, create: bool) -> *mut f64 {
    match store(tid, create) {
        // AtomicU64 has the size and alignment of f64; only thread tid stores through it.
        Some(s) => s.as_ptr() as *mut f64,
        None => std::ptr::null_mut(),
    }
}

fn get(s: &Store, i: usize) -> f64 {
    f64::from_bits(s[i].load(Ordering::Relaxed))
}

/// A new run (`luact.start`): no pair is marked, every store counts from 0.
pub fn reset() {
    PAIRS.lock().clear();
    for cell in STORES.iter() {
        if let Some(s) = cell.get() {
            for v in s.iter() {
                v.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The family `luact_method_duration_seconds`: one histogram per marked pair, summed over the
/// threads 1..=n_core.
pub fn encode(enc: &mut DescriptorEncoder, n_core: usize) -> std::fmt::Result {
    let pairs = PAIRS.lock().clone();
    let mut m = enc.encode_descriptor(
        "luact_method_duration",
        "Time a marked method (__actor_metrics__) took from its start to its return, where its actor lives",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (k, (actor, method)) in pairs.iter().enumerate() {
        let base = k * STRIDE;
        let mut counts = [0f64; BOUNDS.len() + 1];
        let (mut sum, mut count) = (0.0, 0.0);
        for tid in 1..=n_core {
            if let Some(s) = store(tid, false) {
                for (i, c) in counts.iter_mut().enumerate() {
                    *c += get(s, base + i);
                }
                sum += get(s, base + SUM);
                count += get(s, base + COUNT);
            }
        }
        // (per bucket, not cumulative: the encoder sums them into the `le` series)
        let buckets: Vec<(f64, u64)> =
            BOUNDS.iter().chain(std::iter::once(&f64::INFINITY)).zip(counts.iter()).map(|(b, c)| (*b, *c as u64)).collect();
        let labels: Vec<(&str, &str)> = vec![("actor", actor.as_str()), ("method", method.as_str())];
        m.encode_family(&labels)?.encode_histogram::<Vec<(&str, &str)>>(sum, count as u64, &buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_at_most_max_pairs_and_finds_a_pair_again() {
        reset();
        assert_eq!(mark("room", "join"), Ok(0));
        assert_eq!(mark("room", "leave"), Ok(1));
        assert_eq!(mark("room", "join"), Ok(0));
        assert_eq!(mark("room", ""), Err(MarkError::BadName));
        for i in 2..MAX_PAIRS {
            assert_eq!(mark("x", &format!("m{i}")), Ok(i));
        }
        assert_eq!(mark("x", "one_more"), Err(MarkError::Full));
        assert_eq!(mark("room", "leave"), Ok(1));
        assert!(names().starts_with("room\tjoin\nroom\tleave\n"));
        reset();
        assert_eq!(names(), "");
    }
}
