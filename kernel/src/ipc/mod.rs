//! Channels: the kernel side of zen-ipc. Page grants are in [`grant`], passing and
//! revoking tokens in `pass`, the calls that sleep (recv, wait-room, call, poll) in `wait`.
//!
//! A channel is six shared pages (per ring: the producer's words, the consumer's
//! words, the slots; `zen_abi::ipc`) that the ends map; messages are written and read
//! in place by the processes (zen-std drives zen-ipc's `Producer`/`Consumer`), so the
//! kernel copies nothing. It only sleeps and wakes: `msg_send`/`msg_release` wake a
//! peer that said it would sleep, `msg_recv`/`msg_wait_room`/`msg_poll` sleep after
//! rechecking the ring under the wait queue's lock (zen-ipc's wake-up protocol).
//!
//! Each end is its own capability object: object id `channel << 1 | end`. End `e`
//! produces ring `e` and consumes ring `1 - e`. Every call that names a channel takes a
//! token, copied once from user memory by the system-call layer, and checks it with zen-cap against the
//! caller's pid and the channel's current generation; a failure is `Denied` and an
//! EDGE_REGISTRY record with the reason (`cap`).
//!
//! Rights are enforced where the memory is mapped: `attach` maps only the pages the
//! token's rights need (`zen_abi::ipc::page_access`): SEND maps the produced ring's
//! words and slots writable and its consumer words read-only; RECV maps the consumed
//! ring's consumer words writable and the rest of it read-only. Attaching the same end
//! again maps what new rights add into the same range (one holding per process and
//! end, so attach in a loop grows nothing).
//!
//! Lifetime: the creator owns the channel; when it exits the channel leaves the table
//! (later attaches fail). A holding keeps its `Arc` until its pages are unmapped:
//! at exit (after the address space is gone) or when a `cap_revoke` by another
//! process takes the pages away (unmapped, every CPU's TLB flushed, then dropped).
//! So a channel's frames are never freed while any page table still maps them.

pub mod call;
pub mod grant;
mod party;
mod pass;
mod wait;

pub use party::Party;
pub use pass::{cap_send, destroy, pass_token, revoke};
pub use wait::{call, poll, wait, POLL_MAX};

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use zen_abi::cap::{Binding, ObjectType, Rights};
use zen_abi::ipc::{page_access, Access, CHANNEL_PAGES, CONSUMER_PAGE, PRODUCER_PAGE, RING_PAGES};
use zen_abi::syscall::Error;
use zen_cap::CapError;
use zen_pool::{Handle, LazyPool};

use crate::arch::paging::Flags;
use crate::arch::phys::SharedFrame;
use crate::cap::{denied, key, Presented};
use crate::mm::quota::Charge;
use crate::sync::IrqMutex;
use crate::task::WaitQueue;

/// Most channels alive at once, and per creating process (a channel lives as long as
/// its creator: there is no close yet, so a process that makes channels in a loop is
/// stopped here, not by the whole system's table).
pub const MAX_CHANNELS: usize = 1024;
pub const MAX_CHANNELS_PER_PROCESS: usize = 128;
/// Kernel memory a channel costs its creator (the object and its table entry; its six
/// frames are the pages it maps).
const CHANNEL_KMEM: u64 = (core::mem::size_of::<Channel>() + 64) as u64;

/// Side of a ring in `Channel::queues`.
const CONSUMER: usize = 0;
const PRODUCER: usize = 1;

pub struct Channel {
    id: u64,
    generation: AtomicU64,
    /// Set once `chan_create` has put both tokens in its creator's page: until then
    /// (and for ever, if that fails) no token can reach it, even one a thread of the
    /// creator sees in its page in between.
    live: AtomicBool,
    /// `CHANNEL_PAGES` frames in the order of `zen_abi::ipc`.
    pages: [SharedFrame; CHANNEL_PAGES],
    /// Processes attached: (pid, end, holds RECV), oldest first. `cap_send` and grants
    /// go to the latest RECV holder of the other end (the one that reads what we
    /// send). One entry per (pid, end).
    attached: IrqMutex<Vec<(u32, usize, bool)>>,
    /// Sleepers per ring and side (`CONSUMER`, `PRODUCER`).
    queues: [[WaitQueue; 2]; 2],
    /// Register-message calls arriving at each end (`call`); fixed arrays, so a call
    /// allocates nothing, and part of the channel's charge.
    calls: [IrqMutex<call::End>; 2],
    /// The creator's kernel memory for it, given back when the channel goes.
    _charge: Charge,
}

/// A process's mapping of one channel end: which of the range's pages are mapped
/// (bit `p` for page `p`). The `Arc` keeps the frames until the pages are unmapped.
pub struct Holding {
    pub chan: Arc<Channel>,
    pub end: usize,
    pub va: u64,
    pub mapped: u8,
    /// Its kernel memory (this entry and the channel's `attached` entry), given back
    /// when the holding is dropped.
    pub _charge: Charge,
}

/// Kernel memory a holding costs its process.
const HOLDING_KMEM: u64 = (core::mem::size_of::<Holding>() + 16) as u64;
/// Kernel memory one wait entry costs while it waits.
const WAIT_KMEM: u64 = 16;

impl Channel {
    pub fn id(&self) -> u64 {
        self.id
    }

    fn words(&self, ring: usize) -> zen_ipc::RingWords<'_> {
        zen_ipc::RingWords {
            producer: self.pages[ring * RING_PAGES + PRODUCER_PAGE].producer_words(),
            consumer: self.pages[ring * RING_PAGES + CONSUMER_PAGE].consumer_words(),
        }
    }

    fn wake(&self, ring: usize, side: usize) {
        self.queues[ring][side].wake_all(|| {
            let s = [zen_ipc::Side::Consumer, zen_ipc::Side::Producer][side];
            zen_ipc::kernel_woke(self.words(ring), s);
        });
    }

    fn wake_everyone(&self) {
        self.fail_calls();
        for ring in 0..2 {
            for side in [CONSUMER, PRODUCER] {
                self.queues[ring][side].wake_all(|| {});
            }
        }
    }

    /// The latest process attached at `end` with RECV (it consumes what the other
    /// end sends), 0 if none.
    fn receiver_at(&self, end: usize) -> u32 {
        self.attached
            .lock()
            .iter()
            .rev()
            .find(|(_, e, recv)| *e == end && *recv)
            .map_or(0, |(p, _, _)| *p)
    }

    /// Forgets `pid`'s attachments (it exits, or was revoked).
    pub fn forget(&self, pid: u32) {
        self.attached.lock().retain(|(p, _, _)| *p != pid);
    }
}

/// Channels alive, by slot. A channel's id is its pool handle (the slot's reuse count
/// above the slot number, see [`channel_id`]), so a token finds its channel in one
/// step, and no id is ever used twice: the pool retires a slot before its reuse count
/// could repeat, so a token of a dead channel never names a new one.
static CHANNELS: IrqMutex<LazyPool<Arc<Channel>, MAX_CHANNELS>> = IrqMutex::new(LazyPool::new());

/// The id of the channel in pool slot `h`: `reuse count << 16 | slot + 1` (below 2^48,
/// so `id << 1 | end`, the object id of an end, never overflows; never 0).
fn channel_id(h: Handle) -> u64 {
    u64::from(h.generation()) << 16 | (u64::from(h.index()) + 1)
}

/// The pool slot a channel id names, if it can name one at all.
fn channel_handle(id: u64) -> Option<Handle> {
    let index = (id & 0xffff).checked_sub(1)?;
    let generation = u32::try_from(id >> 16).ok()?;
    Some(Handle::from_raw(u64::from(generation) << 32 | index))
}

/// The channel a token names, and the binding a genuine token of the caller must carry
/// now. Nothing is verified yet.
#[inline]
fn named_channel(
    me: &dyn Party,
    slot: &Presented,
    call: u16,
) -> Result<(Arc<Channel>, Binding), Error> {
    let object = slot.binding.object;
    let chan = channel_handle(object >> 1)
        .and_then(|h| CHANNELS.lock().get(h).cloned())
        .filter(|c| c.live.load(Ordering::Acquire))
        .ok_or_else(|| denied(call, object, CapError::UnknownObject))?;
    let expected = zen_cap::binding(
        object,
        ObjectType::Channel,
        me.pid(),
        chan.generation.load(Ordering::Acquire),
    );
    Ok((chan, expected))
}

/// A checked channel token: the channel, the end, the rights held, and the
/// generation it was checked against (a revoke since makes it stale).
struct Checked {
    chan: Arc<Channel>,
    end: usize,
    held: Rights,
    generation: u64,
}

/// Checks a channel token of the caller, already copied in.
#[inline]
fn check_full(
    me: &dyn Party,
    slot: &Presented,
    required: Rights,
    call: u16,
) -> Result<Checked, Error> {
    let (chan, expected) = named_channel(me, slot, call)?;
    let object = expected.object;
    let held =
        crate::cap::verify(me, slot, &expected, required).map_err(|e| denied(call, object, e))?;
    Ok(Checked {
        chan,
        end: (object & 1) as usize,
        held,
        generation: expected.generation,
    })
}

/// As [`check_full`]: (channel, end, rights).
fn check(
    me: &dyn Party,
    slot: &Presented,
    required: Rights,
    call: u16,
) -> Result<(Arc<Channel>, usize, Rights), Error> {
    let c = check_full(me, slot, required, call)?;
    Ok((c.chan, c.end, c.held))
}

/// chan_create: a channel owned by `me`, with both ends' tokens in its token page.
pub fn create(me: &dyn Party) -> Result<u64, Error> {
    if CHANNELS.lock().is_full() {
        return Err(Error::NoMemory);
    }
    let charge = Charge::take(me.quota(), CHANNEL_KMEM)?;
    let mut frames = Vec::new();
    frames
        .try_reserve_exact(CHANNEL_PAGES)
        .map_err(|_| Error::NoMemory)?;
    for _ in 0..CHANNEL_PAGES {
        frames.push(SharedFrame::new().ok_or(Error::NoMemory)?);
    }
    let pages: [SharedFrame; CHANNEL_PAGES] = frames.try_into().map_err(|_| Error::NoMemory)?;
    // In the table from here on, but not live (no token reaches it) until both
    // tokens are in the page below; on a failure there it leaves again unused.
    if me.owned_channels() >= MAX_CHANNELS_PER_PROCESS {
        // Checked before a pool slot is taken: each slot has a finite number of
        // reuses, which a loop of refused creates must not burn.
        return Err(Error::NoMemory);
    }
    let mut parts = Some((pages, charge));
    let handle = CHANNELS
        .lock()
        .alloc_with(|h| {
            let (pages, charge) = parts.take().expect("called once");
            Arc::new(Channel {
                id: channel_id(h),
                generation: AtomicU64::new(1),
                live: AtomicBool::new(false),
                pages,
                attached: IrqMutex::new(Vec::new()),
                queues: [const { [const { WaitQueue::new() }; 2] }; 2],
                calls: [const { IrqMutex::new(call::End::new()) }; 2],
                _charge: charge,
            })
        })
        .ok_or(Error::NoMemory)?;
    let id = channel_id(handle);
    let drop_it = || drop(CHANNELS.lock().free(handle));
    let mint = |end: u64| {
        zen_cap::mint(
            key(),
            zen_cap::binding(id << 1 | end, ObjectType::Channel, me.pid(), 1),
            Rights::CHANNEL_ALL,
        )
    };
    if let Err(e) = me.own_channel(id, MAX_CHANNELS_PER_PROCESS) {
        drop_it();
        return Err(e);
    }
    let sa = me.insert_token(mint(0));
    let sb = sa.and_then(|_| me.insert_token(mint(1)));
    match (sa, sb) {
        (Ok(a), Ok(b)) => {
            if let Some(c) = CHANNELS.lock().get(handle) {
                c.live.store(true, Ordering::Release);
            }
            Ok(a as u64 | (b as u64) << 16)
        }
        (a, b) => {
            if let Ok(a) = a {
                let _ = me.remove_token(a);
            }
            let _ = me.disown_channel(id);
            drop_it();
            Err(b.err().or(a.err()).unwrap_or(Error::NoMemory))
        }
    }
}

/// Removes the channels a dying process created from the table.
pub fn release_owned(ids: &[u64]) {
    let mut gone = Vec::new();
    let _ = gone.try_reserve_exact(ids.len());
    let mut t = CHANNELS.lock();
    for h in ids.iter().filter_map(|&id| channel_handle(id)) {
        if let Some(c) = t.free(h) {
            // Its calls end (they could never be answered through a token now), and
            // no call may start on it; see `call::gone`.
            c.live.store(false, Ordering::Release);
            c.fail_calls();
            // Dropped after the lock (the last reference frees the frames); with no
            // room to keep it, it drops here, which is only slower.
            if gone.len() < gone.capacity() {
                gone.push(c);
            }
        }
    }
    drop(t);
    drop(gone);
}

/// The pages (as a bit mask) a holder of `end` with `held` maps.
fn pages_for(end: usize, held: Rights) -> u8 {
    let (send, recv) = (held.contains(Rights::SEND), held.contains(Rights::RECV));
    (0..CHANNEL_PAGES)
        .filter(|&p| page_access(end, p, send, recv) != Access::None)
        .fold(0, |m, p| m | 1 << p)
}

/// chan_attach: maps the pages of the channel end that the token's rights allow;
/// the address of the range (`CHANNEL_PAGES` pages, holes where not mapped).
/// chan_peer: the process attached (to receive) at the other end of the caller's
/// channel end, 0 if none: how a server tells a connection whose client is gone.
pub fn peer(me: &dyn Party, slot: &Presented) -> Result<u64, Error> {
    let (chan, end, _) = check(
        me,
        slot,
        Rights::EMPTY,
        zen_abi::syscall::Syscall::ChanPeer as u16,
    )?;
    Ok(chan.receiver_at(1 - end) as u64)
}

pub fn attach(me: &dyn Party, slot: &Presented) -> Result<u64, Error> {
    const CALL: u16 = zen_abi::syscall::Syscall::ChanAttach as u16;
    let Checked {
        chan,
        end,
        held,
        generation,
    } = check_full(me, slot, Rights::EMPTY, CALL)?;
    let want = pages_for(end, held);
    if want == 0 {
        return Err(denied(
            CALL,
            chan.id << 1 | end as u64,
            CapError::InsufficientRights,
        ));
    }
    let (send, recv) = (held.contains(Rights::SEND), held.contains(Rights::RECV));
    let mut holdings = me.holdings();
    let existing = holdings
        .iter()
        .position(|h| h.chan.id == chan.id && h.end == end);
    let (va, have, charge) = match existing {
        Some(i) => (holdings[i].va, holdings[i].mapped, None),
        None => {
            let charge = Charge::take(me.quota(), HOLDING_KMEM)?;
            holdings.try_reserve(1).map_err(|_| Error::NoMemory)?;
            (me.reserve_map_range(CHANNEL_PAGES as u64)?, 0, Some(charge))
        }
    };
    let add = want & !have;
    // Unmaps this call's pages (and gives back a new range): nothing may stay
    // mapped without the holding that keeps its frames. Our own space, live on
    // this CPU only, so a local flush (in unmap) is enough.
    let undo = |done: u8| {
        let _ = me.in_space(&mut |s| {
            for q in (0..CHANNEL_PAGES).filter(|q| done & 1 << q != 0) {
                let _ = s.unmap(va + q as u64 * 4096);
            }
        });
        if existing.is_none() {
            me.unreserve(CHANNEL_PAGES as u64);
        }
    };
    let mut done = 0u8;
    let mapped = me.map_in_space(CHANNEL_PAGES as u64, &mut |s| {
        for p in (0..CHANNEL_PAGES).filter(|p| add & 1 << p != 0) {
            let flags = Flags {
                writable: page_access(end, p, send, recv) == Access::ReadWrite,
                user: true,
                executable: false,
            };
            if s.map_shared(va + p as u64 * 4096, chan.pages[p].addr(), flags)
                .is_err()
            {
                return false;
            }
            done |= 1 << p;
        }
        true
    });
    if mapped != Ok(true) {
        undo(done);
        return Err(mapped.err().unwrap_or(Error::NoMemory));
    }
    {
        // Under the table's lock, as revoke takes its snapshot: if the token went
        // stale since it was checked, a revoke has passed us by (or will find
        // nothing to take), so this attach must not stand.
        let mut a = chan.attached.lock();
        if chan.generation.load(Ordering::Acquire) != generation {
            drop(a);
            undo(done);
            return Err(denied(CALL, chan.id << 1 | end as u64, CapError::Stale));
        }
        let pos = a.iter().position(|x| x.0 == me.pid() && x.1 == end);
        let had_recv = pos.is_some_and(|i| a[i].2);
        if pos.is_none() && a.try_reserve(1).is_err() {
            drop(a);
            undo(done);
            return Err(Error::NoMemory);
        }
        // Latest holder last.
        if let Some(i) = pos {
            a.remove(i);
        }
        a.push((me.pid(), end, recv || had_recv));
    }
    match (existing, charge) {
        (Some(i), _) => holdings[i].mapped |= add,
        (None, Some(charge)) => holdings.push(Holding {
            chan: chan.clone(),
            end,
            va,
            mapped: add,
            _charge: charge,
        }),
        (None, None) => unreachable!("a new holding is charged above"),
    }
    Ok(va)
}

/// msg_send (`publish`: wake the consumer of the ring we produce) and msg_release
/// (wake the producer of the ring we consume).
pub fn wake(me: &dyn Party, slot: &Presented, released: bool) -> Result<u64, Error> {
    let (need, call) = if released {
        (Rights::RECV, 23)
    } else {
        (Rights::SEND, 20)
    };
    let (chan, end, _) = check(me, slot, need, call)?;
    if released {
        chan.wake(1 - end, PRODUCER);
    } else {
        chan.wake(end, CONSUMER);
    }
    Ok(0)
}
