//! Devices, for drivers: a device token ([`Device`]) maps the device's registers
//! ([`Mmio`]), gives it memory ([`Dma`]) and binds its MSI-X vectors to interrupt
//! tokens ([`Interrupt`]) that a driver waits on alone or, with [`poll`], together
//! with its channels.
//!
//! Registers and DMA memory are shared with hardware that changes them at any time,
//! so they are only ever accessed with volatile (registers) or atomic (memory)
//! operations at checked offsets: a driver needs no `unsafe`. An offset outside the
//! mapping panics (a driver bug, never a wild access).

use crate::chan::{Cap, Channel};
use crate::sys::{call_into, call_reading};
use crate::Result;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use zen_abi::cap::ObjectType;
use zen_abi::device::DeviceInfo;
use zen_abi::syscall::{Error, Syscall};

/// Every PCI function the kernel found.
pub fn list() -> Result<Vec<DeviceInfo>> {
    let mut buf = alloc::vec![0u8; 64 * DeviceInfo::SIZE];
    let n = call_into(Syscall::DevList, &[], &mut buf, &[])? as usize;
    Ok(buf[..n]
        .chunks_exact(DeviceInfo::SIZE)
        .map(|c| DeviceInfo::from_bytes(c.try_into().expect("32-byte chunks")))
        .collect())
}

/// A token for the function at `address` (needs the system token's DEVICE right:
/// init's).
pub fn open(system: Cap, address: u32) -> Result<Cap> {
    call_reading(
        Syscall::DevOpen,
        [system.addr(), address as u64, 0, 0, 0, 0],
    )
    .map(|s| Cap(s as usize))
}

/// The device tokens this process holds: (slot, packed PCI address).
pub fn tokens() -> Vec<(Cap, u32)> {
    crate::chan::caps()
        .into_iter()
        .filter(|(_, t)| t.binding.object_type == ObjectType::Device as u32)
        .map(|(c, t)| (c, t.binding.object as u32))
        .collect()
}

/// A device this process drives.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    cap: Cap,
}

impl Device {
    pub fn new(cap: Cap) -> Self {
        Self { cap }
    }
    pub fn cap(&self) -> Cap {
        self.cap
    }
    fn call(&self, call: Syscall, a: u64, b: u64) -> Result<u64> {
        call_reading(call, [self.cap.addr(), a, b, 0, 0, 0])
    }
    /// Memory BAR `bar`, mapped uncached. The first call of any of these makes this
    /// process the device's driver (`Busy` if another is).
    pub fn map(&self, bar: u8) -> Result<Mmio> {
        let address = self.cap.token()?.binding.object;
        let len = list()?
            .into_iter()
            .find(|d| d.address as u64 == address)
            .and_then(|d| d.bar_size(bar as usize))
            .ok_or(Error::InvalidArgument)?;
        let base = self.call(Syscall::DevMap, bar as u64, 0)?;
        Ok(Mmio {
            base,
            len: len as usize,
        })
    }
    /// `len` bytes (whole pages) of zeroed memory the device may read and write.
    pub fn dma(&self, len: usize) -> Result<Dma> {
        let addr = self.call(Syscall::DmaAlloc, len as u64, 0)?;
        let pages = len.div_ceil(4096);
        let mut device = Vec::with_capacity(pages);
        for p in 0..pages {
            device.push(self.call(Syscall::DmaAddr, addr + p as u64 * 4096, 0)?);
        }
        Ok(Dma {
            addr,
            len: pages * 4096,
            device,
        })
    }
    /// The device address of user address `addr`: in DMA memory of this device, or in
    /// a page a client granted us (which the device may then reach until we unmap
    /// it: drop the `Shared`).
    pub fn device_addr(&self, addr: u64) -> Result<u64> {
        self.call(Syscall::DmaAddr, addr, 0)
    }
    /// MSI-X vector `vector` delivered to CPU `cpu`.
    pub fn interrupt(&self, vector: u16, cpu: usize) -> Result<Interrupt> {
        let slot = self.call(Syscall::IrqBind, vector as u64, cpu as u64)?;
        Ok(Interrupt {
            cap: Cap(slot as usize),
        })
    }
}

/// A device's registers (one BAR), mapped uncached. Pages holding the MSI-X table
/// are not mapped: touching them is a page fault.
#[derive(Debug)]
pub struct Mmio {
    base: u64,
    len: usize,
}

impl Mmio {
    fn at<T>(&self, off: usize) -> u64 {
        let size = core::mem::size_of::<T>();
        assert!(off % size == 0, "unaligned register");
        assert!(off + size <= self.len, "register past the BAR");
        self.base + off as u64
    }
    pub fn read32(&self, off: usize) -> u32 {
        let p = self.at::<u32>(off) as *const u32;
        // SAFETY: the kernel mapped the BAR at `base` for this process's life (device
        // pages are never unmapped before exit); `p` is aligned and inside it. A
        // volatile read of a device register reads no Rust-visible memory. An MSI-X
        // page is unmapped: touching it faults (the process dies), which is no
        // undefined behaviour of this program's memory.
        unsafe { core::ptr::read_volatile(p) }
    }
    pub fn write32(&self, off: usize, v: u32) {
        let p = self.at::<u32>(off) as *mut u32;
        // SAFETY: as in `read32`; the write goes to the device, not to Rust memory.
        unsafe { core::ptr::write_volatile(p, v) }
    }
    pub fn read64(&self, off: usize) -> u64 {
        let p = self.at::<u64>(off) as *const u64;
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(p) }
    }
    pub fn write64(&self, off: usize, v: u64) {
        let p = self.at::<u64>(off) as *mut u64;
        // SAFETY: as in `write32`.
        unsafe { core::ptr::write_volatile(p, v) }
    }
}

/// Memory a device reads and writes, mapped here too. Accessed as atomics only: the
/// device writes it concurrently.
#[derive(Debug)]
pub struct Dma {
    addr: u64,
    len: usize,
    /// The device address of each page.
    device: Vec<u64>,
}

impl Dma {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The address the device uses for byte `off`.
    pub fn device_addr(&self, off: usize) -> u64 {
        assert!(off < self.len, "offset past the DMA memory");
        self.device[off / 4096] + (off % 4096) as u64
    }
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the kernel mapped `len` bytes at the page-aligned `addr` for this
        // process's life (DMA memory is unmapped only at exit); AtomicU64 has no
        // invalid bit patterns and every access through it is atomic, so the device
        // writing concurrently is no data race.
        unsafe { core::slice::from_raw_parts(self.addr as *const AtomicU64, self.len / 8) }
    }
    fn words32(&self) -> &[AtomicU32] {
        // SAFETY: as in `words`, as 32-bit atomics.
        unsafe { core::slice::from_raw_parts(self.addr as *const AtomicU32, self.len / 4) }
    }
    pub fn read32(&self, off: usize) -> u32 {
        assert!(off % 4 == 0);
        self.words32()[off / 4].load(Ordering::Acquire)
    }
    pub fn write32(&self, off: usize, v: u32) {
        assert!(off % 4 == 0);
        self.words32()[off / 4].store(v, Ordering::Release)
    }
    pub fn read64(&self, off: usize) -> u64 {
        assert!(off % 8 == 0);
        self.words()[off / 8].load(Ordering::Acquire)
    }
    pub fn write64(&self, off: usize, v: u64) {
        assert!(off % 8 == 0);
        self.words()[off / 8].store(v, Ordering::Release)
    }
    /// Copies bytes from `off` into `out`; how many (clipped to the end).
    pub fn read(&self, off: usize, out: &mut [u8]) -> usize {
        zen_ipc::read_words(self.words(), off, out)
    }
    /// Copies `data` to `off`; `InvalidArgument` (nothing written) past the end.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<()> {
        zen_ipc::write_words(self.words(), off, data).map_err(|_| Error::InvalidArgument)
    }
    /// Zeroes `len` bytes from `off` (whole words).
    pub fn zero(&self, off: usize, len: usize) {
        for w in &self.words()[off / 8..(off + len).div_ceil(8)] {
            w.store(0, Ordering::Relaxed);
        }
    }
}

/// One bound MSI-X vector.
#[derive(Clone, Copy, Debug)]
pub struct Interrupt {
    cap: Cap,
}

impl Interrupt {
    /// An interrupt token received from elsewhere.
    pub fn from_cap(cap: Cap) -> Self {
        Self { cap }
    }
    pub fn cap(&self) -> Cap {
        self.cap
    }
    /// Interrupts since the last wait (at least one; sleeps until then).
    /// `TimedOut` after `timeout_ms` (`u64::MAX`: never).
    pub fn wait(&self, timeout_ms: u64) -> Result<u64> {
        call_reading(Syscall::IrqWait, [self.cap.addr(), timeout_ms, 0, 0, 0, 0])
    }
    /// Takes the interrupts pending now, without waiting: how many (0 for none).
    pub fn take(&self) -> Result<u64> {
        match self.wait(0) {
            Err(Error::TimedOut) => Ok(0),
            r => r,
        }
    }
}

/// Waits until one of `chans` has a message or one of `irqs` an interrupt; the index
/// of a ready one, channels first (`chans.len() + i` for `irqs[i]`). `timeout_ms` as
/// in [`crate::chan::poll`].
pub fn poll(chans: &mut [&mut Channel], irqs: &[Interrupt], timeout_ms: u64) -> Result<usize> {
    let extra: Vec<zen_abi::cap::TokenSlot> =
        irqs.iter().map(|i| i.cap.token()).collect::<Result<_>>()?;
    crate::chan::poll_with(chans, &extra, timeout_ms)
}
