//! Channels and capabilities: the kernel side of zen-ipc and zen-cap.
//!
//! A channel is three shared pages (a control page with two ring headers, a slot page
//! per ring) that both ends map; messages are written and read in place by the
//! processes (zen-std drives zen-ipc's `Producer`/`Consumer`), so the kernel copies
//! nothing. It only sleeps and wakes: `msg_send`/`msg_release` wake a peer that said it
//! would sleep, `msg_recv`/`msg_wait_room`/`msg_poll` sleep after rechecking the ring
//! under the channel's wait lock (zen-ipc's wake-up protocol).
//!
//! Each end is its own capability object: object id `channel << 1 | end`. End `e`
//! produces ring `e` and consumes ring `1 - e`. Every call that names a channel takes a
//! token (the 64-byte `TokenSlot` as it sits in the caller's token page, copied from
//! user memory) and checks it with zen-cap against the caller's pid and the channel's
//! current generation; any failure is `Denied` and an EDGE_REGISTRY record.
//!
//! Lifetime: the creator owns the channel; when it exits the channel leaves the table
//! (later attaches fail), and processes that attached keep their mapping until they
//! exit (their `Arc` keeps the pages).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::cap::{ObjectType, Rights, TokenSlot};
use zen_abi::ipc::RING_SLOTS;
use zen_abi::syscall::Error;
use zen_cap::{CapError, MacKey};

use crate::arch::paging::Flags;
use crate::arch::phys::SharedFrame;
use crate::proc::{self, Process};
use crate::sync::IrqMutex;
use crate::task::{self, Thread};

/// Most channels alive at once.
pub const MAX_CHANNELS: usize = 256;

static KEY: spin::Once<MacKey> = spin::Once::new();

/// The per-boot MAC key, drawn from the CPU's random number generator on first use.
fn key() -> &'static MacKey {
    KEY.call_once(|| {
        let mut k = [0u8; 32];
        let mut hw = true;
        for chunk in k.chunks_mut(8) {
            let v = crate::arch::cpu::random_u64().unwrap_or_else(|| {
                hw = false;
                // No RDRAND/RDSEED: the TSC is a poor seed, and we say so.
                crate::arch::cpu::rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        if !hw {
            crate::kprintln!(
                "zen: WARNING: no hardware random numbers; capability key is guessable"
            );
        }
        MacKey::new(k)
    })
}

pub struct Channel {
    id: u64,
    generation: AtomicU64,
    /// Control page, then the slot pages of ring 0 and ring 1.
    pages: [SharedFrame; 3],
    /// Pid attached at each end (0: none): where `cap_send` delivers.
    attached: IrqMutex<[u32; 2]>,
    /// Sleepers per ring: [consumer, producer].
    waiters: IrqMutex<[[Option<Arc<Thread>>; 2]; 2]>,
}

impl Channel {
    fn header(&self, ring: usize) -> &zen_abi::ipc::RingHeader {
        self.pages[0].ring_header(ring)
    }
    fn wake(&self, ring: usize, side: usize) {
        let t = {
            let mut w = self.waiters.lock();
            let t = w[ring][side].take();
            if t.is_some() {
                let s = [zen_ipc::Side::Consumer, zen_ipc::Side::Producer][side];
                zen_ipc::kernel_woke(self.header(ring), s);
            }
            t
        };
        if let Some(t) = t {
            task::unpark(&t);
        }
    }
}

static CHANNELS: IrqMutex<BTreeMap<u64, Arc<Channel>>> = IrqMutex::new(BTreeMap::new());
static NEXT_CHANNEL: AtomicU64 = AtomicU64::new(1);

fn denied(call: u16, object: u64, why: CapError) -> Error {
    crate::edge::report_detail(zen_edge::EdgeKind::CapabilityDenied, call, object as u32);
    let _ = why;
    Error::Denied
}

/// Copies a token from user memory (into a buffer on the stack: every channel call
/// does this, so no heap allocation).
fn token_in(me: &Process, ptr: u64) -> Result<TokenSlot, Error> {
    let mut b = [0u8; TokenSlot::SIZE];
    me.with_space(|s| s.read_into(ptr, &mut b))?
        .ok_or(Error::BadAddress)?;
    Ok(TokenSlot::from_bytes(&b))
}

/// The channel a token names, and the binding a genuine token of the caller must carry
/// now. Nothing is verified yet.
fn named_channel(
    me: &Process,
    slot: &TokenSlot,
    call: u16,
) -> Result<(Arc<Channel>, zen_abi::cap::Binding), Error> {
    let object = slot.binding.object;
    let chan = CHANNELS
        .lock()
        .get(&(object >> 1))
        .cloned()
        .ok_or_else(|| denied(call, object, CapError::UnknownObject))?;
    let expected = zen_cap::binding(
        object,
        ObjectType::Channel,
        me.pid(),
        chan.generation.load(Ordering::Acquire),
    );
    Ok((chan, expected))
}

/// Checks a channel token of the caller: (channel, end, rights held).
fn channel_cap(
    me: &Process,
    ptr: u64,
    required: Rights,
    call: u16,
) -> Result<(Arc<Channel>, usize, Rights), Error> {
    let slot = token_in(me, ptr)?;
    let (chan, expected) = named_channel(me, &slot, call)?;
    let object = expected.object;
    let held = me
        .verify_token(key(), &slot, &expected, required)
        .map_err(|e| denied(call, object, e))?;
    Ok((chan, (object & 1) as usize, held))
}

/// chan_create: a channel owned by `me`, with both ends' tokens in its token page.
pub fn create(me: &Arc<Process>) -> Result<u64, Error> {
    if CHANNELS.lock().len() >= MAX_CHANNELS {
        return Err(Error::NoMemory);
    }
    let pages = [SharedFrame::new(), SharedFrame::new(), SharedFrame::new()];
    let [Some(a), Some(b), Some(c)] = pages else {
        return Err(Error::NoMemory);
    };
    let id = NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed);
    let chan = Arc::new(Channel {
        id,
        generation: AtomicU64::new(1),
        pages: [a, b, c],
        attached: IrqMutex::new([0, 0]),
        waiters: IrqMutex::new([[None, None], [None, None]]),
    });
    let mint = |end: u64| {
        zen_cap::mint(
            key(),
            zen_cap::binding(id << 1 | end, ObjectType::Channel, me.pid(), 1),
            Rights::ALL,
        )
    };
    let sa = me.insert_token(mint(0))?;
    let sb = match me.insert_token(mint(1)) {
        Ok(s) => s,
        Err(e) => {
            let _ = me.remove_token(sa);
            return Err(e);
        }
    };
    CHANNELS.lock().insert(id, chan);
    me.own_channel(id);
    Ok(sa as u64 | (sb as u64) << 16)
}

/// Removes the channels a dying process created from the table.
pub fn release_owned(ids: &[u64]) {
    let mut t = CHANNELS.lock();
    for id in ids {
        t.remove(id);
    }
}

/// chan_attach: maps the channel's pages into the caller.
pub fn attach(me: &Arc<Process>, ptr: u64) -> Result<u64, Error> {
    let (chan, end, held) = channel_cap(me, ptr, Rights::EMPTY, 19)?;
    if !held.contains(Rights::SEND) && !held.contains(Rights::RECV) {
        return Err(denied(
            19,
            chan.id << 1 | end as u64,
            CapError::InsufficientRights,
        ));
    }
    let va = me.reserve_map_range(chan.pages.len() as u64)?;
    me.with_space(|s| {
        for (i, p) in chan.pages.iter().enumerate() {
            s.map_shared(
                va + i as u64 * 4096,
                p.addr(),
                Flags {
                    writable: true,
                    user: true,
                    executable: false,
                },
            )
            .map_err(|_| Error::NoMemory)?;
        }
        Ok(())
    })??;
    chan.attached.lock()[end] = me.pid();
    me.keep_channel(chan);
    Ok(va)
}

/// msg_send (`publish`: wake the consumer of the ring we produce) and msg_release
/// (wake the producer of the ring we consume).
pub fn wake(me: &Process, ptr: u64, released: bool) -> Result<u64, Error> {
    let (need, call) = if released {
        (Rights::RECV, 23)
    } else {
        (Rights::SEND, 20)
    };
    let (chan, end, _) = channel_cap(me, ptr, need, call)?;
    if released {
        chan.wake(1 - end, 1);
    } else {
        chan.wake(end, 0);
    }
    Ok(0)
}

/// msg_recv (`room == false`: wait for a message while head == seen) and
/// msg_wait_room (wait for room while tail == seen).
pub fn wait(me: &Process, ptr: u64, seen: u64, room: bool) -> Result<u64, Error> {
    let (need, call) = if room {
        (Rights::SEND, 24)
    } else {
        (Rights::RECV, 21)
    };
    let (chan, end, _) = channel_cap(me, ptr, need, call)?;
    let (ring, side) = if room { (end, 1) } else { (1 - end, 0) };
    let seen = seen as u32;
    loop {
        {
            let mut w = chan.waiters.lock();
            let h = chan.header(ring);
            let still = if room {
                zen_ipc::producer_may_sleep(h, seen)
            } else {
                zen_ipc::consumer_may_sleep(h, seen)
            };
            if !still {
                w[ring][side] = None;
                return Ok(0);
            }
            w[ring][side] = Some(task::current());
        }
        if me.killed() {
            return Err(Error::InvalidArgument);
        }
        task::park();
    }
}

/// msg_poll: the index of the first channel with a message; sleeps until one has.
pub fn poll(me: &Process, ptr: u64, count: u64, timeout_ms: u64) -> Result<u64, Error> {
    if count == 0 || count > 16 {
        return Err(Error::InvalidArgument);
    }
    let mut chans = Vec::new();
    for i in 0..count {
        chans.push(channel_cap(
            me,
            ptr + i * TokenSlot::SIZE as u64,
            Rights::RECV,
            22,
        )?);
    }
    let deadline = crate::time::ticks().saturating_add(
        timeout_ms
            .saturating_mul(crate::TIMER_HZ as u64)
            .div_ceil(1000)
            + 1,
    );
    let me_thread = task::current();
    let result = loop {
        let mut ready = None;
        for (i, (c, end, _)) in chans.iter().enumerate() {
            let ring = 1 - end;
            let mut w = c.waiters.lock();
            // A corrupt ring counts as ready: its owner sees the error when it reads.
            if zen_ipc::pending(c.header(ring), RING_SLOTS) != Ok(0) {
                ready = Some(i as u64);
                break;
            }
            w[ring][0] = Some(me_thread.clone());
        }
        if let Some(i) = ready {
            break Ok(i);
        }
        if me.killed() {
            break Err(Error::InvalidArgument);
        }
        if timeout_ms != u64::MAX && crate::time::ticks() >= deadline {
            break Err(Error::TimedOut);
        }
        // Sleep until a wake from a channel or the deadline tick.
        if timeout_ms == u64::MAX {
            task::park();
        } else {
            task::park_until(deadline);
        }
    };
    for (c, end, _) in &chans {
        let mut w = c.waiters.lock();
        if w[1 - end][0]
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &me_thread))
        {
            w[1 - end][0] = None;
        }
    }
    result
}

/// cap_send: a copy of a token (needs GRANT on it) with `rights` for the process at
/// the channel's other end (needs SEND on the channel).
pub fn cap_send(me: &Process, chan_ptr: u64, tok_ptr: u64, rights: u64) -> Result<u64, Error> {
    let (chan, end, _) = channel_cap(me, chan_ptr, Rights::SEND, 25)?;
    let peer = chan.attached.lock()[1 - end];
    if peer == 0 {
        return Err(Error::NoPeer);
    }
    let target = proc::find(peer).ok_or(Error::NoPeer)?;
    grant(me, tok_ptr, rights, &target, 25)
}

/// Derives the token at `tok_ptr` (held by `me`) for `target` with `rights`, and puts
/// it in the target's token page; the slot index. Used by cap_send and spawn.
pub fn grant(
    me: &Process,
    tok_ptr: u64,
    rights: u64,
    target: &Process,
    call: u16,
) -> Result<u64, Error> {
    let slot = token_in(me, tok_ptr)?;
    let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
    let (_, expected) = named_channel(me, &slot, call)?;
    let object = expected.object;
    let copy = zen_cap::derive(key(), &slot, &expected, target.pid(), rights)
        .map_err(|e| denied(call, object, e))?;
    target.insert_token(copy).map(|i| i as u64)
}

/// cap_revoke: bumps the channel's generation (both ends' tokens go stale) and gives
/// the caller a fresh token with the same rights in the same slot.
pub fn revoke(me: &Process, ptr: u64) -> Result<u64, Error> {
    let (chan, end, held) = channel_cap(me, ptr, Rights::REVOKE, 26)?;
    let slot = token_in(me, ptr)?;
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
    me.replace_token(&slot, fresh);
    Ok(0)
}

// Page grants: large payloads shared, never copied. The sender's pages become shared
// frames (reference-counted); a grant holds them for one process, the one attached at
// the channel's other end, until it maps them (grant_map) or exits. Every mapping holds
// its own reference, so sender and receiver can unmap or exit in any order and the
// frames are freed after the last one.

/// Unmapped grants one process may have made (the rest wait for the receiver).
pub const MAX_GRANTS_PER_SENDER: usize = 64;
/// Unmapped grants in the whole system.
pub const MAX_GRANTS: usize = 1024;
/// Largest grant in pages (as many as one process may map).
const MAX_GRANT_PAGES: u64 = proc::MAP_LIMIT_PAGES;

struct Grant {
    from: u32,
    to: u32,
    len: u64,
    rights: Rights,
    frames: Vec<Arc<SharedFrame>>,
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
    me: &Process,
    addr: u64,
    len: u64,
    rights: u64,
    chan_ptr: u64,
) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::GrantCreate as u16;
    let (chan, end, _) = channel_cap(me, chan_ptr, Rights::SEND, call)?;
    let rights = grant_rights(rights)?;
    let pages = len.div_ceil(4096);
    if len == 0 || !addr.is_multiple_of(4096) || pages > MAX_GRANT_PAGES {
        return Err(Error::InvalidArgument);
    }
    let to = chan.attached.lock()[1 - end];
    if to == 0 {
        return Err(Error::NoPeer);
    }
    {
        let g = GRANTS.lock();
        if g.len() >= MAX_GRANTS
            || g.values().filter(|g| g.from == me.pid()).count() >= MAX_GRANTS_PER_SENDER
        {
            return Err(Error::NoMemory);
        }
    }
    let frames = me.share_pages(addr, pages, rights.contains(Rights::WRITE))?;
    let id = NEXT_GRANT.fetch_add(1, Ordering::Relaxed);
    let mut t = GRANTS.lock();
    // The receiver must still be alive, checked under the table's lock: a process
    // drops its grants (`release_grants_to`) only after it stops being found, so a
    // grant is either refused here or dropped there, never left for nobody.
    if proc::find(to).is_none() {
        drop(t);
        drop(frames);
        return Err(Error::NoPeer);
    }
    t.insert(
        id,
        Grant {
            from: me.pid(),
            to,
            len,
            rights,
            frames,
        },
    );
    Ok(id)
}

/// grant_map: maps a grant made for the caller; the address.
pub fn grant_map(me: &Process, id: u64, len: u64, rights: u64) -> Result<u64, Error> {
    let call = zen_abi::syscall::Syscall::GrantMap as u16;
    let g = {
        let mut t = GRANTS.lock();
        match t.get(&id) {
            Some(g) if g.to == me.pid() => {
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
            // Not mapped: the grant stays for another try.
            GRANTS.lock().insert(id, g);
            Err(e)
        }
    }
}

/// Drops the grants waiting for a process that exits.
pub fn release_grants_to(pid: u32) {
    let gone: Vec<Grant> = {
        let mut t = GRANTS.lock();
        let ids: Vec<u64> = t
            .iter()
            .filter(|(_, g)| g.to == pid)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| t.remove(id)).collect()
    };
    // Frames are freed here, outside the table's lock.
    drop(gone);
}
