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
pub use zen_abi::ipc::{ConsumerWords, ProducerWords, Slot};

#[cfg(loom)]
pub use self::model::{ConsumerWords, ProducerWords, Slot};

/// One ring's shared counters: the producer's words and the consumer's, which live on
/// different pages (each side maps only its own read-write). What the ring code and
/// the kernel's checks work on.
#[derive(Clone, Copy)]
pub struct RingWords<'a> {
    pub producer: &'a ProducerWords,
    pub consumer: &'a ConsumerWords,
}

/// Both sides' words in one place, for tests and for rings that are not split across
/// pages (a host model, a single process).
#[derive(Default)]
pub struct RingHeader {
    pub producer: ProducerWords,
    pub consumer: ConsumerWords,
}

impl RingHeader {
    pub fn new() -> Self {
        RingHeader {
            producer: ProducerWords::new(),
            consumer: ConsumerWords::new(),
        }
    }

    pub fn words(&self) -> RingWords<'_> {
        RingWords {
            producer: &self.producer,
            consumer: &self.consumer,
        }
    }
}

#[cfg(loom)]
mod model {
    use super::{AtomicU32, AtomicU64};
    use zen_abi::ipc::SLOT_WORDS;

    /// `zen_abi::ipc::ProducerWords` without the padding.
    pub struct ProducerWords {
        pub head: AtomicU32,
        pub producer_waiting: AtomicU32,
    }

    /// `zen_abi::ipc::ConsumerWords` without the padding.
    pub struct ConsumerWords {
        pub tail: AtomicU32,
        pub consumer_waiting: AtomicU32,
    }

    impl ProducerWords {
        pub fn new() -> Self {
            ProducerWords {
                head: AtomicU32::new(0),
                producer_waiting: AtomicU32::new(0),
            }
        }
    }

    impl Default for ProducerWords {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ConsumerWords {
        pub fn new() -> Self {
            ConsumerWords {
                tail: AtomicU32::new(0),
                consumer_waiting: AtomicU32::new(0),
            }
        }
    }

    impl Default for ConsumerWords {
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
