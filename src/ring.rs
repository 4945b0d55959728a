//! One io_uring per worker thread: the place the thread sleeps. It waits for completions with a
//! timeout (the thread's next timer deadline), keeps a read armed on the inbox doorbell, and
//! hands every other completion to Lua as a `Completion` (sockets come here next).
use crate::inbox::Inbox;
use crate::status::Result;
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::VecDeque;

/// One completion handed to Lua (`luact_completion_t` in `lua/luact/ffi.lua`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Completion {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

/// `user_data` of the doorbell read; never handed to Lua.
const DOORBELL: u64 = u64::MAX;

pub struct Ring {
    ring: IoUring,
    doorbell_fd: i32,
    /// The eventfd read lands here; boxed so its address is stable while the kernel owns it.
    doorbell_buf: Box<u64>,
    /// Entries that did not fit in the submission queue yet.
    backlog: VecDeque<squeue::Entry>,
    /// Seconds spent spinning in `wait` that found nothing (the owner resets it: see
    /// runtime.rs's spin budget).
    pub wasted_spin: f64,
}

impl Ring {
    /// Must be called on the thread that will use it (the ring is single-issuer).
    pub fn new(entries: u32, doorbell_fd: i32) -> Result<Ring> {
        // COOP_TASKRUN: completions are posted when this thread enters the kernel, not by
        // interrupting it; TASKRUN_FLAG tells us (in user space) when such work is waiting, so the
        // spin loop can enter the kernel exactly then.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)?;
        let mut r = Ring { ring, doorbell_fd, doorbell_buf: Box::new(0), backlog: VecDeque::new(), wasted_spin: 0.0 };
        r.arm_doorbell();
        Ok(r)
    }

    fn arm_doorbell(&mut self) {
        let entry = opcode::Read::new(
            types::Fd(self.doorbell_fd),
            &mut *self.doorbell_buf as *mut u64 as *mut u8,
            8,
        )
        .build()
        .user_data(DOORBELL);
        self.push(entry);
    }

    /// Queues a submission entry; buffers it if the queue is full.
    ///
    /// The caller keeps every buffer the entry points to alive until its completion arrives.
    pub fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: the entries we build point at buffers owned by this Ring or by the caller
        // until completion (see the doc comment above).
        if !self.backlog.is_empty() || unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: as in `push`.
            if unsafe { self.ring.submission().push(entry) }.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// Submits what is queued and collects completions into `out`. When `timeout` > 0 and
    /// nothing is ready (no completion, empty inbox), first spins for up to `spin` seconds, then
    /// sleeps in the kernel until a completion, the doorbell, or the timeout. Returns how many
    /// completions were written; the inbox is the caller's to drain.
    pub fn wait(&mut self, inbox: &Inbox, timeout: f64, spin: f64, out: &mut [Completion]) -> Result<usize> {
        self.flush_backlog();
        // A doorbell completion counts as work: it means "look again" (a message, or stop).
        let (mut n, mut rang) = self.collect(out);
        if n == 0 && !rang && timeout > 0.0 && inbox.len() == 0 {
            if spin > 0.0 {
                // submit what is queued (a syscall only when there is something: this runs every
                // time the thread runs out of work, once per message in a ping-pong)
                if self.must_enter() {
                    self.ring.submit()?;
                }
                let until = crate::clock::monotonic() + spin.min(timeout);
                loop {
                    if self.must_enter() {
                        self.ring.submit()?; // runs deferred task work: socket completions appear
                    }
                    (n, rang) = self.collect(out);
                    if n > 0 || rang || inbox.len() > 0 {
                        break;
                    }
                    if crate::clock::monotonic() >= until {
                        self.wasted_spin += spin.min(timeout);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            if n == 0 && !rang && inbox.prepare_sleep() {
                let secs = timeout.min(3600.0);
                let ts = types::Timespec::new()
                    .sec(secs.trunc() as u64)
                    .nsec(((secs - secs.trunc()) * 1e9) as u32);
                let args = types::SubmitArgs::new().timespec(&ts);
                let waited = self.ring.submitter().submit_with_args(1, &args);
                inbox.woke();
                match waited {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        } else if self.must_enter() {
            self.ring.submit()?;
        }
        if n < out.len() {
            n += self.collect(&mut out[n..]).0;
        }
        Ok(n)
    }

    /// Whether a non-waiting turn needs io_uring_enter: entries to submit, deferred task work,
    /// or overflowed completions. Otherwise a busy loop turn makes no syscall at all.
    fn must_enter(&mut self) -> bool {
        let mut sq = self.ring.submission();
        sq.sync();
        !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
    }

    /// Moves completions into `out`; returns how many, and whether the doorbell rang (its read
    /// is re-armed then).
    fn collect(&mut self, out: &mut [Completion]) -> (usize, bool) {
        let mut n = 0;
        let mut rang = false;
        {
            let cq = self.ring.completion();
            for cqe in cq {
                if cqe.user_data() == DOORBELL {
                    rang = true;
                    continue;
                }
                out[n] = Completion { user_data: cqe.user_data(), res: cqe.result(), flags: cqe.flags() };
                n += 1;
                if n == out.len() {
                    break;
                }
            }
        }
        if rang {
            self.arm_doorbell();
        }
        (n, rang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_until_timeout_when_idle() {
        let inbox = Inbox::new(4).unwrap();
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let mut out = [Completion::default(); 8];
        let t0 = crate::clock::monotonic();
        assert_eq!(ring.wait(&inbox, 0.05, 0.0, &mut out).unwrap(), 0);
        assert!(crate::clock::monotonic() - t0 >= 0.045);
    }

    #[test]
    fn doorbell_wakes_a_sleeping_owner() {
        let inbox = std::sync::Arc::new(Inbox::new(4).unwrap());
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let sender = inbox.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            sender.push(b"hi");
        });
        let mut out = [Completion::default(); 8];
        let t0 = crate::clock::monotonic();
        ring.wait(&inbox, 5.0, 0.0, &mut out).unwrap();
        let waited = crate::clock::monotonic() - t0;
        t.join().unwrap();
        assert!(waited < 2.0, "woke by doorbell, not timeout ({waited})");
        assert_eq!(&*inbox.pop().unwrap().bytes, b"hi");
    }
}
