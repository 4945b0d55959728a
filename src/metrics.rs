//! The metrics of this process: one block of counters per thread, in memory every thread can
//! read, and the Prometheus (OpenMetrics) text made from them (`GET /metrics` on an `http://`
//! listener that enables it, `luact.metrics("text")`).
//!
//! A block is an array of `double`s (stored as the bits of an `AtomicU64`), 64-byte aligned,
//! written only by its own thread: Lua bumps its slots through an FFI pointer (a plain load and
//! store, no lock, no syscall; the JIT compiles it into the trace) and the thread's Rust half
//! (the loop's poll, the transport) writes the slots that are its own. Any thread reads any
//! block with relaxed loads at scrape time: a value may be a moment old, never torn (aligned
//! 8-byte stores and loads are single instructions on the targets luact supports). Counters are
//! doubles so that Lua reads and writes them as plain numbers: exact up to 2^53.
//!
//! The slot numbers are mirrored in lua/luact/metrics.lua (`SLOT`): change both together.
//! Block 0 holds the cluster's gauges (written by thread 1's Lua from the cluster modules, once
//! a second and on `luact.metrics()`); block `tid` is thread `tid`'s.
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::atomic::{AtomicU64, Ordering};

/// Doubles per block (1 KiB: 16 cache lines).
pub const SLOTS: usize = 128;
/// Blocks: the cluster's, then one per thread (`luact.start` allows 1024 threads).
pub const BLOCKS: usize = 1025;

#[repr(C, align(64))]
pub struct Block([AtomicU64; SLOTS]);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Block = Block([ZERO; SLOTS]);
static STORE: [Block; BLOCKS] = [EMPTY; BLOCKS];

// ---- thread slots (lua/luact/metrics.lua mirrors these) ------------------------------------
pub const CALLS_SENT: usize = 0;
pub const NOTIFIES_SENT: usize = 1;
pub const CALLS_RECEIVED: usize = 2;
pub const NOTIFIES_RECEIVED: usize = 3;
pub const REPLIES_SENT: usize = 4;
pub const REPLIES_RECEIVED: usize = 5;
pub const LOOP_TURNS: usize = 6; // Rust: each poll
pub const STALLS: usize = 7;
pub const TENTACLES: usize = 10; // gauges refreshed by Lua
pub const ACTORS: usize = 11;
pub const GC_BYTES: usize = 12;
#[allow(dead_code)] // (written by Lua, read by luact.metrics())
pub const STALL_SECONDS: usize = 13;
/// Errors by name: `ERRORS + i` counts `ERROR_NAMES[i]`.
pub const ERRORS: usize = 16;
pub const ERROR_NAMES: [&str; 9] = [
    "actor_timeout",
    "actor_unreachable",
    "actor_no_body",
    "actor_temporary_fail",
    "actor_overload",
    "actor_no_method",
    "actor_runtime_error",
    "actor_error",
    "other",
];
/// The call latency histogram: `LATENCY + i` counts observations in bucket i (not cumulative),
/// then the sum and the count.
pub const LATENCY: usize = 32;
pub const LATENCY_BOUNDS: [f64; 15] =
    [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0];
pub const LATENCY_SUM: usize = LATENCY + 16;
pub const LATENCY_COUNT: usize = LATENCY + 17;
// Rust's own slots of a thread (the loop's poll and the transport).
pub const INBOX_HWM: usize = 64;
pub const CONNS_OPEN: usize = 65;
pub const CONNS_OPENED: usize = 66;
pub const BYTES_IN: usize = 67;
pub const BYTES_OUT: usize = 68;
pub const FRAMES_IN: usize = 69;
pub const FRAMES_OUT: usize = 70;
/// `luact.listen_stats()`'s six fields, in `ListenStats` order.
pub const LISTEN: usize = 71;
pub const LISTEN_NAMES: [&str; 6] =
    ["header_timeouts", "idle_timeouts", "slow_readers", "refused_connections", "accept_pauses", "read_pauses"];
/// Node handshakes (and TLS handshakes of any connection) that failed, by reason:
/// `HANDSHAKE_FAILURES + i` counts `HANDSHAKE_REASONS[i]`.
pub const HANDSHAKE_FAILURES: usize = 80;
pub const HANDSHAKE_REASONS: [&str; 9] =
    ["bad_secret", "wrong_cluster", "version", "tls", "timeout", "peer_refused", "protocol", "closed", "duplicate_client"];
/// Flow-control pauses of node links: a send refused for a full window (sender), a receiving
/// thread's inbox full so that its messages wait on the connection (receiver).
pub const FLOW_SEND_PAUSES: usize = 90;
pub const FLOW_RECEIVE_PAUSES: usize = 91;

// ---- cluster slots (block 0) ---------------------------------------------------------------
pub const C_MEMBER: usize = 0; // is a cluster member (0/1)
pub const C_STATES: usize = 1; // members by state: alive, suspect, dead, left
pub const STATE_NAMES: [&str; 4] = ["alive", "suspect", "dead", "left"];
pub const C_TERM: usize = 5;
pub const C_COMMIT: usize = 6;
pub const C_APPLIED: usize = 7;
pub const C_LEADER: usize = 8; // this node leads (0/1)
pub const C_LEADER_CHANGES: usize = 9;
pub const C_LEASE_RENEWALS: usize = 10;
pub const C_LEASE_LAPSES: usize = 11;
pub const C_LEASE_ENDS: usize = 12; // Rust (lease.rs)
pub const C_ACTIVATIONS: usize = 13; // virtual actors placed here
pub const C_NAMES: usize = 14; // virtual actors registered
pub const C_SUSPICIONS: usize = 15; // members this node saw turn suspect
pub const C_FAILOVERS: usize = 16; // activations placed elsewhere because their host was gone
/// Histograms of block 0 (bounds: `metrics_methods::BOUNDS`; per bucket, not cumulative, then
/// the sum and the count): the Raft storage's fsync calls, and placement time.
pub const C_FSYNC: usize = 32;
pub const C_PLACEMENT: usize = 64;

/// Activations per node ("ip:port", count), set by thread 1 once a second.
static ACTIVATIONS: parking_lot::Mutex<Vec<(String, f64)>> = parking_lot::Mutex::new(Vec::new());

fn activations() -> Vec<(String, f64)> {
    ACTIVATIONS.lock().clone()
}

/// Replaces the activations per node from lines "addr\tcount" (at most 4096 kept: a label per
/// node bounds the cardinality by the cluster's size).
pub fn set_activations(text: &str) {
    let mut v: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(a, n)| n.parse::<f64>().ok().map(|n| (a.to_string(), n)))
        .take(4096)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    *ACTIVATIONS.lock() = v;
}

fn block(b: usize) -> &'static Block {
    &STORE[b.min(BLOCKS - 1)]
}

/// The first slot of block `b` (0: the cluster's; tid: thread tid's), for Lua; null when out of
/// range. Valid for the life of the process.
pub fn block_ptr(b: usize) -> *mut f64 {
    if b >= BLOCKS {
        return std::ptr::null_mut();
    }
    // AtomicU64 has the size and alignment of u64, hence of f64; Lua's plain stores to the
    // slots of its own block race with nobody's writes (one writer per block).
    STORE[b].0.as_ptr() as *mut f64
}

pub fn get(b: usize, slot: usize) -> f64 {
    f64::from_bits(block(b).0[slot].load(Ordering::Relaxed))
}

pub fn set(b: usize, slot: usize, v: f64) {
    block(b).0[slot].store(v.to_bits(), Ordering::Relaxed);
}

/// Adds to a slot of the calling thread's own block (single writer: a load and a store).
pub fn add(b: usize, slot: usize, v: f64) {
    set(b, slot, get(b, slot) + v);
}

/// Zeroes blocks 0..=n_core (a new `luact.start`: counters count from the start of the run).
pub fn reset(n_core: usize) {
    ACTIVATIONS.lock().clear();
    crate::metrics_methods::reset();
    for b in 0..=n_core.min(BLOCKS - 1) {
        for s in block(b).0.iter() {
            s.store(0, Ordering::Relaxed);
        }
    }
}

/// What a scrape reads besides the blocks: the number of threads and their inbox depths now
/// (the caller reads them: this module knows nothing of the runtime).
#[derive(Debug)]
pub struct Snapshot {
    pub n_core: usize,
    pub inbox_depth: Vec<usize>,
}

#[derive(Debug)]
struct Collector(Snapshot);

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family: a name, help, unit, type and (labels, value) samples.
fn family<'e, F>(enc: &mut DescriptorEncoder<'e>, name: &str, help: &str, unit: Option<Unit>, t: MetricType, mut samples: F) -> std::fmt::Result
where
    F: FnMut(&mut dyn FnMut(&Labels, f64) -> std::fmt::Result) -> std::fmt::Result,
{
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), t)?;
    samples(&mut |labels: &Labels, v: f64| {
        let mut f = m.encode_family(labels)?;
        match t {
            MetricType::Counter => f.encode_counter::<Labels, f64, f64>(&v, None),
            _ => f.encode_gauge(&v),
        }
    })
}

/// The thread numbers as label values, and a family with one series per thread from `slot` of
/// each thread's block.
struct Threads(Vec<String>);

impl Threads {
    fn per_thread(&self, enc: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, t: MetricType, slot: usize) -> std::fmt::Result {
        family(enc, name, help, unit, t, |emit| {
            for (i, tid) in self.0.iter().enumerate() {
                emit(&vec![("thread", tid.as_str())], get(i + 1, slot))?;
            }
            Ok(())
        })
    }
}

impl Collector {
    /// The families with one series per thread (blocks 1..n).
    fn encode_threads(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let threads = Threads((1..=self.0.n_core).map(|t| t.to_string()).collect());
        self.encode_calls(enc, &threads)?;
        encode_latency(enc, &threads)?;
        encode_transport(enc, &threads)
    }

    /// Calls, notifies, the loop, the inbox and call errors, per thread.
    fn encode_calls(&self, enc: &mut DescriptorEncoder, threads: &Threads) -> std::fmt::Result {
        let tids = &threads.0;
        let per_thread = |enc: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, t: MetricType, slot: usize| {
            threads.per_thread(enc, name, help, unit, t, slot)
        };
        use MetricType::{Counter, Gauge};
        per_thread(enc, "luact_calls_sent", "Calls (that wait for a reply) sent by this thread", None, Counter, CALLS_SENT)?;
        per_thread(enc, "luact_notifies_sent", "notify_ messages sent by this thread", None, Counter, NOTIFIES_SENT)?;
        per_thread(enc, "luact_calls_received", "Calls served by actors of this thread (same-thread calls included)", None, Counter, CALLS_RECEIVED)?;
        per_thread(enc, "luact_notifies_received", "notify_ messages run by actors of this thread", None, Counter, NOTIFIES_RECEIVED)?;
        per_thread(enc, "luact_replies_sent", "Replies sent to callers on other threads or nodes", None, Counter, REPLIES_SENT)?;
        per_thread(enc, "luact_replies_received", "Replies received for calls this thread made to other threads or nodes", None, Counter, REPLIES_RECEIVED)?;
        per_thread(enc, "luact_loop_turns", "Turns of this thread's event loop", None, Counter, LOOP_TURNS)?;
        per_thread(enc, "luact_stalls", "Methods that held this thread longer than stall_warn", None, Counter, STALLS)?;
        per_thread(enc, "luact_tentacles", "Tentacles (coroutines) alive on this thread", None, Gauge, TENTACLES)?;
        per_thread(enc, "luact_actors", "Actors alive on this thread", None, Gauge, ACTORS)?;
        per_thread(enc, "luact_lua_memory", "Memory of this thread's Lua VM (collectgarbage 'count')", Some(Unit::Bytes), Gauge, GC_BYTES)?;
        family(enc, "luact_inbox_depth", "Entries waiting in this thread's inbox", None, Gauge, |emit| {
            for (i, tid) in tids.iter().enumerate() {
                emit(&vec![("thread", tid.as_str())], *self.0.inbox_depth.get(i).unwrap_or(&0) as f64)?;
            }
            Ok(())
        })?;
        per_thread(enc, "luact_inbox_high_water", "Most entries seen waiting in this thread's inbox at once", None, Gauge, INBOX_HWM)?;
        family(enc, "luact_call_errors", "Calls that ended with an error, by exception name, on the thread that saw it", None, Counter, |emit| {
            for (i, tid) in tids.iter().enumerate() {
                for (k, name) in ERROR_NAMES.iter().enumerate() {
                    emit(&vec![("thread", tid.as_str()), ("error", name)], get(i + 1, ERRORS + k))?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// The call latency histogram, per thread.
fn encode_latency(enc: &mut DescriptorEncoder, threads: &Threads) -> std::fmt::Result {
    let tids = &threads.0;
    let mut m = enc.encode_descriptor(
        "luact_call_latency",
        "Time from sending a call to another thread or node to its reply (1 call in 16 is timed)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (i, tid) in tids.iter().enumerate() {
        let b = i + 1;
        // (per bucket, not cumulative: the encoder sums them into the `le` series)
        let mut buckets = Vec::with_capacity(16);
        for (k, bound) in LATENCY_BOUNDS.iter().chain(std::iter::once(&f64::INFINITY)).enumerate() {
            buckets.push((*bound, get(b, LATENCY + k) as u64));
        }
        let labels: Labels = vec![("thread", tid.as_str())];
        let mut f = m.encode_family(&labels)?;
        f.encode_histogram::<Labels>(get(b, LATENCY_SUM), get(b, LATENCY_COUNT) as u64, &buckets, None)?;
    }
    Ok(())
}

/// Connections, bytes, frames, handshakes, flow control and listener limits, per thread.
fn encode_transport(enc: &mut DescriptorEncoder, threads: &Threads) -> std::fmt::Result {
    let tids = &threads.0;
    let per_thread = |enc: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, t: MetricType, slot: usize| {
        threads.per_thread(enc, name, help, unit, t, slot)
    };
    use MetricType::{Counter, Gauge};
    per_thread(enc, "luact_connections_open", "Transport connections open (node links and listener clients)", None, Gauge, CONNS_OPEN)?;
    per_thread(enc, "luact_connections_opened", "Transport connections opened (dialed or accepted)", None, Counter, CONNS_OPENED)?;
    per_thread(enc, "luact_transport_received", "Bytes received by the transport", Some(Unit::Bytes), Counter, BYTES_IN)?;
    per_thread(enc, "luact_transport_sent", "Bytes sent by the transport", Some(Unit::Bytes), Counter, BYTES_OUT)?;
    per_thread(enc, "luact_frames_received", "Frames (and HTTP requests) received by the transport", None, Counter, FRAMES_IN)?;
    per_thread(enc, "luact_frames_sent", "Frames queued for sending by the transport", None, Counter, FRAMES_OUT)?;
    family(enc, "luact_handshake_failures", "Node handshakes, and TLS handshakes of any connection, that failed, by reason", None, Counter, |emit| {
        for (i, tid) in tids.iter().enumerate() {
            for (k, name) in HANDSHAKE_REASONS.iter().enumerate() {
                emit(&vec![("thread", tid.as_str()), ("reason", name)], get(i + 1, HANDSHAKE_FAILURES + k))?;
            }
        }
        Ok(())
    })?;
    family(enc, "luact_flow_control_pauses", "Node link flow control: sends refused for a full window (send), times a full inbox made its messages wait on the connection (receive)", None, Counter, |emit| {
        for (i, tid) in tids.iter().enumerate() {
            emit(&vec![("thread", tid.as_str()), ("side", "send")], get(i + 1, FLOW_SEND_PAUSES))?;
            emit(&vec![("thread", tid.as_str()), ("side", "receive")], get(i + 1, FLOW_RECEIVE_PAUSES))?;
        }
        Ok(())
    })?;
    family(enc, "luact_listener_limit_events", "What listener limits refused or paused (luact.listen_stats())", None, Counter, |emit| {
        for (i, tid) in tids.iter().enumerate() {
            for (k, name) in LISTEN_NAMES.iter().enumerate() {
                emit(&vec![("thread", tid.as_str()), ("event", name)], get(i + 1, LISTEN + k))?;
            }
        }
        Ok(())
    })?;
Ok(())
}

/// The cluster's families (block 0).
fn encode_cluster(enc: &mut DescriptorEncoder) -> std::fmt::Result {
    use MetricType::{Counter, Gauge};
    let c = |slot| get(0, slot);
    let one = |enc: &mut DescriptorEncoder, name: &str, help: &str, t: MetricType, slot: usize| {
        family(enc, name, help, None, t, |emit| emit(&vec![], c(slot)))
    };
    one(enc, "luact_cluster_member", "1 while this node is a cluster member", Gauge, C_MEMBER)?;
    family(enc, "luact_cluster_members", "Members this node knows, by state", None, Gauge, |emit| {
        for (k, s) in STATE_NAMES.iter().enumerate() {
            emit(&vec![("state", s)], c(C_STATES + k))?;
        }
        Ok(())
    })?;
    one(enc, "luact_raft_term", "This node's Raft term", Gauge, C_TERM)?;
    one(enc, "luact_raft_commit_index", "This node's Raft commit index", Gauge, C_COMMIT)?;
    one(enc, "luact_raft_applied_index", "Index of the last entry this node's registry applied", Gauge, C_APPLIED)?;
    one(enc, "luact_raft_leader", "1 while this node is the Raft leader", Gauge, C_LEADER)?;
    one(enc, "luact_raft_leader_changes", "Times the leader this node knows changed", Counter, C_LEADER_CHANGES)?;
    one(enc, "luact_lease_renewals", "Times this node's activation lease was renewed", Counter, C_LEASE_RENEWALS)?;
    one(enc, "luact_lease_lapses", "Times this node's activation lease ran out before a renewal", Counter, C_LEASE_LAPSES)?;
    one(enc, "luact_lease_ends", "Times this node's lease was ended (condemned, leaving, stopping)", Counter, C_LEASE_ENDS)?;
    one(enc, "luact_activations", "Virtual actors placed on this node", Gauge, C_ACTIVATIONS)?;
    family(enc, "luact_cluster_activations", "Virtual actor activations per node, as this node's registry has them", None, Gauge, |emit| {
        for (node, n) in activations().iter() {
            emit(&vec![("node", node.as_str())], *n)?;
        }
        Ok(())
    })?;
    one(enc, "luact_registered_names", "Virtual actors in the registry", Gauge, C_NAMES)?;
    one(enc, "luact_swim_suspicions", "Times this node saw a member turn suspect (SWIM)", Counter, C_SUSPICIONS)?;
    one(enc, "luact_failovers", "Virtual actor activations this node's registry placed on another node because their host was gone", Counter, C_FAILOVERS)?;
    cluster_histogram(enc, "luact_raft_fsync_duration", "Time each fsync of this node's Raft storage took (log, state, snapshots, directories)", C_FSYNC)?;
    cluster_histogram(enc, "luact_placement_duration", "Time from a name needing a host (as this node learned it) to its new activation filed active", C_PLACEMENT)?;
    Ok(())
}

/// A histogram of block 0 without labels, its buckets from slot `base` on.
fn cluster_histogram(enc: &mut DescriptorEncoder, name: &str, help: &str, base: usize) -> std::fmt::Result {
    use crate::metrics_methods::{BOUNDS, COUNT, SUM};
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    // (per bucket, not cumulative: the encoder sums them into the `le` series)
    let buckets: Vec<(f64, u64)> =
        BOUNDS.iter().chain(std::iter::once(&f64::INFINITY)).enumerate().map(|(i, b)| (*b, get(0, base + i) as u64)).collect();
    let labels: Labels = vec![];
    m.encode_family(&labels)?.encode_histogram::<Labels>(get(0, base + SUM), get(0, base + COUNT) as u64, &buckets, None)
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.encode_threads(&mut enc)?;
        crate::metrics_methods::encode(&mut enc, self.0.n_core)?;
        encode_cluster(&mut enc)
    }
}

/// The OpenMetrics text of every block (`Content-Type: application/openmetrics-text;
/// version=1.0.0; charset=utf-8`), ending with `# EOF`.
pub fn render(s: Snapshot) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Collector(s)));
    let mut out = String::with_capacity(16 * 1024);
    // (writing to a String cannot fail; were it to, the text so far is answered)
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
