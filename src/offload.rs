//! The offload pool (`luact.offload`): extra LuaJIT VMs with no loop of their own, for work that
//! blocks (file I/O, a C library, a long computation). Loop threads submit tasks (opaque bytes
//! the Lua side encoded: the function's bytecode, its arguments, where to reply) into a
//! crossbeam-deque `Injector`; each pool thread takes batches into its own `Worker` deque and
//! steals from the others when both are empty, and parks on a condition variable when there is
//! nothing at all. A pool VM replies by pushing a message into the caller's inbox
//! (`luact_offload_reply`), so the caller's loop never waits for a pool thread.
//!
//! One pool per runtime, started by the first `luact.offload` of a run and stopped when the run
//! finishes (pool threads still blocked in a task are left detached, like stuck workers).
//!
//! A task that never returns holds its pool thread for good. So the pool grows: when a submit
//! finds more work (running and queued tasks) than threads while at least one thread is stuck
//! (one task has held it for `STUCK_AFTER` or more), it starts threads up to `max`. The extra
//! threads take tasks from the injector and the others' deques one at a time (nobody steals
//! from them). `stats` counts threads, busy, stuck and queued tasks (`luact.offload_stats`).
//!
//! The pool knows nothing of the runtime above it: the run that starts it hands it the start
//! payload and a `Replies` (the runtime implements it), held weakly.
use crate::status::{Error, Result, Status};
use crossbeam_deque::{Injector, Stealer, Worker};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

/// How long a pool thread out of work looks for the next task before it parks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// The longest an idle pool thread sleeps without being woken by a submit.
const IDLE_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool thread that has run one task this long is stuck (counted, and lets the pool grow).
const STUCK_AFTER_MS: u64 = 1000;

/// What the pool needs of the run that started it: a way into its threads' inboxes. The runtime
/// implements it (src/runtime.rs); the pool holds it weakly, so a pool thread left behind by a
/// finished run cannot reply into the next run's inboxes.
pub trait Replies: Send + Sync {
    /// Pushes one luact message into thread `tid`'s inbox: `Full` when that inbox is full (the
    /// caller retries); Err when the run is stopping or has no thread `tid`.
    fn reply(&self, tid: usize, msg: &[u8]) -> Result<Status>;
}

pub struct Pool {
    injector: Injector<Vec<u8>>,
    stealers: Vec<Stealer<Vec<u8>>>,
    /// Pool threads waiting on `cv`; a submit notifies only when this is non-zero.
    sleepers: AtomicUsize,
    /// 1 while a pool thread that ran out of work spins briefly before it parks (at most one
    /// does: the next task of a caller that offloads one after another is taken without a
    /// futex wake-up, and idle threads do not burn the cores the loops need).
    spinning: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    stopping: AtomicBool,
    handles: Mutex<Vec<JoinHandle<()>>>,
    finished: Mutex<usize>,
    finished_cv: Condvar,
    /// Threads started at first (each with a deque the others steal from).
    pub size: usize,
    /// The most threads the pool grows to (`size` and the extra ones).
    max: usize,
    /// Threads started so far (`size` plus those the pool grew by).
    threads: AtomicUsize,
    /// Per thread slot (`max` of them): 1 + the milliseconds since `epoch` when its current task
    /// started; 0 while it has no task.
    busy_since: Vec<AtomicU64>,
    epoch: std::time::Instant,
    /// Where replies go (a pool thread left behind by a finished run must not reply into the
    /// next run's: this is weak, and the run refuses once it is stopping).
    replies: Weak<dyn Replies>,
    /// luact.start's payload: a pool VM takes thread 1's package.path and cpath from it.
    start_payload: Vec<u8>,
}

thread_local! {
    /// This pool thread's deque and the task Lua is reading (valid until the next take).
    static LOCAL: RefCell<Option<(Arc<Pool>, usize, Worker<Vec<u8>>, Vec<u8>)>> = const { RefCell::new(None) };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // nothing these locks guard can be left half-written by a panic
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Starts `size` pool threads for the run whose start payload is `start_payload` and whose
    /// inboxes `replies` reaches; it may grow to `max` threads.
    pub fn start(start_payload: Vec<u8>, replies: Weak<dyn Replies>, size: usize, max: usize) -> Result<Arc<Pool>> {
        let size = size.clamp(1, 256);
        let max = max.clamp(size, 256);
        let workers: Vec<Worker<Vec<u8>>> = (0..size).map(|_| Worker::new_fifo()).collect();
        let pool = Arc::new(Pool {
            injector: Injector::new(),
            stealers: workers.iter().map(|w| w.stealer()).collect(),
            sleepers: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            stopping: AtomicBool::new(false),
            handles: Mutex::new(Vec::new()),
            finished: Mutex::new(0),
            finished_cv: Condvar::new(),
            size,
            max,
            threads: AtomicUsize::new(size),
            busy_since: (0..max).map(|_| AtomicU64::new(0)).collect(),
            epoch: std::time::Instant::now(),
            replies,
            start_payload,
        });
        let mut handles = Vec::new();
        for (i, w) in workers.into_iter().enumerate() {
            let p = pool.clone();
            let h = std::thread::Builder::new()
                .name(format!("luact-offload-{}", i + 1))
                .spawn(move || run(p, i, w))
                .map_err(|e| Error::new(Status::Os, format!("cannot start an offload thread: {e}")))?;
            handles.push(h);
        }
        *lock(&pool.handles) = handles;
        Ok(pool)
    }

    /// Queues a task for any pool thread (and grows the pool when stuck threads leave too few).
    pub fn submit(self: &Arc<Self>, task: &[u8]) -> Result<()> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(Error::new(Status::NotRunning, "the offload pool is stopping"));
        }
        self.injector.push(task.to_vec());
        let threads = self.threads.load(Ordering::SeqCst);
        if threads < self.max {
            let s = self.stats();
            if s.stuck > 0 && s.busy + s.queued > threads {
                self.grow((s.busy + s.queued - threads).min(self.max - threads));
            }
        }
        // a spinning pool thread takes one task; more than that wakes a sleeper too
        let spinner = self.spinning.load(Ordering::SeqCst) > 0;
        if self.sleepers.load(Ordering::SeqCst) > 0 && (!spinner || self.injector.len() > 1) {
            let _g = lock(&self.lock);
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Starts `n` extra threads (not past `max`).
    fn grow(self: &Arc<Self>, n: usize) {
        let mut handles = lock(&self.handles);
        for _ in 0..n {
            let i = self.threads.load(Ordering::SeqCst);
            if i >= self.max || self.stopping.load(Ordering::Acquire) {
                break;
            }
            let p = self.clone();
            match std::thread::Builder::new().name(format!("luact-offload-{}", i + 1)).spawn(move || run(p, i, Worker::new_fifo())) {
                Ok(h) => {
                    self.threads.fetch_add(1, Ordering::SeqCst);
                    handles.push(h);
                }
                Err(e) => {
                    crate::logger::write_line(format!("luact: cannot grow the offload pool: {e}\n").as_bytes()).ok();
                    break;
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks pool thread `me` as running a task (true) or free (false).
    fn set_busy(&self, me: usize, busy: bool) {
        let v = if busy { 1 + self.now_ms() } else { 0 };
        self.busy_since[me].store(v, Ordering::SeqCst);
    }

    /// The pool's counters now.
    pub fn stats(&self) -> PoolStats {
        let now = self.now_ms();
        let (mut busy, mut stuck) = (0, 0);
        for b in &self.busy_since {
            let since = b.load(Ordering::SeqCst);
            if since > 0 {
                busy += 1;
                if now + 1 >= since + STUCK_AFTER_MS {
                    stuck += 1;
                }
            }
        }
        let queued = self.injector.len() + self.stealers.iter().map(|s| s.len()).sum::<usize>();
        let threads = self.threads.load(Ordering::SeqCst);
        PoolStats { threads, max: self.max, busy, stuck, queued, grown: threads - self.size }
    }

    /// The next task for pool thread `me`: its own deque, a batch from the injector, or one
    /// stolen from another pool thread (crossbeam-deque's `find_task`). A thread the pool grew
    /// by takes one task at a time (nobody steals from its deque).
    fn find(&self, me: usize, local: &Worker<Vec<u8>>) -> Option<Vec<u8>> {
        if me >= self.size {
            return std::iter::repeat_with(|| {
                self.injector.steal().or_else(|| self.stealers.iter().map(|s| s.steal()).collect())
            })
            .find(|s| !s.is_retry())
            .and_then(|s| s.success());
        }
        local.pop().or_else(|| {
            std::iter::repeat_with(|| {
                self.injector.steal_batch_and_pop(local).or_else(|| {
                    self.stealers.iter().enumerate().filter(|(i, _)| *i != me).map(|(_, s)| s.steal()).collect()
                })
            })
            .find(|s| !s.is_retry())
            .and_then(|s| s.success())
        })
    }

    /// Blocks until a task arrives (Some) or the pool stops (None).
    fn take(&self, me: usize, local: &Worker<Vec<u8>>) -> Option<Vec<u8>> {
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return None;
            }
            if let Some(t) = self.find(me, local) {
                return Some(t);
            }
            if self.spinning.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                let until = std::time::Instant::now() + SPIN;
                while self.injector.is_empty() && std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                self.spinning.store(0, Ordering::SeqCst);
                if !self.injector.is_empty() {
                    continue;
                }
            }
            let g = lock(&self.lock);
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // look again under the lock: a submit that saw no sleeper has pushed already
            if self.injector.is_empty() && !self.stopping.load(Ordering::Acquire) {
                // (a backstop only: submit wakes a sleeper. It was 100 ms: every voter of a
                // cluster runs a pool (its Raft storage), and 4 idle threads waking 10 times a
                // second, one of them spinning 50 us each time, were a third of an idle
                // voter's CPU time)
                let _ = self.cv.wait_timeout(g, IDLE_BACKSTOP);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Stops the pool: waits up to `timeout` seconds for its threads, joins those that
    /// finished and leaves the others (blocked in a task) detached.
    pub fn stop(&self, timeout: f64) -> usize {
        self.stopping.store(true, Ordering::Release);
        {
            let _g = lock(&self.lock);
            self.cv.notify_all();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.max(0.0));
        let mut finished = lock(&self.finished);
        while *finished < self.threads.load(Ordering::SeqCst) {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            finished = self.finished_cv.wait_timeout(finished, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let done = *finished;
        drop(finished);
        let threads = self.threads.load(Ordering::SeqCst);
        for h in lock(&self.handles).drain(..) {
            if done == threads || h.is_finished() {
                let _ = h.join();
            }
        }
        threads - done
    }
}

/// What `Pool::stats` counts (`luact.offload_stats`).
pub struct PoolStats {
    pub threads: usize,
    pub max: usize,
    pub busy: usize,
    pub stuck: usize,
    pub queued: usize,
    pub grown: usize,
}

fn run(pool: Arc<Pool>, me: usize, local: Worker<Vec<u8>>) {
    LOCAL.with(|l| *l.borrow_mut() = Some((pool.clone(), me, local, Vec::new())));
    let payload = pool.start_payload.as_slice();
    let outcome = std::panic::catch_unwind(|| -> std::result::Result<(), String> {
        let vm = crate::vm::WorkerVm::new()?;
        vm.call("luact.offload_worker", "main", me + 1, payload)
    });
    let msg = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(p) => Some(format!("panic in the core: {}", crate::util::panic_message(&p))),
    };
    if let Some(msg) = msg {
        crate::logger::write_line(format!("luact: offload thread {} failed: {msg}\n", me + 1).as_bytes()).ok();
    }
    LOCAL.with(|l| l.borrow_mut().take());
    *lock(&pool.finished) += 1;
    pool.finished_cv.notify_all();
}

/// On a pool thread: blocks for the next task and returns its bytes (valid until the next call),
/// or None once the pool stops. Err on a thread that is not a pool thread.
pub fn take_task() -> Result<Option<(*const u8, usize)>> {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let (pool, me, local, current) = l.as_mut().ok_or_else(|| Error::new(Status::BadArgument, "not an offload pool thread"))?;
        pool.set_busy(*me, false);
        match pool.take(*me, local) {
            Some(t) => {
                pool.set_busy(*me, true);
                *current = t;
                Ok(Some((current.as_ptr(), current.len())))
            }
            None => Ok(None),
        }
    })
}

/// On a pool thread: pushes a reply (one luact message) into thread `tid`'s inbox of the run
/// the pool belongs to; `Full` when that inbox is full (the caller retries).
pub fn reply(tid: usize, msg: &[u8]) -> Result<Status> {
    LOCAL.with(|l| {
        let l = l.borrow();
        let (pool, ..) = l.as_ref().ok_or_else(|| Error::new(Status::BadArgument, "not an offload pool thread"))?;
        let replies = pool.replies.upgrade().ok_or_else(|| Error::new(Status::NotRunning, "the run that submitted the task is over"))?;
        replies.reply(tid, msg)
    })
}
