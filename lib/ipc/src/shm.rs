//! The shared-memory types the ring runs on, and the atomics it uses.
//!
//! Normally these are exactly the ABI types of `zen_abi::ipc` (what the kernel maps
//! into both processes). Under `--cfg loom` they are look-alikes built from loom's
//! model-checked atomics, with the same field names, so the ring code is the same text
//! in both builds and loom checks the real protocol.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub use zen_abi::ipc::{RingHeader, Slot};

#[cfg(loom)]
pub use self::model::{RingHeader, Slot};

#[cfg(loom)]
mod model {
    use super::{AtomicU32, AtomicU64};
    use zen_abi::ipc::SLOT_WORDS;

    /// `zen_abi::ipc::RingHeader` without the padding.
    pub struct RingHeader {
        pub head: AtomicU32,
        pub producer_waiting: AtomicU32,
        pub tail: AtomicU32,
        pub consumer_waiting: AtomicU32,
    }

    impl RingHeader {
        pub fn new() -> Self {
            RingHeader {
                head: AtomicU32::new(0),
                producer_waiting: AtomicU32::new(0),
                tail: AtomicU32::new(0),
                consumer_waiting: AtomicU32::new(0),
            }
        }
    }

    impl Default for RingHeader {
        fn default() -> Self {
            Self::new()
        }
    }

    /// `zen_abi::ipc::Slot`.
    pub struct Slot {
        pub len: AtomicU32,
        pub flags: AtomicU32,
        pub data: [AtomicU64; SLOT_WORDS],
    }

    impl Slot {
        pub fn new() -> Self {
            Slot {
                len: AtomicU32::new(0),
                flags: AtomicU32::new(0),
                data: core::array::from_fn(|_| AtomicU64::new(0)),
            }
        }
    }

    impl Default for Slot {
        fn default() -> Self {
            Self::new()
        }
    }
}
