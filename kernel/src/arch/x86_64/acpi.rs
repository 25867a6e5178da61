//! ACPI tables through the `acpi` crate: the MADT's list of CPUs.
//!
//! Physical regions are read through the direct map, so "mapping" a table is just an
//! address computation and unmapping does nothing.

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;
use zen_abi::layout::DIRECT_MAP;

#[derive(Clone, Copy, Debug)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = (DIRECT_MAP as usize + phys) as *mut T;
        // SAFETY: the direct map covers all physical memory (the stub maps at least
        // 4 GiB and all RAM), so `virt` is valid for `size` bytes; the acpi crate only
        // reads through it. `virt` is non-null because DIRECT_MAP is.
        unsafe { PhysicalMapping::new(phys, NonNull::new_unchecked(virt), size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// A CPU the firmware reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    pub apic_id: u32,
}

/// The local APIC ids of every enabled (or online-capable) CPU in the MADT.
pub fn cpus(rsdp: u64) -> Result<Vec<CpuEntry>, &'static str> {
    if rsdp == 0 {
        return Err("no RSDP from the boot stub");
    }
    // SAFETY: `rsdp` is the physical address the firmware reported for the RSDP, and
    // the handler maps physical memory through the direct map.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp as usize) }
        .map_err(|_| "bad ACPI tables")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut out = Vec::new();
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) if e.flags & 0b11 != 0 => out.push(CpuEntry {
                apic_id: e.apic_id as u32,
            }),
            MadtEntry::LocalX2Apic(e) if e.flags & 0b11 != 0 => out.push(CpuEntry {
                apic_id: e.x2apic_id,
            }),
            _ => {}
        }
    }
    Ok(out)
}
