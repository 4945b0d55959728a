//! Datagrams: a `udp://` listener's receive loop (one-way NOTIFY datagrams into this thread's
//! inbox; malformed ones are counted and dropped).
use super::*;

impl Transport {
    pub(super) fn arm_datagram(&mut self, ring: &mut Ring, slot: usize) {
        let l = &mut self.listeners[slot];
        let entry = opcode::Recv::new(types::Fd(l.fd), l.buf.as_mut_ptr(), l.buf.len() as u32)
            .build()
            .user_data(user_data(OP_DATAGRAM, slot, 0));
        ring.push(entry);
    }

    /// One udp:// datagram: exactly one NOTIFY frame; anything else is dropped and counted.
    pub(super) fn on_datagram(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], slot: usize, res: i32) {
        if !self.listeners.contains(slot) {
            return;
        }
        if res > 0 {
            let data = self.listeners[slot].buf[..res as usize].to_vec();
            let mut decoder = FrameDecoder::new(CLIENT_MAX_FRAME.min(self.max_frame));
            let mut input = &data[..];
            let msg = match decoder.decode(&mut input) {
                Ok(Some((h, body))) if h.kind == frame::KIND_NOTIFY && input.is_empty() => {
                    let head = edge::client_call_header(0, 0, 0, true, 0, 0.0);
                    let inner = edge::call_from_codec(&body, h.codec, self.ref_key.as_ref());
                    inner.ok().map(|b| {
                        let mut m = head;
                        m.extend_from_slice(&b);
                        m
                    })
                }
                _ => None,
            };
            let delivered = match msg {
                Some(m) => inboxes.get(self.tid.wrapping_sub(1)).is_some_and(|inbox| inbox.push(&m) == Status::Ok),
                None => false,
            };
            if !delivered {
                self.dropped_datagrams += 1;
            }
        }
        self.arm_datagram(ring, slot);
    }
}
