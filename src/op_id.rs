//! One way to name an io_uring operation in its `user_data`, for every module that puts
//! operations on a thread's ring: `conn.rs` (user sockets' and the node transport's connections
//! and listeners), `datagram.rs` (user UDP sockets) and `transport/` (udp:// listeners). A
//! completion comes back with the `user_data` its operation was submitted with: the loop routes
//! it by its `Owner` (src/runtime.rs), the owner finds the slot and the kind of operation. A slot
//! gets a new generation (`next_gen`) each time it is taken, so a completion whose generation is
//! not its slot's current one is stale (the slot was freed, maybe reused) and its owner ignores
//! it.
//!
//! ```text
//!   bits 63..61  owner  (`Owner`; 0: no owner's, e.g. what Lua's own handles carry)
//!   bits 60..56  op     (the owner's kind of operation, 0..=31)
//!   bits 55..32  gen    (24 bits)
//!   bits 31..0   slot
//! ```
//!
//! The ring's doorbell read (`u64::MAX`, src/ring.rs) is handled by the ring and never routed.
//! The handles Lua holds for its sockets (src/socket.rs: slot + 9 bits of generation + two flag
//! bits) are not ring operations: they must fit 31 bits (a completion's `res` carries an
//! accepted connection's handle), and they reach Lua as the `user_data` of the completions the
//! sockets make up for Lua, where owner bits are 0.

/// Which module an operation belongs to (the value of bits 63..61). The values are the tag bits
/// each module used before this encoding was shared: bit 61 datagrams, bit 62 connections,
/// bit 63 the transport.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    /// User UDP sockets (`datagram.rs`, under `luact.socket`).
    Datagrams = 1,
    /// User stream sockets and listeners (`conn.rs`, under `socket.rs`).
    Sockets = 2,
    /// The node transport's own operations (a udp:// listener's receive).
    Transport = 4,
    /// The node transport's connections and listeners (`conn.rs`, under `transport/`).
    TransportLinks = 6,
}

const OWNER_SHIFT: u32 = 61;
const OP_SHIFT: u32 = 56;
const OP_MASK: u64 = 0x1f;
const GEN_SHIFT: u32 = 32;
/// Bits of generation a `user_data` carries; `next_gen` wraps there.
pub const GEN_BITS: u32 = 24;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const SLOT_MASK: u64 = 0xffff_ffff;

/// An operation's name, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OpId {
    pub owner: Owner,
    pub op: u64,
    pub slot: usize,
    pub gen: u32,
}

/// The `user_data` of operation `op` (0..=31) of `owner` on slot `slot` (below 2^32) of
/// generation `gen` (its low `GEN_BITS` bits are kept).
#[inline]
pub fn encode(owner: Owner, op: u64, slot: usize, gen: u32) -> u64 {
    debug_assert!(op <= OP_MASK, "op {op} does not fit");
    debug_assert!(slot as u64 <= SLOT_MASK, "slot {slot} does not fit");
    ((owner as u64) << OWNER_SHIFT) | ((op & OP_MASK) << OP_SHIFT) | ((gen as u64 & GEN_MASK) << GEN_SHIFT) | (slot as u64 & SLOT_MASK)
}

/// Whose operation `user_data` names (None: no owner's).
#[inline]
pub fn owner(user_data: u64) -> Option<Owner> {
    match user_data >> OWNER_SHIFT {
        1 => Some(Owner::Datagrams),
        2 => Some(Owner::Sockets),
        4 => Some(Owner::Transport),
        6 => Some(Owner::TransportLinks),
        _ => None,
    }
}

/// The operation `user_data` names (None: no owner's).
#[inline]
pub fn decode(user_data: u64) -> Option<OpId> {
    Some(OpId {
        owner: owner(user_data)?,
        op: (user_data >> OP_SHIFT) & OP_MASK,
        slot: (user_data & SLOT_MASK) as usize,
        gen: ((user_data >> GEN_SHIFT) & GEN_MASK) as u32,
    })
}

/// The generation after `gen`: wraps within `GEN_BITS` bits and skips 0 (0 names no slot's
/// generation: a cancel's own completion carries it).
#[inline]
pub fn next_gen(gen: u32) -> u32 {
    match (gen as u64 + 1) & GEN_MASK {
        0 => 1,
        g => g as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNERS: [Owner; 4] = [Owner::Datagrams, Owner::Sockets, Owner::Transport, Owner::TransportLinks];

    #[test]
    fn every_field_comes_back_at_its_limits() {
        for owner in OWNERS {
            for (op, slot, gen) in [(0, 0, 1), (31, u32::MAX as usize, (1 << GEN_BITS) - 1), (5, 12345, 77)] {
                let ud = encode(owner, op, slot, gen);
                assert_eq!(decode(ud), Some(OpId { owner, op, slot, gen }), "{owner:?} {op} {slot} {gen}");
            }
        }
    }

    #[test]
    fn keeps_the_tag_bits_each_owner_had() {
        assert_eq!(encode(Owner::Datagrams, 0, 0, 0), 1 << 61);
        assert_eq!(encode(Owner::Sockets, 0, 0, 0), 1 << 62);
        assert_eq!(encode(Owner::Transport, 0, 0, 0), 1 << 63);
        assert_eq!(encode(Owner::TransportLinks, 0, 0, 0), (1 << 63) | (1 << 62));
        // the connections' old layout: op at 56, 24 bits of generation at 32, the slot below
        assert_eq!(encode(Owner::Sockets, 3, 9, 0x12_3456), (1 << 62) | (3 << 56) | (0x12_3456 << 32) | 9);
    }

    #[test]
    fn a_generation_past_its_bits_wraps_and_names_no_other_field() {
        let ud = encode(Owner::Sockets, 2, 7, (1 << GEN_BITS) | 5);
        assert_eq!(decode(ud), Some(OpId { owner: Owner::Sockets, op: 2, slot: 7, gen: 5 }));
        assert_eq!(next_gen(1), 2);
        assert_eq!(next_gen((1 << GEN_BITS) - 1), 1);
        assert_eq!(next_gen(0), 1);
    }

    #[test]
    fn no_owner_for_lua_handles_the_doorbell_or_unused_tags() {
        // a Lua-side socket handle (31 bits) as user_data, the doorbell, the three unused values
        for ud in [0, 5, (1 << 31) - 1, u64::MAX, 3 << 61, 5 << 61, 7 << 61] {
            assert_eq!(owner(ud), None, "{ud:#x}");
            assert_eq!(decode(ud), None);
        }
    }

    #[test]
    fn a_stale_completion_differs_from_the_slots_next_operation() {
        // the same slot taken again gets the next generation: its user_data is not the old one's
        let (slot, gen) = (4, 41);
        let old = encode(Owner::Datagrams, 1, slot, gen);
        let new = encode(Owner::Datagrams, 1, slot, next_gen(gen));
        assert_ne!(old, new);
        assert_eq!(decode(old).unwrap().slot, decode(new).unwrap().slot);
    }
}
