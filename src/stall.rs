//! The stall watchdog: LuaJIT cannot preempt a method, so a method that holds its thread (a long
//! loop, a blocking call) stops everything else on it. A watchdog thread looks at every thread
//! of the runtime a few times per `stall_warn`: a thread that is not waiting for work and whose
//! loop has not turned (its metrics block's `LOOP_TURNS`, bumped each poll) for `stall_warn`
//! seconds is stalled. The watchdog counts it (`STALLS`), notes since when, and sends that
//! thread a signal; the signal handler, on the stalled thread, only sets a count hook on its VM
//! (`lua_sethook` is meant to be called from a signal handler: luajit.c interrupts a script this
//! way). At the VM's next interpreted instruction the hook clears itself and calls the Lua
//! function in the registry at `luact.stall` (lua/luact/stall.lua), which logs the actor, the
//! method, the time held and the traceback, in the stalled code's own coroutine. Each stall is
//! reported once. (A loop compiled by the JIT runs the hook only when it leaves its trace.)
//! While every thread waits for work nothing can stall, so the watchdog parks (an idle node
//! then wakes nobody: it used to look 40 times a second) until a thread leaves its wait
//! (`left_wait`, called by the loop) or, as a backstop, a second has passed.
use crate::metrics;
use mlua::ffi::{self, lua_Debug, lua_State};
use parking_lot::{Condvar, Mutex};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

thread_local! {
    /// A state of the VM this OS thread runs (what the signal handler hooks); null: none.
    static STATE: Cell<*mut lua_State> = const { Cell::new(std::ptr::null_mut()) };
}

/// The attached threads: tid -> the OS thread to signal (only while attached: detach clears
/// it under the same lock the watchdog holds while it signals, so no exited thread is signalled).
static THREADS: Mutex<Vec<Option<libc::pthread_t>>> = Mutex::new(Vec::new());

/// Since when each thread's current stall lasts (monotonic seconds; 0: none), for the report.
static SINCE: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// Whether the watchdog is parked (or about to be) because every thread waits for work.
static PARKED: AtomicBool = AtomicBool::new(false);
/// Held by the watchdog from its last look at the wait flags until it sleeps, and by a thread
/// waking it, so a thread that leaves its wait in between is not missed.
static PARK_LOCK: Mutex<()> = Mutex::new(());
static PARK: Condvar = Condvar::new();
/// The longest the watchdog stays parked without being woken (a backstop only).
const PARK_MAX: Duration = Duration::from_secs(1);

/// Called by a thread's loop right after it stopped waiting (its wait flag was stored 0 with
/// `SeqCst`, which pairs with the watchdog's `SeqCst` store of PARKED before it rereads the
/// flags: one of the two sees the other's store). Costs one load while the watchdog is awake.
#[inline]
pub fn left_wait() {
    if PARKED.load(Ordering::SeqCst) {
        let _guard = PARK_LOCK.lock();
        PARK.notify_one();
    }
}

/// Parks the watchdog while every thread 1..=n waits for work (`waiting(tid)`).
fn park_while_idle<W: Fn(usize) -> bool>(n: usize, waiting: &W) {
    if !(1..=n).all(waiting) {
        return;
    }
    let mut guard = PARK_LOCK.lock();
    PARKED.store(true, Ordering::SeqCst);
    if (1..=n).all(waiting) {
        PARK.wait_for(&mut guard, PARK_MAX);
    }
    PARKED.store(false, Ordering::SeqCst);
}

fn signal_number() -> i32 {
    libc::SIGRTMIN() + 4
}

/// Records the VM of the calling OS thread (a worker VM at creation, thread 1's at `require`).
pub fn set_state(l: *mut lua_State) {
    STATE.with(|s| s.set(l));
}

extern "C" fn on_signal(_sig: libc::c_int) {
    let l = STATE.with(|s| s.get());
    if !l.is_null() {
        // SAFETY: `l` is a live state of the VM this thread runs (cleared before it closes);
        // lua_sethook only stores the hook in the VM's global state, which is what makes it
        // safe to call from a signal handler (LuaJIT's own interpreter does so on SIGINT).
        unsafe { ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, 1) };
    }
}

unsafe extern "C-unwind" fn hook(l: *mut lua_State, _ar: *mut lua_Debug) {
    // SAFETY: called by the VM at a safe point with its running state; the stack is balanced
    // on every path (the report function is called protected and its error popped).
    unsafe {
        ffi::lua_sethook(l, None, 0, 0);
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"luact.stall".as_ptr());
        if ffi::lua_type(l, -1) == ffi::LUA_TFUNCTION {
            if ffi::lua_pcall(l, 0, 0, 0) != 0 {
                ffi::lua_settop(l, -2);
            }
        } else {
            ffi::lua_settop(l, -2);
        }
    }
}

fn install_handler() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // SAFETY: a plain sigaction with a handler that only reads a thread-local and calls
        // lua_sethook; SA_RESTART keeps interrupted syscalls going.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signal_number(), &sa, std::ptr::null_mut());
        }
    });
}

/// The calling OS thread runs thread `tid`'s loop from now on.
pub fn attach(tid: usize) {
    install_handler();
    let mut t = THREADS.lock();
    if t.len() <= tid {
        t.resize(tid + 1, None);
    }
    // SAFETY: pthread_self has no preconditions.
    t[tid] = Some(unsafe { libc::pthread_self() });
}

/// Thread `tid`'s loop ends (on that thread).
pub fn detach(tid: usize) {
    if let Some(slot) = THREADS.lock().get_mut(tid) {
        *slot = None;
    }
}

/// When thread tid's current stall began (monotonic seconds), or 0.
pub fn since(tid: usize) -> f64 {
    SINCE.lock().get(tid).copied().unwrap_or(0.0)
}

/// Starts the watchdog of a runtime of `n` threads (one OS thread, until `stopping()`) with the
/// threshold `warn`; `waiting(tid)` tells whether thread tid waits for work now.
pub fn watch<S, W>(n: usize, warn: f64, stopping: S, waiting: W) -> std::io::Result<()>
where
    S: Fn() -> bool + Send + 'static,
    W: Fn(usize) -> bool + Send + 'static,
{
    let period = (warn / 4.0).clamp(0.002, 0.05);
    std::thread::Builder::new().name("luact-watchdog".into()).spawn(move || {
        // per thread: (turns seen, since when, reported)
        let mut seen = vec![(-1.0f64, 0.0f64, false); n + 1];
        *SINCE.lock() = vec![0.0; n + 1];
        while !stopping() {
            park_while_idle(n, &waiting);
            std::thread::sleep(Duration::from_secs_f64(period));
            // (looked at again after the waits: once its runtime stopped, the thread numbers and
            // the metrics blocks may already be the next runtime's, which this watchdog does not
            // watch; it used to report that runtime's threads as stalled)
            if stopping() {
                break;
            }
            let now = crate::clock::monotonic();
            for tid in 1..=n {
                let waiting = waiting(tid);
                let turns = metrics::get(tid, metrics::LOOP_TURNS);
                let s = &mut seen[tid];
                if waiting || turns != s.0 {
                    *s = (turns, now, false);
                    continue;
                }
                if !s.2 && now - s.1 >= warn {
                    s.2 = true;
                    if let Some(x) = SINCE.lock().get_mut(tid) {
                        *x = s.1;
                    }
                    // (this thread is the only writer of the slot)
                    metrics::add(tid, metrics::STALLS, 1.0);
                    let threads = THREADS.lock();
                    if let Some(Some(pt)) = threads.get(tid) {
                        // SAFETY: the thread is attached (detach takes this lock first), so
                        // `pt` names a live thread of this process.
                        unsafe { libc::pthread_kill(*pt, signal_number()) };
                    }
                }
            }
        }
    })?;
    Ok(())
}
