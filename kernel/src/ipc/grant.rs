//! Page grants: large payloads shared, never copied. The sender's pages become shared
//! frames (reference-counted); a grant holds them for one process, the one attached at
//! the channel's other end, until it maps them (grant_map) or either of the two exits. Every mapping holds
//! its own reference, so sender and receiver can unmap or exit in any order and the
//! frames are freed after the last one.
//!
//! The limits (per sender, in all) are checked under the same hold of the table's lock
//! that inserts the grant, so concurrent senders cannot overshoot them together.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::cap::Rights;

use crate::cap::Presented;
use zen_abi::syscall::Error;
use zen_cap::CapError;

use super::check;
use super::Party;
use crate::arch::phys::SharedFrame;
use crate::cap::denied;
use crate::mm::quota::Charge;
use crate::sync::IrqMutex;

/// Unmapped grants one process may have made (the rest wait for the receiver).
pub const MAX_GRANTS_PER_SENDER: usize = 64;
/// Unmapped grants in the whole system.
pub const MAX_GRANTS: usize = 1024;
/// Largest grant in pages (as many as one process may map).
const MAX_GRANT_PAGES: u64 = zen_abi::syscall::MAP_LIMIT_PAGES;

/// Pages listed in all unmapped grants together: a grant's page list outlives its
/// sender (it waits for the receiver), so per-sender quotas alone would let senders
/// that exit one after another fill the kernel heap. At most a quarter of the heap
/// (8 bytes a page): 4 MiB of lists on a 256 MiB machine.
fn max_listed_pages() -> u64 {
    crate::mm::heap_size() / 4 / 8
}
static LISTED_PAGES: AtomicU64 = AtomicU64::new(0);

/// A share of `max_listed_pages`, given back when the grant goes.
struct Listed(u64);

impl Listed {
    fn take(pages: u64) -> Result<Listed, Error> {
        LISTED_PAGES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                cur.checked_add(pages).filter(|&t| t <= max_listed_pages())
            })
            .map(|_| Listed(pages))
            .map_err(|_| Error::NoMemory)
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        LISTED_PAGES.fetch_sub(self.0, Ordering::AcqRel);
    }
}

struct Grant {
    from: u32,
    to: u32,
    /// The channel and end it was sent to: only a token of that end maps it, so a
    /// process that receives grants from many peers (a server) cannot be made to map
    /// one peer's grant on another's behalf (ids are guessable).
    chan: u64,
    end: usize,
    len: u64,
    rights: Rights,
    frames: Vec<Arc<SharedFrame>>,
    /// The sender's kernel memory for this grant (its page list), until it is mapped
    /// or dropped, even if the sender has exited by then.
    _charge: Charge,
    /// Its share of the system-wide budget of listed pages.
    _listed: Listed,
}

static GRANTS: IrqMutex<BTreeMap<u64, Grant>> = IrqMutex::new(BTreeMap::new());
static NEXT_GRANT: AtomicU64 = AtomicU64::new(1);

/// The rights a grant may carry: READ, or READ | WRITE.
fn grant_rights(bits: u64) -> Result<Rights, Error> {
    let r = Rights::from_bits(bits).ok_or(Error::InvalidArgument)?;
    if !r.contains(Rights::READ) || !Rights::READ.union(Rights::WRITE).contains(r) {
        return Err(Error::InvalidArgument);
    }
    Ok(r)
}

/// grant_create: shares the caller's pages with the process at the channel's other end.
pub fn grant_create(
    me: &dyn Party,
    addr: u64,
    len: u64,
    rights: u64,
    chan_slot: &Presented,
) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::GrantCreate as u16;
    let (chan, end, _) = check(me, chan_slot, Rights::SEND, call)?;
    let rights = grant_rights(rights)?;
    let pages = len.div_ceil(4096);
    if len == 0 || !addr.is_multiple_of(4096) || pages > MAX_GRANT_PAGES {
        return Err(Error::InvalidArgument);
    }
    let to = chan.receiver_at(1 - end);
    if to == 0 {
        return Err(Error::NoPeer);
    }
    let receiver = me.find(to).ok_or(Error::NoPeer)?;
    crate::prof::mark(crate::prof::Step::Grant);
    crate::policy::grant(me.program(), receiver.program(), to)?;
    crate::prof::mark(crate::prof::Step::Policy);
    drop(receiver);
    let full = |g: &BTreeMap<u64, Grant>| {
        g.len() >= MAX_GRANTS
            || g.values().filter(|g| g.from == me.pid()).count() >= MAX_GRANTS_PER_SENDER
    };
    // A cheap early refusal before any page is touched; the binding check is below.
    if full(&GRANTS.lock()) {
        return Err(Error::NoMemory);
    }
    // The page list (8 bytes a page) is charged to the sender before it is made:
    // re-granting the same pages again and again costs every time.
    let charge = Charge::take(me.quota(), pages * 8 + core::mem::size_of::<Grant>() as u64)?;
    let listed = Listed::take(pages)?;
    let frames = me.share_pages(addr, pages, rights.contains(Rights::WRITE))?;
    let id = NEXT_GRANT.fetch_add(1, Ordering::Relaxed);
    let mut t = GRANTS.lock();
    // The limits again, and the receiver still alive, under the lock hold that
    // inserts: a process drops its grants (`release_grants_of`) only after it stops
    // being found, so a grant is either refused here or dropped there, never left for
    // nobody. (Refused here, the pages stay shared in the sender, as own memory.)
    if full(&t) {
        drop(t);
        drop(frames);
        return Err(Error::NoMemory);
    }
    if me.find(to).is_none() {
        drop(t);
        drop(frames);
        return Err(Error::NoPeer);
    }
    t.insert(
        id,
        Grant {
            from: me.pid(),
            to,
            chan: chan.id(),
            end: 1 - end,
            len,
            rights,
            frames,
            _charge: charge,
            _listed: listed,
        },
    );
    Ok(id)
}

/// grant_map: maps a grant made for the caller and sent on the channel end `chan_slot`
/// names (needs RECV on it); the address.
pub fn grant_map(
    me: &dyn Party,
    id: u64,
    len: u64,
    rights: u64,
    chan_slot: &Presented,
) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::GrantMap as u16;
    let (chan, end, _) = check(me, chan_slot, Rights::RECV, call)?;
    let g = {
        let mut t = GRANTS.lock();
        match t.get(&id) {
            Some(g) if g.to == me.pid() && g.chan == chan.id() && g.end == end => {
                if g.len != len || g.rights.bits() != rights {
                    return Err(Error::InvalidArgument);
                }
            }
            // Someone else's grant, or none: as a bad token.
            _ => return Err(denied(call, id, CapError::UnknownObject)),
        }
        t.remove(&id).expect("checked above")
    };
    match me.map_granted(&g.frames, g.rights.contains(Rights::WRITE)) {
        Ok(va) => Ok(va),
        Err(e) => {
            // Not mapped: the grant stays for another try, if its sender still lives.
            // Checked under the table's lock, as grant_create checks the receiver: a
            // sender drops its grants only after it stops being found, so one put back
            // here is either found by that sweep or not put back at all.
            let mut t = GRANTS.lock();
            if me.find(g.from).is_some() {
                t.insert(id, g);
            } else {
                drop(t);
                drop(g);
            }
            Err(e)
        }
    }
}

/// Drops the unmapped grants made for, or made by, a process that exits. A grant is
/// an offer of its sender's pages: it lives while both ends do, so senders that come
/// and go cannot fill the table with grants nobody maps (a receiver that mapped one
/// keeps its mapping, which holds its own references).
pub fn release_grants_of(pid: u32) {
    let gone: Vec<Grant> = {
        let mut t = GRANTS.lock();
        let ids: Vec<u64> = t
            .iter()
            .filter(|(_, g)| g.to == pid || g.from == pid)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| t.remove(id)).collect()
    };
    // Frames are freed here, outside the table's lock.
    drop(gone);
}
