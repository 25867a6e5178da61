//! Shared-memory layout of an IPC channel, as mapped into both processes.
//!
//! A channel is two single-producer/single-consumer rings, one per direction (ring 0:
//! end A produces, end B consumes; ring 1: the reverse), in [`CHANNEL_PAGES`] pages.
//! Each ring has three pages, so that every page has exactly one writer and each right
//! maps only what it needs ([`page_access`]):
//!
//! ```text
//! ring r, page r*3 + 0  ProducerWords: head, producer_waiting  (written by the producer)
//!         page r*3 + 1  ConsumerWords: tail, consumer_waiting  (written by the consumer)
//!         page r*3 + 2  SlotPage: RING_SLOTS slots of SLOT_SIZE (written by the producer)
//! ```
//!
//! A holder of SEND on end `e` maps ring `e`'s producer and slot pages read-write and
//! its consumer page read-only; a holder of RECV maps ring `1 - e`'s consumer page
//! read-write and its producer and slot pages read-only; pages of a right not held are
//! not mapped (holes in the range). So a RECV-only holder cannot publish, a SEND-only
//! holder cannot read what the peer sends, and neither can move the other's counter.
//!
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
/// Pages of one ring: producer words, consumer words, slots.
pub const RING_PAGES: usize = 3;
/// Pages of one channel's shared region.
pub const CHANNEL_PAGES: usize = 2 * RING_PAGES;
/// Page of a ring (offset within its [`RING_PAGES`]) holding [`ProducerWords`].
pub const PRODUCER_PAGE: usize = 0;
/// Page of a ring holding [`ConsumerWords`].
pub const CONSUMER_PAGE: usize = 1;
/// Page of a ring holding its [`SlotPage`].
pub const SLOTS_PAGE: usize = 2;

/// `Slot::flags`: the payload begins with a [`PageGrant`].
pub const SLOT_FLAG_GRANT: u32 = 1;
/// Every defined slot flag; a slot with other bits set is corrupt.
pub const SLOT_FLAGS_ALL: u32 = SLOT_FLAG_GRANT;

/// Value of a `*_waiting` flag when that side sleeps (or is about to) and must be woken
/// through the kernel.
pub const WAITING: u32 = 1;

/// How a channel page is mapped for one holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    ReadWrite,
}

/// How page `page` (`0..CHANNEL_PAGES`) of a channel is mapped for a holder of end
/// `end` (0 or 1) with SEND (`send`) and/or RECV (`recv`): the rule the kernel maps by
/// and user space relies on.
pub const fn page_access(end: usize, page: usize, send: bool, recv: bool) -> Access {
    let (ring, which) = (page / RING_PAGES, page % RING_PAGES);
    if page >= CHANNEL_PAGES || end > 1 {
        return Access::None;
    }
    if ring == end {
        // The ring this end produces.
        if !send {
            Access::None
        } else if which == CONSUMER_PAGE {
            Access::Read
        } else {
            Access::ReadWrite
        }
    } else if !recv {
        Access::None
    } else if which == CONSUMER_PAGE {
        Access::ReadWrite
    } else {
        Access::Read
    }
}

/// The producer's shared words of one ring, alone at the start of their page.
#[repr(C, align(64))]
pub struct ProducerWords {
    /// Messages published so far (free-running).
    pub head: AtomicU32,
    /// [`WAITING`] while the producer sleeps on a full ring.
    pub producer_waiting: AtomicU32,
    pub reserved: [u8; 56],
}

/// The consumer's shared words of one ring, alone at the start of their page.
#[repr(C, align(64))]
pub struct ConsumerWords {
    /// Messages released so far (free-running).
    pub tail: AtomicU32,
    /// [`WAITING`] while the consumer sleeps on an empty ring.
    pub consumer_waiting: AtomicU32,
    pub reserved: [u8; 56],
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

/// A page holding a ring's [`ProducerWords`].
#[repr(C, align(4096))]
pub struct ProducerPage {
    pub words: ProducerWords,
    pub reserved: [u8; 4096 - 64],
}

/// A page holding a ring's [`ConsumerWords`].
#[repr(C, align(4096))]
pub struct ConsumerPage {
    pub words: ConsumerWords,
    pub reserved: [u8; 4096 - 64],
}

/// The slots of one ring in the standard layout.
#[repr(C, align(4096))]
pub struct SlotPage {
    pub slots: [Slot; RING_SLOTS],
}

/// The three pages of one ring.
#[repr(C)]
pub struct RingShared {
    pub producer: ProducerPage,
    pub consumer: ConsumerPage,
    pub slots: SlotPage,
}

/// The whole shared region of a channel, as a process with every right maps it.
#[repr(C)]
pub struct ChannelShared {
    pub rings: [RingShared; 2],
}

impl ProducerWords {
    pub const fn new() -> Self {
        ProducerWords {
            head: AtomicU32::new(0),
            producer_waiting: AtomicU32::new(0),
            reserved: [0; 56],
        }
    }
}

impl Default for ProducerWords {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsumerWords {
    pub const fn new() -> Self {
        ConsumerWords {
            tail: AtomicU32::new(0),
            consumer_waiting: AtomicU32::new(0),
            reserved: [0; 56],
        }
    }
}

impl Default for ConsumerWords {
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

impl RingShared {
    pub const fn new() -> Self {
        RingShared {
            producer: ProducerPage {
                words: ProducerWords::new(),
                reserved: [0; 4096 - 64],
            },
            consumer: ConsumerPage {
                words: ConsumerWords::new(),
                reserved: [0; 4096 - 64],
            },
            slots: SlotPage::new(),
        }
    }
}

impl Default for RingShared {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelShared {
    pub const fn new() -> Self {
        ChannelShared {
            rings: [RingShared::new(), RingShared::new()],
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
    assert!(size_of::<ProducerWords>() == 64);
    assert!(size_of::<ConsumerWords>() == 64);
    assert!(offset_of!(ProducerWords, head) == 0);
    assert!(offset_of!(ProducerWords, producer_waiting) == 4);
    assert!(offset_of!(ConsumerWords, tail) == 0);
    assert!(offset_of!(ConsumerWords, consumer_waiting) == 4);
    assert!(size_of::<ProducerPage>() == 4096);
    assert!(size_of::<ConsumerPage>() == 4096);
    assert!(size_of::<RingShared>() == RING_PAGES * 4096);
    assert!(size_of::<Slot>() == SLOT_SIZE);
    assert!(offset_of!(Slot, data) == 8);
    assert!(size_of::<PageGrant>() == 24);
    assert!(size_of::<SlotPage>() == 4096);
    assert!(size_of::<ChannelShared>() == CHANNEL_PAGES * 4096);
    assert!(RING_SLOTS.is_power_of_two());
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_has_one_writer() {
        // For every page, exactly one (end, right) may write it, and a holder of
        // every right of one end writes only its own side's pages.
        for page in 0..CHANNEL_PAGES {
            let writers = (0..2)
                .flat_map(|end| [(end, true, false), (end, false, true)])
                .filter(|&(end, s, r)| page_access(end, page, s, r) == Access::ReadWrite)
                .count();
            assert_eq!(writers, 1, "page {page}");
        }
    }

    #[test]
    fn rights_map_only_what_they_need() {
        for end in 0..2 {
            let (own, peer) = (end, 1 - end);
            for which in 0..RING_PAGES {
                // Without SEND, nothing of the produced ring; without RECV, nothing
                // of the consumed one.
                assert_eq!(
                    page_access(end, own * RING_PAGES + which, false, true),
                    Access::None
                );
                assert_eq!(
                    page_access(end, peer * RING_PAGES + which, true, false),
                    Access::None
                );
            }
            let p = |w| page_access(end, own * RING_PAGES + w, true, false);
            assert_eq!(p(PRODUCER_PAGE), Access::ReadWrite);
            assert_eq!(p(SLOTS_PAGE), Access::ReadWrite);
            assert_eq!(p(CONSUMER_PAGE), Access::Read);
            let c = |w| page_access(end, peer * RING_PAGES + w, false, true);
            assert_eq!(c(PRODUCER_PAGE), Access::Read);
            assert_eq!(c(SLOTS_PAGE), Access::Read);
            assert_eq!(c(CONSUMER_PAGE), Access::ReadWrite);
        }
        assert_eq!(page_access(0, CHANNEL_PAGES, true, true), Access::None);
        assert_eq!(page_access(2, 0, true, true), Access::None);
    }
}
