//! zen-edge: the EDGE_REGISTRY, a fixed table of rare kernel events.
//!
//! Faults, capability denials, ring overflows, allocation failures and spurious
//! interrupts are each worth one line of evidence when something odd happened, and a
//! clean boot must leave the table empty, which kernel tests assert. So the table is:
//!
//! - **fixed**: `N` slots of 12 bytes each, in a `static`; no heap, nothing grows;
//! - **lock-free**: any CPU, in any context (a fault handler, an NMI-like path, with
//!   interrupts off) records with a couple of atomic operations and never waits;
//! - **first come, first kept**: once full, new events are counted as dropped, never
//!   overwrite old ones, because the first anomaly is usually the cause and later ones
//!   its echoes;
//! - **read as a whole**: [`EdgeRegistry::iter`] / [`EdgeRegistry::snapshot`] return
//!   every published record in the order the slots were claimed.
//!
//! # Protocol
//! A writer claims slot `i` with `fetch_add` on `next`, writes the payload words
//! (`Relaxed`), then publishes the word holding the kind (`Release`). Kind 0 is never a
//! valid kind, so a reader that loads the kind word (`Acquire`) and sees 0 knows the slot
//! is claimed but still being written and skips it; one that sees a kind also sees the
//! payload written before it. Each slot is written at most once between two clears, so
//! a published slot never changes under a reader.
//!
//! Storage is three `AtomicU32` per slot, exactly the 12 bytes of an [`EdgeRecord`].
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

mod sync {
    //! Atomics, swapped for loom's model-checked ones under `--cfg loom`.
    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
}

use sync::{AtomicU32, AtomicUsize, Ordering};

/// What happened. The discriminant is the record's first byte; 0 is reserved (it marks
/// an unpublished slot) and values not listed here are free for later subsystems.
#[repr(u8)]
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// A page fault the kernel did not resolve. `detail`: error code; `payload`: low 32
    /// bits of CR2.
    PageFault = 1,
    /// A general-protection fault. `detail`: error code; `payload`: low 32 bits of RIP.
    GeneralProtection = 2,
    /// Any other CPU exception. `detail`: vector; `payload`: low 32 bits of RIP.
    Exception = 3,
    /// An interrupt nobody claimed. `detail`: vector.
    SpuriousInterrupt = 4,
    /// A capability check refused an operation. `detail`: syscall number; `payload`:
    /// object id.
    CapabilityDenied = 5,
    /// A ring had no room for a message. `detail`: ring or channel id.
    RingOverflow = 6,
    /// A frame or heap allocation failed. `payload`: size or frame count asked for.
    AllocFailure = 7,
    /// A fixed object pool (LazyPool) was full. `detail`: pool id.
    PoolExhausted = 8,
    /// A stale or forged object handle was presented. `payload`: the handle's index.
    StaleHandle = 9,
    /// A run queue was full and a task could not be made runnable. `payload`: task id.
    RunQueueFull = 10,
    /// The IOMMU stopped a device's DMA outside its driver's memory. `detail`: the
    /// requester (bus << 8 | devfn); `payload`: the page address >> 12.
    IommuFault = 11,
}

impl EdgeKind {
    /// Decodes a kind byte; `None` for 0 and for values not (yet) defined.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::PageFault,
            2 => Self::GeneralProtection,
            3 => Self::Exception,
            4 => Self::SpuriousInterrupt,
            5 => Self::CapabilityDenied,
            6 => Self::RingOverflow,
            7 => Self::AllocFailure,
            8 => Self::PoolExhausted,
            9 => Self::StaleHandle,
            10 => Self::RunQueueFull,
            11 => Self::IommuFault,
            _ => return None,
        })
    }
}

/// One event, 12 bytes packed. Fields are public and `Copy`; read them by value.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeRecord {
    /// What happened.
    pub kind: EdgeKind,
    /// The CPU that saw it (its index, not its APIC id).
    pub cpu: u8,
    /// Small kind-specific detail: a vector, an error code, a syscall number.
    pub detail: u16,
    /// Kind-specific payload: low address bits, an object id, a size.
    pub payload: u32,
    /// The caller's time stamp (e.g. TSC >> 10, or a tick count); the registry does not
    /// interpret it. Order of claiming is the order of [`EdgeRegistry::iter`].
    pub stamp: u32,
}

const _: () = assert!(core::mem::size_of::<EdgeRecord>() == 12);

impl EdgeRecord {
    /// The record as 12 little-endian bytes, in field order (how it crosses to user
    /// space).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.head_word().to_le_bytes());
        b[4..8].copy_from_slice(&self.payload.to_le_bytes());
        b[8..12].copy_from_slice(&self.stamp.to_le_bytes());
        b
    }

    /// Decodes [`EdgeRecord::to_bytes`]; `None` for an unknown kind.
    pub fn from_bytes(b: &[u8; 12]) -> Option<Self> {
        Some(EdgeRecord {
            kind: EdgeKind::from_u8(b[0])?,
            cpu: b[1],
            detail: u16::from_le_bytes([b[2], b[3]]),
            payload: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            stamp: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    /// The first storage word: kind, cpu and detail; never 0 because kind is never 0.
    const fn head_word(&self) -> u32 {
        self.kind as u32 | (self.cpu as u32) << 8 | (self.detail as u32) << 16
    }
}

/// One slot's storage; the three words of an [`EdgeRecord`].
struct Slot {
    /// kind | cpu << 8 | detail << 16, or 0 while unpublished. Written last (`Release`).
    head: AtomicU32,
    payload: AtomicU32,
    stamp: AtomicU32,
}

impl Slot {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            head: AtomicU32::new(0),
            payload: AtomicU32::new(0),
            stamp: AtomicU32::new(0),
        }
    }
    #[cfg(loom)]
    fn new() -> Self {
        Self {
            head: AtomicU32::new(0),
            payload: AtomicU32::new(0),
            stamp: AtomicU32::new(0),
        }
    }

    /// The record, if published.
    fn load(&self) -> Option<EdgeRecord> {
        let head = self.head.load(Ordering::Acquire);
        let kind = EdgeKind::from_u8(head as u8)?;
        Some(EdgeRecord {
            kind,
            cpu: (head >> 8) as u8,
            detail: (head >> 16) as u16,
            payload: self.payload.load(Ordering::Relaxed),
            stamp: self.stamp.load(Ordering::Relaxed),
        })
    }
}

/// The registry: `N` slots, a claim counter and a drop counter.
///
/// The kernel declares `static EDGE_REGISTRY: EdgeRegistry<256> = EdgeRegistry::new();`.
pub struct EdgeRegistry<const N: usize> {
    slots: [Slot; N],
    /// Slots claimed so far. May run past `N` by at most the number of concurrent
    /// writers (each checks before claiming), so it cannot wrap.
    next: AtomicUsize,
    /// Events refused because the table was full.
    dropped: AtomicUsize,
}

impl<const N: usize> core::fmt::Debug for EdgeRegistry<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EdgeRegistry")
            .field("capacity", &N)
            .field("len", &self.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<const N: usize> Default for EdgeRegistry<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> EdgeRegistry<N> {
    /// An empty registry; `const` so it can be a `static`.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
            next: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// An empty registry (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| Slot::new()),
            next: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Records an event. Lock-free and wait-free: a few atomic operations, never a loop.
    /// Returns `false` if the table was full and the event was only counted as dropped.
    pub fn record(&self, rec: EdgeRecord) -> bool {
        // Checking first keeps `next` from growing past N + (number of CPUs).
        if self.next.load(Ordering::Relaxed) >= N {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.slots.get(i) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        slot.payload.store(rec.payload, Ordering::Relaxed);
        slot.stamp.store(rec.stamp, Ordering::Relaxed);
        // Publishes the two stores above to any reader that sees this kind.
        slot.head.store(rec.head_word(), Ordering::Release);
        true
    }

    /// Shorthand for [`record`](Self::record) with the fields spelled out.
    pub fn report(&self, kind: EdgeKind, cpu: u8, detail: u16, payload: u32, stamp: u32) -> bool {
        self.record(EdgeRecord {
            kind,
            cpu,
            detail,
            payload,
            stamp,
        })
    }

    /// The capacity, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Slots claimed so far (published or still being written), at most `N`.
    pub fn claimed(&self) -> usize {
        self.next.load(Ordering::Acquire).min(N)
    }

    /// Events dropped because the table was full.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Published records; equals [`claimed`](Self::claimed) once writers are done.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if nothing was recorded or dropped: what a clean boot must leave behind.
    pub fn is_empty(&self) -> bool {
        self.claimed() == 0 && self.dropped() == 0
    }

    /// Published records of one kind.
    pub fn count(&self, kind: EdgeKind) -> usize {
        self.iter().filter(|r| r.kind == kind).count()
    }

    /// Every published record, in claim order. Slots claimed but not yet published are
    /// skipped, so a snapshot taken while writers run is a consistent subset.
    pub fn iter(&self) -> Iter<'_, N> {
        Iter {
            reg: self,
            i: 0,
            end: self.claimed(),
        }
    }

    /// Copies published records into `out` (in claim order); returns how many.
    pub fn snapshot(&self, out: &mut [EdgeRecord]) -> usize {
        let mut n = 0;
        for (dst, rec) in out.iter_mut().zip(self.iter()) {
            *dst = rec;
            n += 1;
        }
        n
    }

    /// Empties the table and the drop count, for tests between scenarios.
    ///
    /// Only meaningful when no writer is active: a write racing a clear stays memory
    /// safe (everything is atomic) but may be lost or land half-cleared.
    pub fn clear(&self) {
        // Unpublish every slot before reopening them, so a reader never sees a stale
        // record in a slot that `next` says is claimed again.
        for slot in &self.slots {
            slot.head.store(0, Ordering::Relaxed);
        }
        self.dropped.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Release);
    }
}

/// Iterator over published records; see [`EdgeRegistry::iter`].
#[derive(Debug)]
pub struct Iter<'a, const N: usize> {
    reg: &'a EdgeRegistry<N>,
    i: usize,
    end: usize,
}

impl<const N: usize> Iterator for Iter<'_, N> {
    type Item = EdgeRecord;

    fn next(&mut self) -> Option<EdgeRecord> {
        while self.i < self.end {
            let slot = &self.reg.slots[self.i];
            self.i += 1;
            if let Some(rec) = slot.load() {
                return Some(rec);
            }
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
