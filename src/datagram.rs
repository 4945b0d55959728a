//! A thread's UDP sockets (`luact.socket.udp`) on its io_uring: one receive in flight per
//! socket (its buffer, address and `msghdr` owned by the operation until it completes),
//! received datagrams queued for Lua (at most `MAX_QUEUED`; past it new ones are dropped, as
//! the network may drop them), and `sendto` as a `SendMsg` operation that owns a copy of its datagram until it
//! completes (at most `MAX_SENDING` bytes in flight per socket). A receive is named by its
//! socket's slot, a send by its own slot among the sends in flight; both carry generations
//! (`op_id.rs`): a completion for a freed (or freed and reused) slot is ignored.
use crate::conn::SockAddr;
use crate::op_id::{self, OpId, Owner};
use crate::ring::Ring;
use crate::status::{Error, Result, Status};
use io_uring::{opcode, types};
use slab::Slab;
use std::collections::VecDeque;

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;

/// Largest UDP payload.
const DATAGRAM_MAX: usize = 65_536;
/// Received datagrams a socket keeps for its reader.
pub const MAX_QUEUED: usize = 1024;
/// Bytes of datagrams a socket may have in flight to the kernel.
pub const MAX_SENDING: usize = 4 << 20;

/// What the kernel reads or writes while one operation is in flight.
struct MsgOp {
    buf: Vec<u8>,
    addr: SockAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl MsgOp {
    fn new(buf: Vec<u8>, addr: SockAddr) -> Box<MsgOp> {
        // SAFETY: iovec and msghdr are plain C structs; all-zero is a valid value for both.
        let mut op = Box::new(MsgOp { buf, addr, iov: unsafe { std::mem::zeroed() }, msg: unsafe { std::mem::zeroed() } });
        // the pointers go into the box itself: it does not move until the operation completes
        op.iov.iov_base = op.buf.as_mut_ptr() as *mut libc::c_void;
        op.iov.iov_len = op.buf.len();
        op.msg.msg_name = op.addr.storage_mut() as *mut libc::c_void;
        op.msg.msg_namelen = op.addr.len_for_msg();
        op.msg.msg_iov = &mut op.iov;
        op.msg.msg_iovlen = 1;
        op
    }
}

struct Udp {
    fd: i32,
    gen: u32,
    recv: Option<Box<MsgOp>>,
    recv_inflight: bool,
    queue: VecDeque<(Vec<u8>, SockAddr)>,
    /// Its sends in flight (in `Datagrams::sends`) and their bytes.
    sends: usize,
    sending_bytes: usize,
    closing: bool,
}

/// A send in flight: its socket, its generation, and the datagram the kernel reads.
struct SendInFlight {
    sock: usize,
    gen: u32,
    op: Box<MsgOp>,
}

#[derive(Default)]
pub struct Datagrams {
    socks: Slab<Udp>,
    /// Every socket's sends in flight, by the slot their `user_data` names.
    sends: Slab<SendInFlight>,
    next_gen: u32,
    /// Sockets with a new datagram for Lua.
    events: VecDeque<usize>,
    /// The datagram Lua took last (its bytes stay valid until the next take).
    pub current: Option<(Vec<u8>, SockAddr)>,
}

fn user_data(op: u64, slot: usize, gen: u32) -> u64 {
    op_id::encode(Owner::Datagrams, op, slot, gen)
}

impl Datagrams {
    /// A UDP socket bound to `addr` (port 0: any free port); returns its slot.
    pub fn open(&mut self, ring: &mut Ring, addr: SockAddr) -> Result<usize> {
        // SAFETY: plain syscalls on a fresh descriptor we own; results are checked.
        let fd = unsafe { libc::socket(addr.family(), libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::new(Status::Os, format!("socket: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: `addr` is a valid socket address for the call.
        if unsafe { libc::bind(fd, addr.ptr(), addr.socklen()) } < 0 {
            let e = Error::new(Status::Os, format!("bind {}: {}", addr.text(), std::io::Error::last_os_error()));
            // SAFETY: ours, unused.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        self.next_gen = op_id::next_gen(self.next_gen);
        let gen = self.next_gen;
        let slot = self.socks.insert(Udp {
            fd,
            gen,
            recv: None,
            recv_inflight: false,
            queue: VecDeque::new(),
            sends: 0,
            sending_bytes: 0,
            closing: false,
        });
        self.arm_recv(ring, slot);
        Ok(slot)
    }

    pub fn gen_of(&self, slot: usize) -> Option<u32> {
        self.socks.get(slot).filter(|u| !u.closing).map(|u| u.gen)
    }

    pub fn local_addr(&self, slot: usize) -> Option<SockAddr> {
        SockAddr::of_fd(self.socks.get(slot)?.fd, false)
    }

    fn arm_recv(&mut self, ring: &mut Ring, slot: usize) {
        let u = &mut self.socks[slot];
        if u.recv_inflight || u.closing {
            return;
        }
        let mut op = MsgOp::new(vec![0u8; DATAGRAM_MAX], SockAddr::empty());
        let entry = opcode::RecvMsg::new(types::Fd(u.fd), &mut op.msg).build().user_data(user_data(OP_RECV, slot, u.gen));
        u.recv = Some(op);
        u.recv_inflight = true;
        ring.push(entry);
    }

    /// Queues `data` to `to`; false when the socket has `MAX_SENDING` bytes in flight already.
    pub fn sendto(&mut self, ring: &mut Ring, slot: usize, data: &[u8], to: SockAddr) -> Result<bool> {
        let u = self.socks.get_mut(slot).ok_or_else(|| Error::new(Status::BadArgument, "no such udp socket"))?;
        if data.len() > DATAGRAM_MAX - 8 - 20 {
            return Err(Error::new(Status::BadArgument, "a datagram is at most 65 507 bytes"));
        }
        if u.sending_bytes + data.len() > MAX_SENDING {
            return Ok(false);
        }
        let mut op = MsgOp::new(data.to_vec(), to);
        self.next_gen = op_id::next_gen(self.next_gen);
        let gen = self.next_gen;
        let s = self.sends.vacant_key();
        let entry = opcode::SendMsg::new(types::Fd(u.fd), &mut op.msg).build().user_data(user_data(OP_SEND, s, gen));
        self.sends.insert(SendInFlight { sock: slot, gen, op });
        u.sends += 1;
        u.sending_bytes += data.len();
        ring.push(entry);
        Ok(true)
    }

    /// Takes the next received datagram into `current`; false when none is queued.
    pub fn take(&mut self, slot: usize) -> bool {
        self.current = self.socks.get_mut(slot).and_then(|u| u.queue.pop_front());
        self.current.is_some()
    }

    pub fn close(&mut self, ring: &mut Ring, slot: usize) {
        let Some(u) = self.socks.get_mut(slot) else { return };
        if u.closing {
            return;
        }
        u.closing = true;
        u.queue.clear();
        if u.recv_inflight {
            ring.push(opcode::AsyncCancel::new(user_data(OP_RECV, slot, u.gen)).build().user_data(user_data(OP_CANCEL, slot, 0)));
        }
        self.maybe_free(slot);
    }

    fn maybe_free(&mut self, slot: usize) {
        let Some(u) = self.socks.get(slot) else { return };
        if u.closing && !u.recv_inflight && u.sends == 0 {
            // SAFETY: ours, and no operation uses it any more.
            unsafe { libc::close(u.fd) };
            self.socks.remove(slot);
        }
    }

    pub fn on_completion(&mut self, ring: &mut Ring, user_data: u64, res: i32) {
        let Some(OpId { op, slot, gen, .. }) = op_id::decode(user_data) else { return };
        if op == OP_SEND {
            if !self.sends.get(slot).is_some_and(|s| s.gen == gen) {
                return;
            }
            let done = self.sends.remove(slot);
            if let Some(u) = self.socks.get_mut(done.sock) {
                u.sends -= 1;
                u.sending_bytes -= done.op.buf.len();
            }
            return self.maybe_free(done.sock);
        }
        if op == OP_CANCEL || !self.socks.get(slot).is_some_and(|u| u.gen == gen) {
            return;
        }
        let u = &mut self.socks[slot];
        u.recv_inflight = false;
        let op = u.recv.take();
        if u.closing {
            return self.maybe_free(slot);
        }
        if res >= 0 {
            if let Some(mut op) = op {
                if u.queue.len() < MAX_QUEUED {
                    op.buf.truncate(res as usize);
                    let mut from = op.addr;
                    from.set_len(op.msg.msg_namelen);
                    u.queue.push_back((std::mem::take(&mut op.buf), from));
                    self.events.push_back(slot);
                } // else: the reader is MAX_QUEUED datagrams behind; this one is dropped
            }
        }
        self.arm_recv(ring, slot);
    }

    pub fn pop_event(&mut self) -> Option<usize> {
        self.events.pop_front()
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Closes every descriptor (the thread is leaving); buffers of operations in flight are
    /// leaked, not freed: the kernel may still write into them until the ring is gone.
    pub fn shutdown_all(&mut self) {
        for (_, u) in self.socks.iter_mut() {
            // SAFETY: ours.
            unsafe { libc::close(u.fd) };
            if u.recv_inflight {
                if let Some(op) = u.recv.take() {
                    std::mem::forget(op);
                }
            }
        }
        for (_, send) in std::mem::take(&mut self.sends) {
            std::mem::forget(send.op);
        }
        self.socks.clear();
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::Inbox;
    use crate::ring::Completion;

    /// Runs the ring until `done` (at most 2 s), handing this module's completions to `d` and
    /// keeping their user_data in `seen`.
    fn pump(ring: &mut Ring, inbox: &Inbox, d: &mut Datagrams, seen: &mut Vec<u64>, done: impl Fn(&Datagrams) -> bool) {
        let mut out = vec![Completion::default(); 64];
        for _ in 0..200 {
            if done(d) {
                return;
            }
            let n = ring.wait(inbox, 0.01, 0.0, &mut out).unwrap();
            for c in &out[..n] {
                if op_id::owner(c.user_data) == Some(Owner::Datagrams) {
                    seen.push(c.user_data);
                    d.on_completion(ring, c.user_data, c.res);
                }
            }
        }
        panic!("not done within 2 s");
    }

    fn first(seen: &[u64], op: u64) -> u64 {
        *seen.iter().find(|ud| op_id::decode(**ud).unwrap().op == op).expect("a completion of that kind")
    }

    #[test]
    fn a_stale_send_or_receive_completion_touches_nothing() {
        let inbox = Inbox::new(4).unwrap();
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let mut d = Datagrams::default();
        let s = d.open(&mut ring, SockAddr::inet("127.0.0.1:0").unwrap()).unwrap();
        let to = d.local_addr(s).unwrap();
        assert!(d.sendto(&mut ring, s, b"ping", to).unwrap());
        assert_eq!(d.socks[s].sending_bytes, 4);
        let mut seen = Vec::new();
        pump(&mut ring, &inbox, &mut d, &mut seen, |d| d.has_events() && d.sends.is_empty());
        assert!(d.take(s));
        assert_eq!(d.current.as_ref().unwrap().0, b"ping");
        assert_eq!((d.socks[s].sends, d.socks[s].sending_bytes), (0, 0));
        // a new send takes the freed send slot with a new generation: the old send's completion
        // again (duplicated or late) must not free it
        let old_send = first(&seen, OP_SEND);
        assert!(d.sendto(&mut ring, s, b"pong!", to).unwrap());
        assert_eq!(op_id::decode(old_send).unwrap().slot, d.sends.iter().next().unwrap().0);
        d.on_completion(&mut ring, old_send, 4);
        assert_eq!((d.sends.len(), d.socks[s].sends, d.socks[s].sending_bytes), (1, 1, 5));
        // closed and freed once its operations are done; a new socket takes the slot: the old
        // socket's receive completion again must not reach it
        let old_recv = first(&seen, OP_RECV);
        d.close(&mut ring, s);
        pump(&mut ring, &inbox, &mut d, &mut seen, |d| d.socks.is_empty() && d.sends.is_empty());
        while d.pop_event().is_some() {}
        let s2 = d.open(&mut ring, SockAddr::inet("127.0.0.1:0").unwrap()).unwrap();
        assert_eq!(s2, s);
        d.on_completion(&mut ring, old_recv, 4); // "received 4 bytes" for the old socket
        assert!(!d.has_events());
        assert!(d.socks[s2].recv_inflight && d.socks[s2].queue.is_empty());
        d.shutdown_all();
    }
}
