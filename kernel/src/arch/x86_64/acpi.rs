//! ACPI tables through the `acpi` crate: the MADT's list of CPUs and, from the FADT
//! and the HPET table, the reference clocks the TSC is calibrated against.
//!
//! Physical regions are read through the direct map, so "mapping" a table is just an
//! address computation and unmapping does nothing. The tables are parsed once, at boot
//! ([`init`]), before the timer calibration needs them. Firmware may lie: a timer whose
//! address is not plausible is left out (the calibration then uses the next clock).

use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::hpet::HpetTable;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
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

/// What the kernel takes from the ACPI tables.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// The local APIC ids of every enabled (or online-capable) CPU in the MADT.
    pub cpus: Vec<CpuEntry>,
    /// The PM timer's I/O port and whether it counts 32 bits (else 24).
    pub pm_timer: Option<(u16, bool)>,
    /// The HPET's registers, physical (below 4 GiB, 1 KiB aligned).
    pub hpet: Option<u64>,
    /// PCI Express configuration windows (the MCFG), those the kernel can reach.
    pub ecam: Vec<Ecam>,
    /// The DMA remapping units (the DMAR table), if the machine has an IOMMU.
    pub dmar: Option<zen_vtd::Dmar>,
}

/// One ECAM window: the configuration space of buses `bus_start..=bus_end` of a
/// segment, 1 MiB per bus, at physical `base` (inside the direct map's first 4 GiB,
/// outside RAM: checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

static PLATFORM: spin::Once<Result<Platform, &'static str>> = spin::Once::new();

/// Parses the tables at `rsdp` (once; later calls return the first answer). `ram` is
/// the firmware's memory map: a device address the tables give inside memory the
/// kernel uses is a lie and refused.
pub fn init(
    rsdp: u64,
    ram: &[zen_abi::boot::MemoryRegion],
) -> Result<&'static Platform, &'static str> {
    PLATFORM
        .call_once(|| parse(rsdp, ram))
        .as_ref()
        .map_err(|e| *e)
}

/// The tables [`init`] parsed (an error before it ran).
pub fn platform() -> Result<&'static Platform, &'static str> {
    PLATFORM
        .get()
        .ok_or("ACPI tables not parsed yet")?
        .as_ref()
        .map_err(|e| *e)
}

/// The CPUs of the MADT.
pub fn cpus() -> Result<Vec<CpuEntry>, &'static str> {
    Ok(platform()?.cpus.clone())
}

fn parse(rsdp: u64, ram: &[zen_abi::boot::MemoryRegion]) -> Result<Platform, &'static str> {
    if rsdp == 0 {
        return Err("no RSDP from the boot stub");
    }
    // SAFETY: `rsdp` is the physical address the firmware reported for the RSDP, and
    // the handler maps physical memory through the direct map.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp as usize) }
        .map_err(|_| "bad ACPI tables")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut cpus = Vec::new();
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) if e.flags & 0b11 != 0 => cpus.push(CpuEntry {
                apic_id: e.apic_id as u32,
            }),
            MadtEntry::LocalX2Apic(e) if e.flags & 0b11 != 0 => cpus.push(CpuEntry {
                apic_id: e.x2apic_id,
            }),
            _ => {}
        }
    }
    let pm_timer = tables.find_table::<Fadt>().ok().and_then(|fadt| {
        let wide = { fadt.flags }.pm_timer_is_32_bit();
        let block = fadt.pm_timer_block().ok().flatten()?;
        // Only a port-I/O timer: a memory-mapped one would be one more MMIO
        // address to trust, and every PC's is a port.
        let port = u16::try_from(block.address).ok()?;
        (block.address_space == AddressSpace::SystemIo && port != 0).then_some((port, wide))
    });
    Ok(Platform {
        cpus,
        pm_timer,
        hpet: hpet(&tables).filter(|&b| !in_ram(b, 1024, ram)),
        ecam: ecam(&tables, ram),
        dmar: dmar(rsdp),
    })
}

/// The DMAR table, parsed (zen-vtd checks its structures). The acpi crate does not
/// know it, so the RSDT/XSDT is walked here; a table with a bad checksum is left out.
fn dmar(rsdp: u64) -> Option<zen_vtd::Dmar> {
    let t = find_raw(rsdp, b"DMAR")?;
    match zen_vtd::parse_dmar(t) {
        Ok(d) => Some(d),
        Err(why) => {
            crate::kprintln!("zen: DMAR table refused: {}", why);
            None
        }
    }
}

/// `len` bytes of physical memory at `phys` below 4 GiB (always in the direct map).
fn phys_bytes(phys: u64, len: usize) -> Option<&'static [u8]> {
    if phys == 0 || phys.checked_add(len as u64)? > zen_abi::layout::DIRECT_MAP_MIN {
        return None;
    }
    // SAFETY: below 4 GiB the direct map always reaches (the stub maps at least that
    // much); firmware tables are never written while the kernel reads them.
    Some(unsafe { core::slice::from_raw_parts((DIRECT_MAP + phys) as *const u8, len) })
}

/// The ACPI table with `sig`, whole and checksummed, found through the RSDP's root
/// table (XSDT if there is one).
fn find_raw(rsdp: u64, sig: &[u8; 4]) -> Option<&'static [u8]> {
    let r = phys_bytes(rsdp, 36)?;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (root, wide) = if r[15] >= 2 && u64::from_le_bytes(r[24..32].try_into().ok()?) != 0 {
        (u64::from_le_bytes(r[24..32].try_into().ok()?), true)
    } else {
        (u32_at(r, 16) as u64, false)
    };
    let table = |phys: u64| -> Option<&'static [u8]> {
        let head = phys_bytes(phys, 36)?;
        let len = u32_at(head, 4) as usize;
        if !(36..=1 << 16).contains(&len) {
            return None;
        }
        let t = phys_bytes(phys, len)?;
        (t.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0).then_some(t)
    };
    let root = table(root)?;
    let step = if wide { 8 } else { 4 };
    root[36..].chunks_exact(step).find_map(|e| {
        let mut a = [0u8; 8];
        a[..step].copy_from_slice(e);
        let t = table(u64::from_le_bytes(a))?;
        (&t[..4] == sig).then_some(t)
    })
}

/// The MCFG's windows, each checked: the table long enough for its entries (the
/// crate subtracts its header length from the table's own), buses in order, the
/// window 1 MiB aligned, below 4 GiB (the direct map always reaches there) and not
/// in RAM. A window that fails is left out with a message.
fn ecam(tables: &AcpiTables<DirectMap>, ram: &[zen_abi::boot::MemoryRegion]) -> Vec<Ecam> {
    let mut out = Vec::new();
    let Ok(mcfg) = tables.find_table::<Mcfg>() else {
        return out;
    };
    if mcfg.region_length() < 44 || (mcfg.get().header().length as usize) < 44 {
        crate::kprintln!("zen: MCFG too short; no PCI Express configuration space");
        return out;
    }
    for e in mcfg.get().entries().iter().take(16) {
        let (base, segment, start, end) = (
            e.base_address,
            e.pci_segment_group,
            e.bus_number_start,
            e.bus_number_end,
        );
        let len = (end as u64 + 1).saturating_sub(start as u64) << 20;
        let ok = end >= start
            && base % (1 << 20) == 0
            && base != 0
            && base
                .checked_add(len)
                .is_some_and(|e| e <= zen_abi::layout::DIRECT_MAP_MIN)
            && !in_ram(base, len, ram);
        if ok {
            out.push(Ecam {
                base,
                segment,
                bus_start: start,
                bus_end: end,
            });
        } else {
            crate::kprintln!(
                "zen: MCFG window at {:#x} (buses {}..={}) refused",
                base,
                start,
                end
            );
        }
    }
    out
}

/// Whether `[base, base + len)` overlaps memory the kernel uses (usable frames, or what
/// the loader put there: kernel, page tables, BootInfo).
pub fn in_ram(base: u64, len: u64, ram: &[zen_abi::boot::MemoryRegion]) -> bool {
    use zen_abi::boot::MemoryKind;
    ram.iter()
        .filter(|r| {
            matches!(
                MemoryKind::try_from(r.kind),
                Ok(MemoryKind::Usable | MemoryKind::Bootloader)
            )
        })
        .any(|r| base < r.base.saturating_add(r.len) && r.base < base.saturating_add(len))
}

/// The HPET's base from its table, read by hand: `acpi::HpetInfo::new` asserts (panics)
/// on a table that puts it anywhere but system memory.
fn hpet(tables: &AcpiTables<DirectMap>) -> Option<u64> {
    let t = tables.find_table::<HpetTable>().ok()?;
    let at = t.virtual_start().as_ptr() as *const u8;
    // The table's fixed layout: the generic address structure at byte 40 (address
    // space id first, the address at 44), and a length of at least 56.
    if (t.region_length()) < 56 {
        return None;
    }
    // SAFETY: the mapping covers `region_length` (>= 56) bytes of the table through the
    // direct map; unaligned reads of plain bytes.
    let (space, base) = unsafe { (at.add(40).read(), at.add(44).cast::<u64>().read_unaligned()) };
    // Below 4 GiB so the direct map surely covers it, aligned as the spec requires.
    (space == 0 && base != 0 && base < 1 << 32 && base % 1024 == 0).then_some(base)
}
