//! A thread's inbox: a bounded lock-free queue of byte entries that any thread may push into,
//! drained in batches by its owner, with a doorbell (an eventfd the owner's io_uring reads) that
//! is rung only when the owner is really asleep. An entry holds one or more luact messages (a
//! loop sends everything it has for one thread in a turn as one entry); the capacity bounds the
//! messages queued, not the entries, so batching does not loosen back-pressure.
//!
//! Wake-up protocol (a Dekker pair, both sides SeqCst):
//! - owner:  `sleeping = true; fence; if !queue.is_empty() { sleeping = false; don't sleep }`
//! - sender: `queue.push(m); fence; if sleeping.swap(false) { write(eventfd) }`
//! so a message pushed after the owner's last check always finds `sleeping == true` and rings.
use crate::status::{Error, Result, Status};
use crossbeam_queue::ArrayQueue;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Queued bytes and how many messages they hold.
pub struct Entry {
    pub bytes: Box<[u8]>,
    pub count: usize,
}

pub struct Inbox {
    queue: ArrayQueue<Entry>,
    capacity: usize,
    /// Messages queued (the sum of the entries' counts).
    queued: AtomicUsize,
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
            capacity,
            queued: AtomicUsize::new(0),
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

    /// Queues a copy of `msg` (one message); see `push_batch`.
    pub fn push(&self, msg: &[u8]) -> Status {
        self.push_batch(msg, 1)
    }

    /// Queues a copy of `bytes`, which hold `count` messages; `Status::Full` when they would
    /// take the inbox over `capacity` messages. An empty inbox takes any batch, so one larger
    /// than the capacity cannot be refused forever.
    pub fn push_batch(&self, bytes: &[u8], count: usize) -> Status {
        let before = self.queued.fetch_add(count, Ordering::AcqRel);
        let refused = (before > 0 && before + count > self.capacity)
            || self.queue.push(Entry { bytes: bytes.into(), count }).is_err();
        if refused {
            self.queued.fetch_sub(count, Ordering::AcqRel);
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

    pub fn pop(&self) -> Option<Entry> {
        let e = self.queue.pop()?;
        self.queued.fetch_sub(e.count, Ordering::AcqRel);
        Some(e)
    }

    /// Entries queued.
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
        assert_eq!(&*inbox.pop().unwrap().bytes, b"a");
        assert_eq!(&*inbox.pop().unwrap().bytes, b"b");
        assert!(inbox.pop().is_none());
    }

    #[test]
    fn capacity_counts_messages_not_entries() {
        let inbox = Inbox::new(4).unwrap();
        assert_eq!(inbox.push_batch(b"abc", 3), Status::Ok);
        assert_eq!(inbox.push_batch(b"de", 2), Status::Full, "3 + 2 messages > 4");
        assert_eq!(inbox.push(b"d"), Status::Ok);
        assert_eq!(inbox.push(b"e"), Status::Full);
        let e = inbox.pop().unwrap();
        assert_eq!((&*e.bytes, e.count), (&b"abc"[..], 3));
        assert_eq!(inbox.push_batch(b"xyz", 3), Status::Ok, "1 + 3 fit again");
    }

    #[test]
    fn an_empty_inbox_takes_an_oversized_batch() {
        let inbox = Inbox::new(2).unwrap();
        assert_eq!(inbox.push_batch(b"abcde", 5), Status::Ok);
        assert_eq!(inbox.push(b"f"), Status::Full);
        inbox.pop();
        assert_eq!(inbox.push(b"f"), Status::Ok);
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
            if let Some(Entry { bytes: m, .. }) = inbox.pop() {
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
