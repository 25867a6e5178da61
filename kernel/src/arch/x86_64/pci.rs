//! PCI Express configuration space through ECAM (the MCFG's memory-mapped window,
//! 4 KiB per function), and the kernel's own access to device registers (MSI-X
//! tables). What the bytes mean is zen-pci's; this module only reads and writes them.

use crate::arch::acpi::Ecam;
use zen_abi::layout::DIRECT_MAP;
use zen_pci::Address;

/// One function's configuration space.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    virt: u64,
}

impl Function {
    /// The function at `addr` in `ecam`, if the region covers its bus. The region
    /// was checked to lie inside the direct map (`acpi::parse`).
    pub fn at(ecam: &Ecam, addr: Address) -> Option<Self> {
        (addr.segment == ecam.segment && (ecam.bus_start..=ecam.bus_end).contains(&addr.bus)).then(
            || Self {
                virt: DIRECT_MAP + ecam.base + addr.ecam_offset(ecam.bus_start),
            },
        )
    }
}

impl zen_pci::Config for Function {
    fn read32(&self, off: u16) -> u32 {
        // SAFETY: `virt` is this function's 4 KiB of ECAM in the direct map (checked
        // at parse time: aligned, below 4 GiB, outside RAM) and `off & 0xffc` stays in
        // it, aligned; configuration reads have no effect on memory.
        unsafe { core::ptr::read_volatile((self.virt + (off & 0xffc) as u64) as *const u32) }
    }
    fn write32(&self, off: u16, value: u32) {
        // SAFETY: as in `read32`; the kernel writes only the registers zen-pci and
        // the device layer name (command, BARs while probing, MSI-X control).
        unsafe { core::ptr::write_volatile((self.virt + (off & 0xffc) as u64) as *mut u32, value) }
    }
}

/// Device registers mapped for the kernel (`paging::map_mmio`), `len` bytes.
#[derive(Clone, Copy, Debug)]
pub struct Registers {
    virt: u64,
    len: u64,
}

impl Registers {
    /// Maps `len` bytes at physical `phys` (a range inside a BAR).
    pub fn map(phys: u64, len: u64) -> Option<Self> {
        Some(Self {
            virt: super::paging::map_mmio(phys, len)?,
            len,
        })
    }
    /// Writes the 32-bit register at `off` (aligned, inside the range; else nothing).
    pub fn write32(&self, off: u64, value: u32) {
        if off % 4 == 0 && off.saturating_add(4) <= self.len {
            // SAFETY: `virt .. virt + len` is an uncached kernel mapping of device
            // registers made by `map`, and `off` is aligned and inside it.
            unsafe { core::ptr::write_volatile((self.virt + off) as *mut u32, value) }
        }
    }
}

/// The MSI address and data that deliver `vector` to the CPU with local APIC id
/// `apic_id` (fixed delivery, edge, physical destination; SDM 11.11.1).
pub fn msi_message(apic_id: u32, vector: u8) -> (u64, u32) {
    (0xfee0_0000 | ((apic_id as u64 & 0xff) << 12), vector as u32)
}
