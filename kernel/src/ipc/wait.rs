//! The sleeping half of channels: `msg_recv` and `msg_wait_room` (`wait`), `msg_call`
//! (wake the peer and wait for the answer in one trap, with a direct switch when the
//! peer sleeps on this CPU) and `msg_poll`. Each sleeps through the ring's `WaitQueue`
//! after rechecking the ring under the queue's lock (zen-ipc's wake-up protocol), and
//! gives `Denied` once a revoke has moved the channel's generation past the token's.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use zen_abi::cap::Rights;
use zen_abi::ipc::RING_SLOTS;
use zen_abi::syscall::Error;

use super::{check_full, Checked, Party, CONSUMER, PRODUCER, WAIT_KMEM};
use crate::cap::Presented;
use crate::mm::quota::Charge;
use crate::task;

/// msg_recv (`room == false`: wait for a message while head == seen) and
/// msg_wait_room (wait for room while tail == seen).
pub fn wait(me: &dyn Party, slot: &Presented, seen: u64, room: bool) -> Result<u64, Error> {
    let (need, call) = if room {
        (Rights::SEND, 24)
    } else {
        (Rights::RECV, 21)
    };
    let c = check_full(me, slot, need, call)?;
    let (ring, side) = if room {
        (c.end, PRODUCER)
    } else {
        (1 - c.end, CONSUMER)
    };
    wait_on(me, &c, ring, side, seen as u32, None)
}

/// msg_call: wakes the consumer of the ring we produce (the caller has just published
/// a message there) and waits for a message on the ring we consume while its head
/// equals `seen`: a request and the wait for its answer in one trap, and for a server
/// its reply and the wait for the next request. When the peer sleeps on this CPU it
/// runs at once in our place (`task::park_handing_off`, a direct switch), and its own
/// msg_call hands the CPU back the same way.
pub fn call(me: &dyn Party, slot: &Presented, seen: u64) -> Result<u64, Error> {
    let c = check_full(
        me,
        slot,
        Rights::SEND.union(Rights::RECV),
        zen_abi::syscall::Syscall::MsgCall as u16,
    )?;
    crate::prof::mark(crate::prof::Step::Check);
    let handoff = c.chan.queues[c.end][CONSUMER].wake_all_handing_off(|| {
        zen_ipc::kernel_woke(c.chan.words(c.end), zen_ipc::Side::Consumer);
    });
    crate::prof::mark(crate::prof::Step::Wake);
    wait_on(me, &c, 1 - c.end, CONSUMER, seen as u32, handoff)
}

/// Sleeps on `side` of `ring` while the ring's counter still equals `seen`; a
/// `handoff` runs in our place the first time we sleep (and is woken anyway if we do
/// not). Returns `Denied` once the channel is revoked past the token's generation.
fn wait_on(
    me: &dyn Party,
    c: &Checked,
    ring: usize,
    side: usize,
    seen: u32,
    mut handoff: Option<task::Handoff>,
) -> Result<u64, Error> {
    let chan = &c.chan;
    let _charge = Charge::take(me.quota(), WAIT_KMEM)?;
    let thread = task::current();
    let w = chan.words(ring);
    let must_wait = || {
        if side == PRODUCER {
            zen_ipc::producer_may_sleep(w, seen)
        } else {
            zen_ipc::consumer_may_sleep(w, seen)
        }
    };
    // Revoked (while we slept, or just now): the token we came with is dead and the
    // pages may be gone, so no success that would send the caller to them.
    let revoked = || chan.generation.load(Ordering::Acquire) != c.generation;
    loop {
        let waiter = chan.queues[ring][side]
            .prepare_as(&thread, must_wait)
            .map_err(|_| Error::NoMemory)?;
        if revoked() {
            return Err(Error::Denied);
        }
        let Some(waiter) = waiter else {
            return Ok(0);
        };
        if me.killed() {
            return Err(Error::InvalidArgument);
        }
        crate::prof::mark(crate::prof::Step::Prepare);
        match handoff.take() {
            Some(h) => task::park_handing_off(h),
            None => task::park(),
        }
        crate::prof::mark(crate::prof::Step::Switch);
        // The entry goes, however we were woken (a waker took it out already).
        drop(waiter);
        // Woken, usually because the ring moved: that needs no lock to see (only
        // registering does), so the common case skips a second `prepare`.
        if revoked() {
            return Err(Error::Denied);
        }
        if !must_wait() {
            crate::prof::mark(crate::prof::Step::Resume);
            return Ok(0);
        }
    }
}

/// Most channels one msg_poll waits on.
pub const POLL_MAX: u64 = 16;

/// What one msg_poll entry waits on: a channel end's incoming ring, or a device
/// interrupt (`irq`), each with the generation its token was checked at.
enum Source {
    Ring(alloc::sync::Arc<super::Channel>, usize, u64),
    Irq(&'static crate::irq::Irq, u64),
}

impl Source {
    fn revoked(&self) -> bool {
        match self {
            Source::Ring(c, _, g) => c.generation.load(Ordering::Acquire) != *g,
            Source::Irq(i, g) => i.generation() != *g,
        }
    }
}

/// msg_poll: the index of the first channel with a message (or interrupt token with
/// an interrupt pending); sleeps until one has.
pub fn poll(me: &dyn Party, slots: &[Presented], timeout_ms: u64) -> Result<u64, Error> {
    let count = slots.len() as u64;
    if count == 0 || count > POLL_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut sources = Vec::new();
    sources
        .try_reserve_exact(slots.len())
        .map_err(|_| Error::NoMemory)?;
    for slot in slots {
        if slot.binding.object_type == zen_abi::cap::ObjectType::Interrupt as u32 {
            let (irq, generation) = crate::irq::check(me, slot, Rights::RECV, 22)?;
            sources.push(Source::Irq(irq, generation));
        } else {
            let c = check_full(me, slot, Rights::RECV, 22)?;
            sources.push(Source::Ring(c.chan, c.end, c.generation));
        }
    }
    let _charge = Charge::take(me.quota(), WAIT_KMEM * count)?;
    let deadline = crate::time::ticks().saturating_add(crate::time::ms_to_ticks(timeout_ms));
    loop {
        let mut guards: [Option<task::Waiter<'_>>; POLL_MAX as usize] =
            [const { None }; POLL_MAX as usize];
        for (i, src) in sources.iter().enumerate() {
            let prepared = match src {
                Source::Ring(c, end, _) => {
                    let ring = 1 - end;
                    // A corrupt ring counts as ready: its owner sees the error when
                    // it reads.
                    let w = c.words(ring);
                    c.queues[ring][CONSUMER].prepare(|| zen_ipc::pending(w, RING_SLOTS) == Ok(0))
                }
                Source::Irq(irq, _) => irq.queue.prepare(|| !irq.is_pending()),
            };
            match prepared {
                Ok(Some(g)) => guards[i] = Some(g),
                Ok(None) if src.revoked() => return Err(Error::Denied),
                Ok(None) => return Ok(i as u64),
                Err(_) => return Err(Error::NoMemory),
            }
        }
        if me.killed() {
            return Err(Error::InvalidArgument);
        }
        if sources.iter().any(Source::revoked) {
            // Revoked while we waited: the token we came with is dead.
            return Err(Error::Denied);
        }
        if timeout_ms != u64::MAX && crate::time::ticks() >= deadline {
            return Err(Error::TimedOut);
        }
        // Sleep until a wake from a channel or the deadline tick.
        if timeout_ms == u64::MAX {
            task::park();
        } else {
            task::park_until(deadline);
        }
        // The guards drop here: no entry outlives the call.
    }
}
