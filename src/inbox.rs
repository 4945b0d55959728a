//! A thread's inbox: a bounded lock-free queue of byte messages that any thread may push into,
//! drained in batches by its owner, with a doorbell (an eventfd the owner's io_uring reads) that
//! is rung only when the owner is really asleep.
//!
//! Wake-up protocol (a Dekker pair, both sides SeqCst):
//! - owner:  `sleeping = true; fence; if !queue.is_empty() { sleeping = false; don't sleep }`
//! - sender: `queue.push(m); fence; if sleeping.swap(false) { write(eventfd) }`
//! so a message pushed after the owner's last check always finds `sleeping == true` and rings.
use crate::status::{Error, Result, Status};
use crossbeam_queue::ArrayQueue;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

pub struct Inbox {
    queue: ArrayQueue<Box<[u8]>>,
    sleeping: AtomicBool,
    doorbell: OwnedFd,
    /// Times a sender found the inbox full (for metrics and tests).
    pub full_count: AtomicU64,
    /// Times a sender rang the doorbell.
    pub rings: AtomicU64,
}

impl Inbox {
    pub fn new(capacity: usize) -> Result<Inbox> {
        if capacity == 0 {
            return Err(Error::new(Status::BadArgument, "inbox capacity must be > 0"));
        }
        // SAFETY: eventfd has no memory preconditions; we check the returned fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Inbox {
            queue: ArrayQueue::new(capacity),
            sleeping: AtomicBool::new(false),
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            doorbell: unsafe { OwnedFd::from_raw_fd(fd) },
            full_count: AtomicU64::new(0),
            rings: AtomicU64::new(0),
        })
    }

    pub fn doorbell_fd(&self) -> RawFd {
        self.doorbell.as_raw_fd()
    }

    /// Queues a copy of `msg`; `Status::Full` when the inbox holds `capacity` messages.
    pub fn push(&self, msg: &[u8]) -> Status {
        if self.queue.push(msg.into()).is_err() {
            self.full_count.fetch_add(1, Ordering::Relaxed);
            return Status::Full;
        }
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.ring();
        }
        Status::Ok
    }

    /// Wakes the owner unconditionally (used by stop).
    pub fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Relaxed);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd; a full counter (EAGAIN)
        // means a wake-up is already pending, which is all we want.
        unsafe { libc::write(self.doorbell.as_raw_fd(), &one as *const u64 as *const _, 8) };
    }

    pub fn pop(&self) -> Option<Box<[u8]>> {
        self.queue.pop()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Owner only: announce the intent to sleep. Returns false when messages arrived meanwhile
    /// (the owner must not sleep then).
    pub fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Owner only: back from sleep (or from a sleep that did not happen).
    pub fn woke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn refuses_when_full_and_keeps_order() {
        let inbox = Inbox::new(2).unwrap();
        assert_eq!(inbox.push(b"a"), Status::Ok);
        assert_eq!(inbox.push(b"b"), Status::Ok);
        assert_eq!(inbox.push(b"c"), Status::Full);
        assert_eq!(&*inbox.pop().unwrap(), b"a");
        assert_eq!(&*inbox.pop().unwrap(), b"b");
        assert!(inbox.pop().is_none());
    }

    #[test]
    fn rings_only_when_owner_sleeps() {
        let inbox = Inbox::new(8).unwrap();
        inbox.push(b"x");
        assert_eq!(inbox.rings.load(Ordering::Relaxed), 0);
        inbox.pop();
        assert!(inbox.prepare_sleep());
        inbox.push(b"y");
        assert_eq!(inbox.rings.load(Ordering::Relaxed), 1);
        inbox.push(b"z");
        assert_eq!(inbox.rings.load(Ordering::Relaxed), 1, "second push finds owner awake");
    }

    #[test]
    fn no_message_lost_between_threads() {
        let inbox = Arc::new(Inbox::new(1024).unwrap());
        let senders: Vec<_> = (0..4u8)
            .map(|s| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        let mut m = vec![s];
                        m.extend_from_slice(&i.to_le_bytes());
                        while inbox.push(&m) == Status::Full {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u32; 4];
        let mut got = 0;
        while got < 40_000 {
            if let Some(m) = inbox.pop() {
                let s = m[0] as usize;
                let i = u32::from_le_bytes(m[1..5].try_into().unwrap());
                assert_eq!(i, next[s], "per-sender order");
                next[s] += 1;
                got += 1;
            }
        }
        for s in senders {
            s.join().unwrap();
        }
    }
}
