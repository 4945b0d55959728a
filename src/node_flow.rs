//! Flow control of one node connection, per receiving thread (pure state: no sockets, no
//! clocks but the times it is given).
//!
//! A node connection carries the messages of one sender thread for every thread of the
//! receiving node, in order. Without flow control, one receiving thread that stops taking
//! messages (a full inbox) would stop the receiver from reading the whole connection, and with
//! it every call and reply for the node's other threads (head-of-line blocking). So:
//!
//! - the **sender** may have at most a window of messages (and bytes) in flight for each
//!   receiving thread: sent, and not yet acknowledged as put into that thread's inbox
//!   (`Credit`); past it, `send` is refused (the Lua side raises `actor_overload`);
//! - the **receiver** keeps reading; messages for a thread whose inbox is full wait in order in
//!   the connection's `Overflow` (at most about one window per thread, since the sender keeps
//!   to it), and it acknowledges what it puts into an inbox with ACK frames (`Acks`): at once
//!   past `ACK_MSGS` / `ACK_BYTES`, otherwise within `ACK_DELAY`.
//!
//! Order is kept per (sender thread, receiving thread); messages for different receiving
//! threads no longer wait for each other.
use std::collections::VecDeque;

/// Bytes the sender may have in flight for one receiving thread (one message may exceed it
/// alone, when nothing else is in flight).
pub const WINDOW_BYTES: u64 = 16 * 1024 * 1024;
/// A receiver acknowledges at once when this many messages (or bytes) of one thread were put
/// into its inbox since the last ACK; anything less is acknowledged within `ACK_DELAY`.
pub const ACK_MSGS: u32 = 256;
pub const ACK_BYTES: u64 = 1024 * 1024;
pub const ACK_DELAY: f64 = 0.001;
/// The receiver stops reading a connection whose overflow holds more than this (a sender that
/// does not keep to its window, or many windows at once): TCP back-pressure, as before.
pub const OVERFLOW_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Messages for one thread's inbox: the bodies of consecutive MSG frames, concatenated (an inbox
/// entry may hold several luact messages; `count` says how many). `tid` is the inbox they go to;
/// `hdr` the thread the sender named (what its credit is counted by).
pub struct Delivery {
    pub tid: usize,
    pub hdr: u16,
    pub bytes: Vec<u8>,
    pub count: usize,
}

/// Sender side: messages and bytes in flight per receiving thread (indexed by the frame's
/// thread number).
#[derive(Default)]
pub struct Credit {
    used: Vec<(u32, u64)>,
}

impl Credit {
    /// Takes credit for one message of `bytes` to `thread`, or says what is in flight when the
    /// window (`max_msgs`, `WINDOW_BYTES`) is used up.
    pub fn take(&mut self, thread: u16, bytes: usize, max_msgs: usize) -> Result<(), (u32, u64)> {
        let i = thread as usize;
        if i >= self.used.len() {
            self.used.resize(i + 1, (0, 0));
        }
        let (msgs, held) = self.used[i];
        if msgs as usize >= max_msgs || (msgs > 0 && held + bytes as u64 > WINDOW_BYTES) {
            return Err((msgs, held));
        }
        self.used[i] = (msgs + 1, held + bytes as u64);
        Ok(())
    }

    /// Gives back what an ACK frame acknowledged (more than was taken counts as all of it).
    pub fn give_back(&mut self, thread: u16, msgs: u32, bytes: u64) {
        if let Some(u) = self.used.get_mut(thread as usize) {
            *u = (u.0.saturating_sub(msgs), u.1.saturating_sub(bytes));
        }
    }

    /// Messages in flight for `thread`.
    #[cfg(test)]
    pub fn in_flight(&self, thread: u16) -> u32 {
        self.used.get(thread as usize).map_or(0, |u| u.0)
    }
}

/// Receiver side: what was put into inboxes and not yet acknowledged, per sender's thread number.
#[derive(Default)]
pub struct Acks {
    pending: Vec<(u32, u64)>,
    /// When the oldest unacknowledged delivery happened (0: none).
    since: f64,
}

impl Acks {
    /// Records a delivery; true when an ACK is due at once (`take` them).
    pub fn delivered(&mut self, thread: u16, msgs: usize, bytes: usize, now: f64) -> bool {
        let i = thread as usize;
        if i >= self.pending.len() {
            self.pending.resize(i + 1, (0, 0));
        }
        let p = &mut self.pending[i];
        *p = (p.0.saturating_add(msgs as u32), p.1 + bytes as u64);
        if self.since == 0.0 {
            self.since = now;
        }
        p.0 >= ACK_MSGS || p.1 >= ACK_BYTES
    }

    /// When the pending acknowledgements must go out at the latest (None: nothing pending).
    pub fn due(&self) -> Option<f64> {
        (self.since > 0.0).then_some(self.since + ACK_DELAY)
    }

    /// Everything pending, as (thread, messages, bytes), and resets.
    pub fn take(&mut self) -> Vec<(u16, u32, u64)> {
        self.since = 0.0;
        let mut out = Vec::new();
        for (i, p) in self.pending.iter_mut().enumerate() {
            if p.0 > 0 || p.1 > 0 {
                out.push((i as u16, p.0, p.1));
                *p = (0, 0);
            }
        }
        out
    }
}

/// Receiver side: deliveries waiting for a full inbox, in arrival order.
#[derive(Default)]
pub struct Overflow {
    queue: VecDeque<Delivery>,
    bytes: u64,
}

impl Overflow {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether reading the connection must pause until some of it is delivered.
    pub fn is_over_limit(&self) -> bool {
        self.bytes > OVERFLOW_MAX_BYTES
    }

    /// Whether something for inbox `tid` is waiting (a new delivery for it must queue behind).
    pub fn holds(&self, tid: usize) -> bool {
        self.queue.iter().any(|d| d.tid == tid)
    }

    pub fn push(&mut self, d: Delivery) {
        self.bytes += d.bytes.len() as u64;
        self.queue.push_back(d);
    }

    /// Offers each waiting delivery to `push` (true: it went into its inbox), in order per inbox:
    /// once one for an inbox is refused, the later ones for it wait too. Calls `done` with each
    /// delivery that went in.
    pub fn retry(&mut self, mut push: impl FnMut(&Delivery) -> bool, mut done: impl FnMut(&Delivery)) {
        let mut refused: Vec<usize> = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for d in self.queue.drain(..) {
            if refused.contains(&d.tid) || !push(&d) {
                if !refused.contains(&d.tid) {
                    refused.push(d.tid);
                }
                kept.push_back(d);
            } else {
                self.bytes -= d.bytes.len() as u64;
                done(&d);
            }
        }
        self.queue = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_per_thread_and_comes_back_with_acks() {
        let mut c = Credit::default();
        for _ in 0..3 {
            c.take(2, 10, 3).unwrap();
        }
        assert_eq!(c.take(2, 10, 3), Err((3, 30)), "thread 2's window is used up");
        c.take(1, 10, 3).expect("thread 1 has its own window");
        c.give_back(2, 2, 20);
        assert_eq!(c.in_flight(2), 1);
        c.take(2, 10, 3).unwrap();
        c.give_back(9, 5, 5); // a thread never sent to: nothing happens
        c.give_back(2, 100, 1000);
        assert_eq!(c.in_flight(2), 0, "more than taken counts as all");
    }

    #[test]
    fn one_large_message_passes_an_empty_window() {
        let mut c = Credit::default();
        let big = WINDOW_BYTES as usize + 1;
        c.take(1, big, 100).expect("nothing in flight: a message larger than the window goes");
        assert!(c.take(1, 1, 100).is_err(), "then nothing more until it is acknowledged");
    }

    #[test]
    fn acks_are_due_at_a_threshold_or_after_a_delay() {
        let mut a = Acks::default();
        assert_eq!(a.due(), None);
        assert!(!a.delivered(3, 10, 100, 5.0));
        assert_eq!(a.due(), Some(5.0 + ACK_DELAY));
        assert!(a.delivered(3, ACK_MSGS as usize, 100, 5.1), "past ACK_MSGS: at once");
        assert!(!a.delivered(1, 1, 7, 5.2));
        assert_eq!(a.take(), vec![(1, 1, 7), (3, 10 + ACK_MSGS, 200)]);
        assert_eq!(a.due(), None);
        assert!(a.take().is_empty());
    }

    #[test]
    fn overflow_keeps_order_per_inbox_and_lets_others_pass() {
        let mut o = Overflow::default();
        let d = |tid, n: u8| Delivery { tid, hdr: tid as u16, bytes: vec![n; 4], count: 1 };
        o.push(d(2, 1));
        o.push(d(1, 2));
        o.push(d(2, 3));
        assert!(o.holds(2) && o.holds(1) && !o.holds(3));
        let mut went = Vec::new();
        // inbox 2 refuses its first: its second must not overtake it; inbox 1 takes its own
        o.retry(|x| x.tid != 2, |x| went.push(x.bytes[0]));
        assert_eq!(went, vec![2]);
        assert!(o.holds(2) && !o.holds(1));
        o.retry(|_| true, |x| went.push(x.bytes[0]));
        assert_eq!(went, vec![2, 1, 3]);
        assert!(o.is_empty() && !o.is_over_limit());
    }

    #[test]
    fn overflow_over_its_byte_limit_pauses_reading() {
        let mut o = Overflow::default();
        o.push(Delivery { tid: 1, hdr: 1, bytes: vec![0; OVERFLOW_MAX_BYTES as usize + 1], count: 1 });
        assert!(o.is_over_limit());
        o.retry(|_| true, |_| {});
        assert!(!o.is_over_limit());
    }
}
