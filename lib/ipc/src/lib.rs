//! zen-ipc: the channel ring, a single-producer/single-consumer queue of fixed-size
//! message slots in pages shared by two processes.
//!
//! The layout is `zen_abi::ipc`: per ring, the producer's words, the consumer's words
//! (each on its own page, so each side maps only its own writable: [`RingWords`]) and
//! a power-of-two array of [`Slot`]s. A channel is two rings, one per direction; each end holds a [`Producer`]
//! on one and a [`Consumer`] on the other. The kernel only creates and maps the pages,
//! sleeps and wakes: messages never pass through it.
//!
//! # Messages
//! The producer [`Producer::reserve`]s the next free slot, writes the message in place
//! ([`SendSlot::write`], or word by word through [`SendSlot::words`]), optionally a
//! [`PageGrant`], then [`SendSlot::publish`]es. The consumer [`Consumer::peek`]s the
//! oldest message in place ([`RecvSlot::read`], [`RecvSlot::grant`]) and
//! [`RecvSlot::release`]s the slot to the producer. Dropping a `SendSlot` unpublished
//! or a `RecvSlot` unreleased leaves the ring as it was.
//!
//! # Memory ordering
//! `head` and `tail` are free-running `u32` counters; slot = counter % slot count.
//! - Producer: write slot (Relaxed) → `head.store(Release)`. Consumer:
//!   `head.load(Acquire)` → read slot (Relaxed). So a published slot is seen whole.
//! - Consumer: read slot → `tail.store(Release)`. Producer: `tail.load(Acquire)` →
//!   overwrite slot. So a slot is never rewritten while the consumer still reads it.
//!
//! Each side keeps its own counter privately and only ever *stores* it to shared memory,
//! never reads it back, so a peer that scribbles on it cannot move it.
//!
//! # A hostile peer
//! The other process may write anything into the shared pages at any time. Every value
//! read from them is checked before use: a peer counter more than one ring ahead or
//! behind is [`RingError::Corrupt`] (the channel is then dead; close it), a slot whose
//! `len` exceeds the payload or whose flags are unknown is [`RingError::BadMessage`]
//! (skip it with [`Consumer::discard`]). Lengths and grants are read once and copied, so
//! a peer changing them after the check changes nothing. The worst a peer can do is
//! garble the messages *it* sends or receives, or stop the channel; it can never cause
//! a panic or an out-of-bounds access on this side. (Tested: `src/tests.rs`,
//! `tests/model.rs`.)
//!
//! # Wake-up protocol (like io_uring's `NEED_WAKEUP`, with a futex-style recheck)
//! A side that finds the ring empty (consumer) or full (producer) and wants to block:
//! 1. stores `WAITING` into its own `*_waiting` flag,
//! 2. `fence(SeqCst)`,
//! 3. reloads the peer's counter; if the ring became ready it clears the flag and goes
//!    on ([`Wait::Ready`]); otherwise it asks the kernel to sleep *while the peer's
//!    counter still equals* the value it saw ([`Wait::Sleep`]), and clears the flag when
//!    it wakes ([`Consumer::wait_readable`] runs the whole loop).
//!
//! The other side, after storing its counter (publish or release), does `fence(SeqCst)`
//! and loads the flag: only if it is set does it trap into the kernel ([`Wakeup::Needed`]
//! → `msg_send`) to wake the sleeper. The two fences form a store-buffering (Dekker)
//! pair: at least one side sees the other's store, so either the waiter sees the new
//! counter and does not sleep, or the waker sees the flag and wakes it. The kernel
//! checks the counter ([`consumer_may_sleep`], [`producer_may_sleep`]) under the same
//! wait-queue lock it takes to wake, so a wake between step 3 and the actual sleep is not
//! lost either. In the common case (peer busy, not waiting) sending costs no system call.
//! A hostile peer can clear or set our flag: that only costs it wake-ups or us spurious
//! system calls. (Model-checked with loom: `tests/loom.rs`.)
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

mod ring;
mod shm;

pub use ring::{read_words, write_words, Consumer, Producer, RecvSlot, SendSlot};
pub use shm::{ConsumerWords, ProducerWords, RingHeader, RingWords, Slot};
pub use zen_abi::ipc::{PageGrant, SLOT_PAYLOAD, SLOT_WORDS};

use shm::Ordering::{Acquire, Relaxed};

/// Bytes of payload a [`PageGrant`] takes at the start of a slot; inline data may
/// follow from this offset.
pub const GRANT_SIZE: usize = core::mem::size_of::<PageGrant>();

/// Why a ring operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The slot array is empty, not a power of two, or longer than 2^31 slots.
    Geometry,
    /// A counter read from shared memory is impossible (more than one ring apart from
    /// ours): the peer is broken or hostile. The channel should be closed.
    Corrupt,
    /// The oldest message has a bad length, flags or grant. [`Consumer::discard`] skips it.
    BadMessage,
    /// A write past the end of the slot's payload.
    TooLarge,
}

/// Whether the side that just published or released must ask the kernel to wake its
/// peer (`msg_send`). `NotNeeded` is the common, system-call-free case.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    Needed,
    NotNeeded,
}

/// Result of announcing that we want to block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The ring became ready meanwhile: do not sleep (the flag is already cleared).
    Ready,
    /// Ask the kernel to sleep while the peer's counter equals this value, then call
    /// `end_wait`.
    Sleep(u32),
}

/// Kernel side of a blocking receive: may the consumer sleep, having seen the ring
/// empty at `head == expected`? Call under the ring's wait-queue lock.
pub fn consumer_may_sleep(w: RingWords<'_>, expected: u32) -> bool {
    w.producer.head.load(Acquire) == expected
}

/// Kernel side of a blocking send: may the producer sleep, having seen the ring full
/// at `tail == expected`? Call under the ring's wait-queue lock.
pub fn producer_may_sleep(w: RingWords<'_>, expected: u32) -> bool {
    w.consumer.tail.load(Acquire) == expected
}

/// Kernel side of a wake-up: the sleeper on `side` of the ring (consumer or producer)
/// is being woken, so its waiting flag goes down now, under the wait-queue lock, rather
/// than when it next runs. Until then the peer would otherwise see the flag still up
/// and trap into the kernel on every message to wake a thread that is already
/// runnable: on one CPU, for a whole ring's worth of messages. Only call it for a
/// sleeper that was registered (so the flag it set belongs to the sleep now ending); if
/// it sleeps again it raises the flag again first (step 1).
pub fn kernel_woke(w: RingWords<'_>, side: Side) {
    match side {
        Side::Consumer => w.consumer.consumer_waiting.store(0, Relaxed),
        Side::Producer => w.producer.producer_waiting.store(0, Relaxed),
    }
}

/// Which end of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Consumer,
    Producer,
}

/// Messages waiting in a ring of `slots` slots, from both shared counters, for the
/// kernel's `msg_poll`. A hostile pair of counters gives `Corrupt`; the kernel should
/// then report the channel ready so its owner sees the error itself.
pub fn pending(w: RingWords<'_>, slots: usize) -> Result<u32, RingError> {
    let n = ring::slot_count(slots)?;
    let d = w
        .producer
        .head
        .load(Acquire)
        .wrapping_sub(w.consumer.tail.load(Acquire));
    if d > n {
        Err(RingError::Corrupt)
    } else {
        Ok(d)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
