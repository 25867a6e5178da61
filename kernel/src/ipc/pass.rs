//! Passing and revoking capabilities over channels: `cap_send` (a token for the
//! process that reads what we send), the derivation spawn also uses, and
//! `cap_revoke`, which takes the pages away from every other holder.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use zen_abi::cap::{ObjectType, Rights};

use crate::cap::Presented;
use zen_abi::syscall::Error;

use super::{check, named_channel};
use super::{Holding, Party};
use crate::arch::user::UnlinkedTables;
use crate::cap::key;
use zen_abi::ipc::CHANNEL_PAGES;

/// cap_send: a copy of a token (needs GRANT on it) with `rights` for the process at
/// the channel's other end (needs SEND on the channel).
pub fn cap_send(
    me: &dyn Party,
    chan_slot: &Presented,
    slot: &Presented,
    rights: u64,
) -> Result<u64, Error> {
    let (chan, end, _) = check(me, chan_slot, Rights::SEND, 25)?;
    let peer = chan.receiver_at(1 - end);
    if peer == 0 {
        return Err(Error::NoPeer);
    }
    let target = me.find(peer).ok_or(Error::NoPeer)?;
    pass_token(me, slot, rights, &*target, 25)
}

/// Derives `slot` (held by `me`; a channel end, the system, a device or an
/// interrupt) for `target` with
/// `rights`, and puts it in the target's token page; the slot index. Used by
/// cap_send and spawn.
pub fn pass_token(
    me: &dyn Party,
    slot: &Presented,
    rights: u64,
    target: &dyn Party,
    call: u16,
) -> Result<u64, Error> {
    let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
    let expected = match ObjectType::try_from(slot.binding.object_type) {
        Ok(ObjectType::System) => crate::cap::system_binding(me.pid()),
        Ok(ObjectType::Device) => {
            let address = u32::try_from(slot.binding.object).map_err(|_| {
                crate::cap::denied(call, slot.binding.object, zen_cap::CapError::UnknownObject)
            })?;
            crate::cap::device_binding(address, me.pid())
        }
        Ok(ObjectType::Interrupt) => {
            let (_, generation) = crate::irq::check(me, slot, Rights::GRANT, call)?;
            crate::irq::binding(slot.binding.object as u8, me.pid(), generation)
        }
        _ => named_channel(me, slot, call)?.1,
    };
    // Genuine first (a forged token is CapRefused, never a policy question), then
    // the policy, then the copy.
    crate::cap::verify(me, slot, &expected, Rights::GRANT)
        .map_err(|e| crate::cap::denied(call, expected.object, e))?;
    crate::policy::send(
        me.program(),
        expected.object_type,
        target.program(),
        target.pid(),
    )?;
    crate::cap::derive_to(slot, &expected, rights, target, call)
}

/// cap_revoke: bumps the channel's generation (every older token of both ends goes
/// stale), gives the caller a fresh token with the same rights in the same slot, and
/// takes the pages away from every other process attached: unmapped, every CPU's TLB
/// flushed, and their holdings dropped, so they can neither read nor write the rings
/// any more and grants and tokens no longer go to them.
pub fn revoke(me: &dyn Party, slot: &Presented) -> Result<u64, Error> {
    // One copy (made by the system-call layer): the check and the replacement agree.
    let (chan, end, held) = check(me, slot, Rights::REVOKE, 26)?;
    let gen = chan.generation.fetch_add(1, Ordering::AcqRel) + 1;
    let fresh = zen_cap::mint(
        key(),
        zen_cap::binding(
            chan.id << 1 | end as u64,
            ObjectType::Channel,
            me.pid(),
            gen,
        ),
        held,
    );
    me.replace_token(slot, fresh);
    let others: Vec<u32> = {
        let mut a = chan.attached.lock();
        // Distinct by a linear look-up, not sort + dedup: a few attachments at most,
        // and the sort alone was 3 KiB of kernel code.
        let mut o: Vec<u32> = Vec::new();
        for &(p, _, _) in a.iter() {
            if p != me.pid() && !o.contains(&p) {
                o.push(p);
            }
        }
        a.retain(|(p, _, _)| *p == me.pid());
        o
    };
    take_pages(me, &chan, &others);
    Ok(0)
}

/// Takes the pages of channel `chan` from the processes `pids` (the caller among
/// them or not), then wakes its sleepers, which being of an older generation return
/// `Denied`.
fn take_pages(me: &dyn Party, chan: &super::Channel, pids: &[u32]) {
    let mut taken = Vec::new();
    let mut tables = Vec::new();
    for &pid in pids {
        if pid == me.pid() {
            taken.extend(take_holdings(me, chan.id(), &mut tables));
        } else if let Some(p) = me.find(pid) {
            taken.extend(take_holdings(&*p, chan.id(), &mut tables));
        }
    }
    if !taken.is_empty() {
        // Their pages are out of the tables; no CPU may still reach them through its
        // TLB before the frames can go (the holdings below drop their references).
        crate::arch::tlb::shootdown_all();
    }
    drop(taken);
    for t in tables {
        t.free_after_shootdown();
    }
    chan.wake_everyone();
}

/// chan_destroy: the channel the caller created ends now: every token of it goes
/// stale (its generation moves on, as at a revoke), it leaves the table, every
/// process attached to it loses its pages (the caller too: a server that makes a
/// channel per client gets all of it back, and nobody keeps the channel's memory,
/// charged to its creator, alive), and its sleepers wake to `Denied`. Needs DESTROY
/// and to be the channel's creator (`Denied` otherwise).
pub fn destroy(me: &dyn Party, slot: &Presented) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::ChanDestroy as u16;
    let (chan, _, _) = check(me, slot, Rights::DESTROY, call)?;
    if !me.disown_channel(chan.id()) {
        return Err(Error::Denied);
    }
    // Stale first, under the attachment lock, so an attach racing this sees it, and
    // a woken sleeper sees it revoked instead of waiting again on a dead channel.
    let mut holders: Vec<u32> = {
        let mut a = chan.attached.lock();
        chan.generation.fetch_add(1, Ordering::AcqRel);
        let mut o: Vec<u32> = Vec::new();
        for &(p, _, _) in a.iter() {
            if !o.contains(&p) {
                o.push(p);
            }
        }
        a.clear();
        o
    };
    if !holders.contains(&me.pid()) {
        holders.push(me.pid());
    }
    super::release_owned(&[chan.id()]);
    take_pages(me, &chan, &holders);
    Ok(0)
}

/// Unmaps `p`'s pages of channel `id` and returns its holdings of it, for the caller
/// to drop once no TLB can reach the pages; the page tables that emptied are unlinked
/// into `tables`, to be freed after the shootdown too (`p` may be running on another
/// CPU until then).
fn take_holdings(p: &dyn Party, id: u64, tables: &mut Vec<UnlinkedTables>) -> Vec<Holding> {
    let mut h = p.holdings();
    let mut taken = Vec::new();
    let mut i = 0;
    while i < h.len() {
        if h[i].chan.id() != id {
            i += 1;
            continue;
        }
        let x = h.swap_remove(i);
        let _ = p.in_space(&mut |s| {
            for page in (0..CHANNEL_PAGES).filter(|q| x.mapped & 1 << q != 0) {
                let _ = s.unmap_keep_tables(x.va + page as u64 * 4096);
            }
            // Tables that emptied come out now and are freed after the shootdown, so
            // revoking in a loop leaves the victim no tables it could never free.
            if tables.try_reserve(1).is_ok() {
                tables.push(s.unlink_tables_in(x.va, CHANNEL_PAGES as u64));
            }
        });
        p.resync_tables();
        p.unreserve(CHANNEL_PAGES as u64);
        taken.push(x);
    }
    taken
}
