//! Memory: mappings, memory shared by page grants, the kernel's figures and the
//! system's rare events.

use crate::sys::call_into;
use crate::Result;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;
use zen_abi::syscall::{Error, MemInfo, Syscall};

pub use zen_abi::syscall::MemInfo as Info;

/// Frames and kernel heap use.
pub fn info() -> Result<MemInfo> {
    let mut b = [0u8; MemInfo::SIZE];
    call_into(Syscall::MemInfo, &[], &mut b, &[])?;
    Ok(MemInfo::from_bytes(&b))
}

/// One EDGE_REGISTRY record, decoded: (kind byte, cpu, detail, payload, stamp).
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub kind: u8,
    pub cpu: u8,
    pub detail: u16,
    pub payload: u32,
    pub stamp: u32,
}

/// The kernel's EDGE_REGISTRY.
pub fn edges() -> Result<Vec<Edge>> {
    let mut cap = 64 * 12;
    loop {
        let mut buf = alloc::vec![0u8; cap];
        match call_into(Syscall::Edges, &[], &mut buf, &[]) {
            Ok(n) => {
                return Ok(buf[..n as usize * 12]
                    .chunks_exact(12)
                    .map(|r| Edge {
                        kind: r[0],
                        cpu: r[1],
                        detail: u16::from_le_bytes([r[2], r[3]]),
                        payload: u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
                        stamp: u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
                    })
                    .collect())
            }
            Err(zen_abi::syscall::Error::BufferTooSmall) if cap < 1 << 20 => cap *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Name of an edge kind (see zen-edge).
pub fn edge_kind_name(kind: u8) -> &'static str {
    match kind {
        1 => "page fault",
        2 => "general protection",
        3 => "exception",
        4 => "spurious interrupt",
        5 => "capability denied",
        6 => "ring overflow",
        7 => "allocation failure",
        8 => "pool exhausted",
        9 => "stale handle",
        10 => "run queue full",
        11 => "IOMMU fault",
        _ => "unknown",
    }
}

/// Zeroed memory mapped for this process by the `map` call, unmapped on drop.
#[derive(Debug)]
pub struct Region {
    addr: u64,
    len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up to whole pages).
    pub fn new(len: usize) -> Result<Region> {
        let addr = crate::sys::call_reading(Syscall::Map, [len as u64, 0, 0, 0, 0, 0])?;
        Ok(Region {
            addr,
            len: len.next_multiple_of(4096),
        })
    }
    /// Where it is mapped.
    pub fn addr(&self) -> u64 {
        self.addr
    }
}

impl core::ops::Deref for Region {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel mapped `len` bytes at `addr` read-write for this process,
        // and only this Region (which is not Clone) hands out references to them.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl core::ops::DerefMut for Region {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, borrowed mutably through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: no reference into the region outlives `self`.
        unsafe {
            crate::sys::raw(
                Syscall::Unmap as u64,
                [self.addr, self.len as u64, 0, 0, 0, 0],
            )
        };
    }
}

/// Memory that can be shared with another process by a page grant
/// ([`crate::chan::Channel::send_grant`], [`crate::chan::Channel::accept`]): the pages are
/// mapped into both processes, never copied. Either side may write them while the
/// other reads, so they are only ever accessed as atomic words (plain loads and stores
/// on x86_64, no data race in Rust's sense); [`Shared::read`] and [`Shared::write`]
/// copy bytes in and out. Unmapped on drop; the pages live on while another process
/// maps them.
#[derive(Debug)]
pub struct Shared {
    addr: u64,
    len: usize,
    writable: bool,
}

impl Shared {
    /// Maps `len` bytes (rounded up to whole pages) of zeroed memory to share.
    pub fn new(len: usize) -> Result<Shared> {
        let addr = crate::sys::call_reading(Syscall::Map, [len as u64, 0, 0, 0, 0, 0])?;
        Ok(Shared {
            addr,
            len: len.next_multiple_of(4096),
            writable: true,
        })
    }

    /// A grant mapped by `grant_map` at `addr` (called by `Channel::accept`).
    pub(crate) fn mapped(addr: u64, len: usize, writable: bool) -> Shared {
        Shared {
            addr,
            len: len.next_multiple_of(4096),
            writable,
        }
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }
    /// Bytes mapped (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether this process may write it (a grant without WRITE is mapped read-only).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The memory as words (byte `i` is byte `i % 8` of word `i / 8`).
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the kernel mapped `len` bytes at the page-aligned `addr` for this
        // process until `self` drops (only `Drop` unmaps them); AtomicU64 has no invalid
        // bit patterns, and every access through it is atomic, so other processes
        // writing the pages concurrently is no data race.
        unsafe { core::slice::from_raw_parts(self.addr as *const AtomicU64, self.len / 8) }
    }

    /// Copies bytes from `offset` into `out`; how many (clipped to the end).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        zen_ipc::read_words(self.words(), offset, out)
    }

    /// Copies `data` to `offset`. `Denied` if mapped read-only, `InvalidArgument`
    /// (nothing written) past the end.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::Denied);
        }
        zen_ipc::write_words(self.words(), offset, data).map_err(|_| Error::InvalidArgument)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: no reference into the memory outlives `self` (`words` borrows it).
        unsafe {
            crate::sys::raw(
                Syscall::Unmap as u64,
                [self.addr, self.len as u64, 0, 0, 0, 0],
            )
        };
    }
}
