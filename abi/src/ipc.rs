//! Shared-memory layout of an IPC channel, as mapped into both processes.
//!
//! A channel is two single-producer/single-consumer rings, one per direction, in
//! [`CHANNEL_PAGES`] pages mapped into both ends:
//!
//! ```text
//! page 0  ControlPage: RingHeader for ring 0 (end A -> end B), RingHeader for ring 1
//!         (B -> A), the rest reserved
//! page 1  SlotPage of ring 0: RING_SLOTS slots of SLOT_SIZE bytes
//! page 2  SlotPage of ring 1
//! ```
//!
//! A [`RingHeader`] holds two cache lines: one written only by the producer (`head`,
//! `producer_waiting`), one written only by the consumer (`tail`, `consumer_waiting`).
//! `head` and `tail` are free-running `u32` counters (slot = counter % slots, the slot
//! count is a power of two); the ring holds `head - tail` (wrapping) messages. Nothing in
//! shared memory is a pointer, and no value read from it is trusted: the peer can write
//! anything at any time, so `zen-ipc` checks every index it reads. A zeroed page is an
//! empty ring. The protocol (orderings, wake-up flags) is in `zen-ipc`.
//!
//! A [`Slot`] is an 8-byte header (`len`, `flags`) and [`SLOT_PAYLOAD`] bytes of
//! payload stored as little-endian `u64` words. With [`SLOT_FLAG_GRANT`] the payload
//! starts with a [`PageGrant`]; inline bytes follow it.
//!
//! Everything that lives in shared memory is an atomic, so both sides access it through
//! shared references without `unsafe` and without data races in the Rust sense.

use core::sync::atomic::{AtomicU32, AtomicU64};

/// Bytes in one slot, header included.
pub const SLOT_SIZE: usize = 128;
/// Payload words per slot.
pub const SLOT_WORDS: usize = 15;
/// Payload bytes per slot.
pub const SLOT_PAYLOAD: usize = SLOT_WORDS * 8;
/// Slots per ring in the standard channel layout (a power of two).
pub const RING_SLOTS: usize = 32;
/// Pages of one channel's shared region.
pub const CHANNEL_PAGES: usize = 3;

/// `Slot::flags`: the payload begins with a [`PageGrant`].
pub const SLOT_FLAG_GRANT: u32 = 1;
/// Every defined slot flag; a slot with other bits set is corrupt.
pub const SLOT_FLAGS_ALL: u32 = SLOT_FLAG_GRANT;

/// Value of a `*_waiting` flag when that side sleeps (or is about to) and must be woken
/// through the kernel.
pub const WAITING: u32 = 1;

/// The shared control block of one ring. 128 bytes, two cache lines so the producer's
/// and the consumer's stores do not bounce one line between CPUs.
#[repr(C, align(64))]
pub struct RingHeader {
    // Written by the producer only.
    /// Messages published so far (free-running).
    pub head: AtomicU32,
    /// [`WAITING`] while the producer sleeps on a full ring.
    pub producer_waiting: AtomicU32,
    pub reserved0: [u8; 56],
    // Written by the consumer only.
    /// Messages released so far (free-running).
    pub tail: AtomicU32,
    /// [`WAITING`] while the consumer sleeps on an empty ring.
    pub consumer_waiting: AtomicU32,
    pub reserved1: [u8; 56],
}

/// One message slot.
#[repr(C)]
pub struct Slot {
    /// Payload bytes used, at most [`SLOT_PAYLOAD`].
    pub len: AtomicU32,
    /// `SLOT_FLAG_*` bits.
    pub flags: AtomicU32,
    /// The payload, little-endian: byte `i` is byte `i % 8` of word `i / 8`.
    pub data: [AtomicU64; SLOT_WORDS],
}

/// A large payload moved as shared pages instead of copied: the sender asks the kernel
/// for a grant of some of its pages, puts the grant's id here, and the receiver asks the
/// kernel to map it. The kernel checks the id belongs to the receiver; these fields are
/// only what the receiver expects. 24 bytes, three payload words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageGrant {
    /// Kernel grant id (non-zero).
    pub id: u64,
    /// Length in bytes (non-zero).
    pub len: u64,
    /// `cap::Rights` bits the mapping gets: only READ and WRITE make sense.
    pub rights: u64,
}

/// Page 0 of a channel: the two ring headers.
#[repr(C, align(4096))]
pub struct ControlPage {
    /// `rings[0]`: end A produces, end B consumes; `rings[1]`: the reverse.
    pub rings: [RingHeader; 2],
    pub reserved: [u8; 4096 - 2 * 128],
}

/// The slots of one ring in the standard layout.
#[repr(C, align(4096))]
pub struct SlotPage {
    pub slots: [Slot; RING_SLOTS],
}

/// The whole shared region of a channel.
#[repr(C)]
pub struct ChannelShared {
    pub control: ControlPage,
    /// `rings[i]` holds the slots of `control.rings[i]`.
    pub rings: [SlotPage; 2],
}

impl RingHeader {
    pub const fn new() -> Self {
        RingHeader {
            head: AtomicU32::new(0),
            producer_waiting: AtomicU32::new(0),
            reserved0: [0; 56],
            tail: AtomicU32::new(0),
            consumer_waiting: AtomicU32::new(0),
            reserved1: [0; 56],
        }
    }
}

impl Default for RingHeader {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    pub const fn new() -> Self {
        Slot {
            len: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            data: [const { AtomicU64::new(0) }; SLOT_WORDS],
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotPage {
    pub const fn new() -> Self {
        SlotPage {
            slots: [const { Slot::new() }; RING_SLOTS],
        }
    }
}

impl Default for SlotPage {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlPage {
    pub const fn new() -> Self {
        ControlPage {
            rings: [RingHeader::new(), RingHeader::new()],
            reserved: [0; 4096 - 256],
        }
    }
}

impl Default for ControlPage {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelShared {
    pub const fn new() -> Self {
        ChannelShared {
            control: ControlPage::new(),
            rings: [SlotPage::new(), SlotPage::new()],
        }
    }
}

impl Default for ChannelShared {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RingHeader>() == 128);
    assert!(offset_of!(RingHeader, head) == 0);
    assert!(offset_of!(RingHeader, producer_waiting) == 4);
    assert!(offset_of!(RingHeader, tail) == 64);
    assert!(offset_of!(RingHeader, consumer_waiting) == 68);
    assert!(size_of::<Slot>() == SLOT_SIZE);
    assert!(offset_of!(Slot, data) == 8);
    assert!(size_of::<PageGrant>() == 24);
    assert!(size_of::<ControlPage>() == 4096);
    assert!(size_of::<SlotPage>() == 4096);
    assert!(size_of::<ChannelShared>() == CHANNEL_PAGES * 4096);
    assert!(RING_SLOTS.is_power_of_two());
};
