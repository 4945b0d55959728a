//! The running runtime of this process: its threads' inboxes, the stop flag and the values
//! `luact.stop` hands back to `luact.start`, the first error any thread reported, and the join of
//! the worker threads (the body of threads 2..n is `run_worker` here). One runtime at a time;
//! `start` may run again after it has finished.
use crate::inbox::Inbox;
use crate::op_id::Owner;
use crate::ring::Ring;
use crate::status::{Error, Result, Status};
use crate::transport::{NodeConfig, Transport};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Options fixed at start (from `luact.start(opts)`).
#[derive(Clone, Copy)]
pub struct Options {
    pub n_core: usize,
    pub inbox_capacity: usize,
    /// How long a thread spins for work before it sleeps in the kernel (seconds).
    pub spin: f64,
    pub ring_entries: u32,
}

/// Whether a thread is waiting for work (1) or running its loop (0); one per cache line so a
/// thread writing its own flag does not slow down the others. Senders read it to decide
/// whether to push a message now (the thread is idle: give it work at once) or to let it ride
/// with the turn's batch (the thread is busy: it will not look before it has finished anyway).
#[repr(C, align(64))]
pub struct WaitFlag(pub AtomicU32);

/// `WaitFlag`s are this many u32 apart (what Lua indexes with).
pub const WAIT_FLAG_STRIDE: usize = std::mem::size_of::<WaitFlag>() / 4;

pub struct Runtime {
    pub options: Options,
    /// Thread `tid`'s flag at index `tid - 1`.
    pub waiting: Box<[WaitFlag]>,
    /// This process's node identity, when started with an address.
    pub node: Option<Arc<NodeConfig>>,
    /// Inbox of thread `tid` at index `tid - 1`.
    pub inboxes: Vec<Arc<Inbox>>,
    /// What every worker VM receives: the encoded `main` and options (opaque to Rust).
    pub start_payload: Vec<u8>,
    stopping: AtomicBool,
    result: Mutex<Option<Vec<u8>>>,
    error: Mutex<Option<Vec<u8>>>,
    finished: Mutex<usize>,
    finished_cv: Condvar,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// The offload pool, started by the first `luact.offload` of the run.
    offload: Mutex<Option<Arc<crate::offload::Pool>>>,
}

static CURRENT: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave its data half-written (all are
    // plain replacements), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn current() -> Option<Arc<Runtime>> {
    lock(&CURRENT).clone()
}

/// Creates the runtime and starts threads 2..=n_core (thread 1 is the caller).
pub fn start(options: Options, node: Option<NodeConfig>, start_payload: Vec<u8>) -> Result<()> {
    if options.n_core == 0 || options.n_core > 1024 {
        return Err(Error::new(Status::BadArgument, "n_core must be between 1 and 1024"));
    }
    let mut current = lock(&CURRENT);
    if current.is_some() {
        return Err(Error::new(Status::AlreadyRunning, "luact is already running"));
    }
    crate::metrics::reset(options.n_core);
    let inboxes = (0..options.n_core)
        .map(|_| Inbox::new(options.inbox_capacity).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let rt = Arc::new(Runtime {
        options,
        waiting: (0..options.n_core).map(|_| WaitFlag(AtomicU32::new(0))).collect(),
        node: node.map(Arc::new),
        inboxes,
        start_payload,
        stopping: AtomicBool::new(false),
        result: Mutex::new(None),
        error: Mutex::new(None),
        finished: Mutex::new(0),
        finished_cv: Condvar::new(),
        handles: Mutex::new(Vec::new()),
        offload: Mutex::new(None),
    });
    let mut handles = Vec::new();
    for tid in 2..=options.n_core {
        let worker_rt = rt.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("luact-{tid}"))
            .spawn(move || run_worker(worker_rt, tid));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                rt.fail(format!("cannot start thread {tid}: {e}").as_bytes());
                break;
            }
        }
    }
    *lock(&rt.handles) = handles;
    *current = Some(rt);
    Ok(())
}

impl Runtime {
    pub fn inbox(&self, tid: usize) -> Option<&Arc<Inbox>> {
        tid.checked_sub(1).and_then(|i| self.inboxes.get(i))
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Asks every thread to leave its loop; the first caller's payload is what start returns.
    pub fn stop(&self, payload: &[u8]) {
        {
            let mut result = lock(&self.result);
            if result.is_none() && !self.is_stopping() {
                *result = Some(payload.to_vec());
            }
        }
        self.stopping.store(true, Ordering::Release);
        for inbox in &self.inboxes {
            inbox.ring();
        }
    }

    /// Records the first error (a thread's main failed) and stops everything.
    pub fn fail(&self, msg: &[u8]) {
        {
            let mut error = lock(&self.error);
            if error.is_none() {
                *error = Some(msg.to_vec());
            }
        }
        self.stop(b"");
    }

    pub fn result(&self) -> Option<Vec<u8>> {
        lock(&self.result).clone()
    }

    pub fn error(&self) -> Option<Vec<u8>> {
        lock(&self.error).clone()
    }

    pub fn worker_finished(&self) {
        *lock(&self.finished) += 1;
        self.finished_cv.notify_all();
    }

    /// Waits up to `timeout` seconds for the workers to finish, joins those that did, and
    /// returns how many are still running (they are left detached: shutdown never hangs).
    pub fn join(&self, timeout: f64) -> usize {
        let workers = self.options.n_core - 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.max(0.0));
        let mut finished = lock(&self.finished);
        while *finished < workers {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            finished = self
                .finished_cv
                .wait_timeout(finished, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let done = *finished;
        drop(finished);
        if let Some(pool) = lock(&self.offload).take() {
            let left = deadline.saturating_duration_since(std::time::Instant::now()).as_secs_f64();
            pool.stop(left.max(0.1));
        }
        for h in lock(&self.handles).drain(..) {
            // Every finished worker has left its VM; it is at most a few instructions from
            // exiting, so joining it cannot block. One that has not finished is left detached.
            if done == workers || h.is_finished() {
                let _ = h.join();
            }
        }
        workers - done
    }

    /// The run's offload pool, started with `size` threads if it is not running yet.
    pub fn offload_pool(self: &Arc<Self>, size: usize, max: usize) -> Result<Arc<crate::offload::Pool>> {
        let mut pool = lock(&self.offload);
        if let Some(p) = pool.as_ref() {
            return Ok(p.clone());
        }
        if self.is_stopping() {
            return Err(Error::new(Status::NotRunning, "luact is stopping"));
        }
        let me: std::sync::Weak<Runtime> = Arc::downgrade(self);
        let replies: std::sync::Weak<dyn crate::offload::Replies> = me;
        let p = crate::offload::Pool::start(self.start_payload.clone(), replies, size, max)?;
        *pool = Some(p.clone());
        Ok(p)
    }

    /// The run's offload pool, if it started.
    pub fn offload_pool_if_started(&self) -> Option<Arc<crate::offload::Pool>> {
        lock(&self.offload).clone()
    }

    pub fn attach(self: &Arc<Self>, tid: usize) -> Result<Box<ThreadCtx>> {
        let inbox = self
            .inbox(tid)
            .ok_or_else(|| Error::new(Status::BadArgument, format!("no thread {tid}")))?
            .clone();
        let ring = Ring::new(self.options.ring_entries, inbox.doorbell_fd())?;
        crate::stall::attach(tid);
        Ok(Box::new(ThreadCtx {
            tid,
            runtime: self.clone(),
            inbox,
            ring,
            transport: {
                let mut t = Transport::new(tid, self.node.clone());
                t.set_max_queued_msgs(self.options.inbox_capacity);
                t
            },
            sockets: crate::socket::Sockets::default(),
            batch: Vec::new(),
            completions: vec![crate::ring::Completion::default(); 256],
            last_work: 0.0,
            spin_period_start: 0.0,
            works: 0,
            works_before: 0,
            polled_at: crate::clock::monotonic(),
        }))
    }
}

/// Offload pool threads reply into this run's inboxes, and only while it runs.
impl crate::offload::Replies for Runtime {
    fn reply(&self, tid: usize, msg: &[u8]) -> Result<Status> {
        if self.is_stopping() {
            return Err(Error::new(Status::NotRunning, "the run that submitted the task is stopping"));
        }
        let inbox = self.inbox(tid).ok_or_else(|| Error::new(Status::BadArgument, format!("no thread {tid}")))?;
        Ok(inbox.push_batch(msg, 1))
    }
}

/// The body of threads 2..n: create a LuaJIT VM on this OS thread, give it the Lua layer, run
/// the loop (`luact.runtime`'s worker entry), report any failure, and signal completion.
fn run_worker(rt: Arc<Runtime>, tid: usize) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::result::Result<(), String> {
        let vm = crate::vm::WorkerVm::new().map_err(|e| format!("thread {tid}: {e}"))?;
        vm.call("luact.runtime", "worker_main", tid, &rt.start_payload)
            .map_err(|e| format!("thread {tid}: {e}"))
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => rt.fail(msg.as_bytes()),
        Err(panic) => rt.fail(format!("thread {tid}: panic in the core: {}", crate::util::panic_message(&panic)).as_bytes()),
    }
    rt.worker_finished();
}

/// Forgets the runtime so `start` can run again (called by thread 1 after the join).
pub fn finish() {
    lock(&CURRENT).take();
    crate::names::clear();
}

/// What one thread's loop owns: its ring, its inbox, the batch of drained messages Lua is
/// reading. Lua holds it as an opaque pointer between `luact_thread_attach` and `_detach`.
pub struct ThreadCtx {
    tid: usize,
    pub runtime: Arc<Runtime>,
    pub inbox: Arc<Inbox>,
    pub ring: Ring,
    pub transport: Transport,
    /// User sockets (`luact.socket`).
    pub sockets: crate::socket::Sockets,
    /// Entries of the last drain; their bytes stay valid until the next drain.
    pub batch: Vec<Box<[u8]>>,
    completions: Vec<crate::ring::Completion>,
    /// When this thread last found work (a completion or a message) in a poll.
    last_work: f64,
    /// Start of the current spin budget period (see SPIN_BUDGET).
    spin_period_start: f64,
    /// Polls that found work in the current and in the previous spin budget period.
    works: u32,
    works_before: u32,
    /// The monotonic time when the last poll returned (after its wait).
    pub polled_at: f64,
}

/// A thread spins before sleeping only while messages are flowing: within this many seconds of
/// its last work. An idle thread goes straight to sleep (no CPU), a busy exchange avoids paying
/// a cross-core wake-up (~20 µs here) for every message.
const SPIN_WINDOW: f64 = 0.002;

/// Spins that found nothing may cost a thread at most SPIN_BUDGET seconds per SPIN_PERIOD, plus
/// SPIN_PER_WORK for each poll that found work in this period and the one before; past that it
/// sleeps at once until the period ends. So a thread that exchanges messages at a high rate
/// spins as before, while one that wakes for isolated events (heartbeats, lease renewals,
/// timers: an idle cluster member) no longer spins 0.5 ms after each of them: that cost an
/// idle member about 5 % of a core.
const SPIN_BUDGET: f64 = 0.002;
const SPIN_PER_WORK: f64 = 5e-6;
const SPIN_PERIOD: f64 = 1.0;
/// And a thread spins at all only once SPIN_MIN_WORKS polls found work in this period and the
/// one before (messages flowing at hundreds per second or more): an idle cluster member wakes
/// 100-400 times a second for timers, and its spins after those, even within the budget above,
/// were a quarter of its CPU time (perf: clock reads and polls in the spin, 2026-12-07).
const SPIN_MIN_WORKS: u32 = 1000;

impl Drop for ThreadCtx {
    fn drop(&mut self) {
        crate::stall::detach(self.tid);
        self.transport.shutdown();
        self.sockets.shutdown();
    }
}

impl ThreadCtx {
    /// One wait of the loop: runs the transport (timeouts, completions, batched sends) and
    /// writes the completions that are Lua's into `out`. `now`: the monotonic time the loop read
    /// for this turn (one clock read serves both sides).
    pub fn poll(&mut self, now: f64, timeout: f64, out: &mut [crate::ring::Completion]) -> Result<usize> {
        let mut timeout = if self.runtime.is_stopping() { 0.0 } else { timeout };
        if let Some(next) = self.transport.tick(&mut self.ring, &self.runtime.inboxes, now) {
            timeout = timeout.min((next - now).max(0.0));
        }
        if let Some(next) = self.sockets.tick(&mut self.ring, now) {
            timeout = timeout.min((next - now).max(0.0));
        }
        self.transport.flush(&mut self.ring);
        self.sockets.flush(&mut self.ring);
        if self.sockets.pending() {
            timeout = 0.0;
        }
        if now - self.spin_period_start >= SPIN_PERIOD {
            self.spin_period_start = now;
            self.ring.wasted_spin = 0.0;
            self.works_before = self.works;
            self.works = 0;
        }
        let budget = SPIN_BUDGET + f64::from(self.works.saturating_add(self.works_before)) * SPIN_PER_WORK;
        let flowing = self.works.saturating_add(self.works_before) >= SPIN_MIN_WORKS;
        let spin = if flowing && now - self.last_work < SPIN_WINDOW && self.ring.wasted_spin < budget {
            self.runtime.options.spin
        } else {
            0.0
        };
        let flag = &self.runtime.waiting[self.tid - 1].0;
        flag.store(1, Ordering::Relaxed);
        let waited = self.ring.wait(&self.inbox, timeout, spin, &mut self.completions);
        // (SeqCst: pairs with the stall watchdog's parking, see stall::left_wait)
        flag.store(0, Ordering::SeqCst);
        crate::stall::left_wait();
        let n = waited?;
        // (a wait of 0 took no time worth a second clock read: on some VMs a read costs 30 ns)
        let now = if timeout > 0.0 { crate::clock::monotonic() } else { now };
        self.polled_at = now;
        if n > 0 || self.inbox.len() > 0 {
            self.last_work = now;
            self.works = self.works.saturating_add(1);
        }
        let mut k = 0;
        for i in 0..n {
            let c = self.completions[i];
            // routed by the operation's owner (src/op_id.rs); no owner's: Lua's
            match crate::op_id::owner(c.user_data) {
                Some(Owner::Transport | Owner::TransportLinks) => {
                    self.transport.on_completion(&mut self.ring, &self.runtime.inboxes, c.user_data, c.res, now)
                }
                Some(Owner::Sockets | Owner::Datagrams) => self.sockets.on_completion(&mut self.ring, c.user_data, c.res),
                None if k < out.len() => {
                    out[k] = c;
                    k += 1;
                }
                None => {}
            }
        }
        k += self.sockets.take_events(&mut self.ring, &mut out[k..]);
        self.transport.flush(&mut self.ring);
        self.sockets.flush(&mut self.ring);
        crate::metrics::add(self.tid, crate::metrics::LOOP_TURNS, 1.0);
        self.transport.publish_metrics(self.tid);
        Ok(k)
    }

    /// Moves up to `max` entries (each one or more messages) out of the inbox into `batch`.
    pub fn drain(&mut self, max: usize) -> usize {
        self.batch.clear();
        let depth = self.inbox.len() as f64;
        if depth > crate::metrics::get(self.tid, crate::metrics::INBOX_HWM) {
            crate::metrics::set(self.tid, crate::metrics::INBOX_HWM, depth);
        }
        while self.batch.len() < max {
            match self.inbox.pop() {
                Some(e) => self.batch.push(e.bytes),
                None => break,
            }
        }
        self.batch.len()
    }
}
