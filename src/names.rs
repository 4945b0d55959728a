//! The process-wide table of named (virtual) actors: vid -> actor addresses, shared by every
//! thread, with a round-robin cursor per name for `multi_actor` names. (The cluster replaces
//! this with a Raft-replicated registry; `lua/luact/actor/names.lua` is the only user.)
use crate::status::{Error, Result, Status};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
// parking_lot's RwLock: no poisoning to unwrap, a one-word lock, and read locks that take one
// atomic operation uncontended (every thread resolves names through this table).
use parking_lot::RwLock;

/// An actor address as the Lua side knows it (`lua/luact/actor/ref.lua`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Address {
    pub machine: f64,
    pub thread: u32,
    pub epoch: u32,
    pub local: f64,
}

struct Entry {
    multi: bool,
    actors: Vec<Address>,
    cursor: AtomicUsize,
}

static NAMES: RwLock<Option<HashMap<Vec<u8>, Entry>>> = parking_lot::const_rwlock(None);

/// Grows with every change of the table: a thread may cache what a name resolved to while the
/// version stays the same (lua/luact/actor/names.lua does, for calls by name in a cluster).
static VERSION: AtomicU64 = AtomicU64::new(1);

fn changed() {
    VERSION.fetch_add(1, Ordering::Release);
}

pub fn version() -> u64 {
    VERSION.load(Ordering::Acquire)
}

/// How many actors `vid` has now (0 when unknown).
pub fn count(vid: &[u8]) -> usize {
    NAMES.read().as_ref().and_then(|n| n.get(vid)).map_or(0, |e| e.actors.len())
}

/// Status of `add` for a name that is taken (and not multi on both sides).
pub const TAKEN: i32 = 1;

pub fn clear() {
    *NAMES.write() = None;
    changed();
}

/// Adds `addr` under `vid`; `Ok(TAKEN)` when the name exists and either side is not multi.
pub fn add(vid: &[u8], addr: Address, multi: bool) -> Result<i32> {
    if vid.is_empty() {
        return Err(Error::new(Status::BadArgument, "empty vid"));
    }
    let mut names = NAMES.write();
    let names = names.get_or_insert_with(HashMap::new);
    match names.get_mut(vid) {
        Some(entry) => {
            if !(entry.multi && multi) {
                return Ok(TAKEN);
            }
            if !entry.actors.contains(&addr) {
                entry.actors.push(addr);
            }
        }
        None => {
            names.insert(vid.to_vec(), Entry { multi, actors: vec![addr], cursor: AtomicUsize::new(0) });
        }
    }
    changed();
    Ok(0)
}

/// Replaces every actor of `vid` with `addrs` (the cluster's registry is the source of truth:
/// thread 1 mirrors each change of a name into this table); no addresses removes the name.
pub fn set(vid: &[u8], addrs: &[Address], multi: bool) -> Result<()> {
    if vid.is_empty() {
        return Err(Error::new(Status::BadArgument, "empty vid"));
    }
    let mut names = NAMES.write();
    let names = names.get_or_insert_with(HashMap::new);
    changed();
    if addrs.is_empty() {
        names.remove(vid);
        return Ok(());
    }
    match names.get_mut(vid) {
        Some(entry) => {
            entry.multi = multi;
            entry.actors = addrs.to_vec();
        }
        None => {
            names.insert(vid.to_vec(), Entry { multi, actors: addrs.to_vec(), cursor: AtomicUsize::new(0) });
        }
    }
    Ok(())
}

/// The next actor of `vid` (round robin), or None.
pub fn pick(vid: &[u8]) -> Option<Address> {
    let names = NAMES.read();
    let entry = names.as_ref()?.get(vid)?;
    let n = entry.actors.len();
    if n == 0 {
        return None;
    }
    let i = entry.cursor.fetch_add(1, Ordering::Relaxed) % n;
    Some(entry.actors[i])
}

/// Removes one actor (`Some`) or the whole name (`None`); returns how many actors were removed.
pub fn remove(vid: &[u8], addr: Option<Address>) -> usize {
    let mut names = NAMES.write();
    changed();
    let Some(names) = names.as_mut() else { return 0 };
    let Some(entry) = names.get_mut(vid) else { return 0 };
    let removed = match addr {
        None => entry.actors.len(),
        Some(a) => {
            let before = entry.actors.len();
            entry.actors.retain(|x| *x != a);
            before - entry.actors.len()
        }
    };
    if addr.is_none() || entry.actors.is_empty() {
        names.remove(vid);
    }
    removed
}

/// Copies up to `out.len()` actors of `vid` into `out`; returns how many `vid` has.
pub fn list(vid: &[u8], out: &mut [Address]) -> usize {
    let names = NAMES.read();
    let Some(entry) = names.as_ref().and_then(|n| n.get(vid)) else { return 0 };
    for (slot, a) in out.iter_mut().zip(entry.actors.iter()) {
        *slot = *a;
    }
    entry.actors.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(local: f64) -> Address {
        Address { machine: 1.0, thread: 1, epoch: 7, local }
    }

    #[test]
    fn names_are_exclusive_unless_multi_and_spread_round_robin() {
        let vid = b"/test/names";
        assert_eq!(add(vid, a(1.0), false).unwrap(), 0);
        assert_eq!(add(vid, a(2.0), false).unwrap(), TAKEN);
        assert_eq!(add(vid, a(2.0), true).unwrap(), TAKEN);
        assert_eq!(remove(vid, None), 1);
        assert_eq!(add(vid, a(1.0), true).unwrap(), 0);
        assert_eq!(add(vid, a(2.0), true).unwrap(), 0);
        let picks: Vec<f64> = (0..4).map(|_| pick(vid).unwrap().local).collect();
        assert_eq!(picks, vec![1.0, 2.0, 1.0, 2.0]);
        assert_eq!(remove(vid, Some(a(1.0))), 1);
        assert_eq!(pick(vid).unwrap().local, 2.0);
        assert_eq!(remove(vid, Some(a(2.0))), 1);
        assert!(pick(vid).is_none());
    }
}
