//! Memory: the kernel's figures and the system's rare events.

use crate::sys::call_into;
use crate::Result;
use alloc::vec::Vec;
use zen_abi::syscall::{MemInfo, Syscall};

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
