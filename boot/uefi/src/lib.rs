//! The UEFI stub's pure logic, kept apart from the firmware glue in `main.rs` so that it
//! is tested on the host (`cargo test -p zen-boot-uefi --lib`): how UEFI memory types
//! map to [`MemoryKind`], how the map is sorted and merged for the kernel, and how many
//! page-table pages the hand-off mapping can need.
#![no_std]
#![deny(unsafe_code)]

use zen_abi::boot::{MemoryKind, MemoryRegion};
use zen_abi::layout::DIRECT_MAP_MIN;

const GIB: u64 = 1 << 30;
const HUGE_PAGE: u64 = 2 << 20;

/// The kernel's view of a UEFI memory type (the raw `EFI_MEMORY_TYPE` number).
///
/// Boot-services memory and the stub's own code are free once boot services are gone;
/// `LoaderData` holds everything the stub hands over (kernel, page tables, BootInfo), so
/// it stays out of the allocator until the kernel has moved off it.
pub fn kind_of(efi_type: u32) -> MemoryKind {
    match efi_type {
        1 | 3 | 4 | 7 => MemoryKind::Usable, // LoaderCode, BootServicesCode/Data, Conventional
        2 => MemoryKind::Bootloader,         // LoaderData
        9 => MemoryKind::AcpiReclaimable,
        10 => MemoryKind::AcpiNvs,
        5 | 6 => MemoryKind::FirmwareRuntime,
        _ => MemoryKind::Reserved,
    }
}

/// Sorts `regions` by base, drops empty ones and merges neighbours of the same kind
/// that touch. Returns how many regions are left at the front of the slice.
///
/// An insertion sort: the map has a few dozen entries, the firmware usually hands them
/// over sorted already, and it is the smallest code (the stub's size budget is 8 KiB).
pub fn normalize(regions: &mut [MemoryRegion]) -> usize {
    for i in 1..regions.len() {
        let mut j = i;
        while j > 0 && regions[j - 1].base > regions[j].base {
            regions.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut n = 0;
    for i in 0..regions.len() {
        let r = regions[i];
        if r.len == 0 {
            continue;
        }
        if n > 0 {
            let last = &mut regions[n - 1];
            if last.kind == r.kind && last.base + last.len == r.base {
                last.len += r.len;
                continue;
            }
        }
        regions[n] = r;
        n += 1;
    }
    n
}

/// End (exclusive) of the physical range the direct map covers: the highest address in
/// the memory map, at least `DIRECT_MAP_MIN`, rounded up to a 2 MiB page.
pub fn direct_map_end(highest: u64) -> u64 {
    highest.max(DIRECT_MAP_MIN).next_multiple_of(HUGE_PAGE)
}

/// An upper bound on the page-table pages needed to map the direct map up to `end` with
/// 2 MiB pages (its identity alias shares them) plus `mem_size` bytes of kernel at any
/// page-aligned address with 4 KiB pages.
pub fn table_pages(end: u64, mem_size: u64) -> u64 {
    let direct = end.div_ceil(512 * GIB) + end.div_ceil(GIB);
    // The kernel range may straddle one boundary at each level: +1 at each, plus the PML4.
    let kernel = 2 + 2 + mem_size.div_ceil(HUGE_PAGE) + 1;
    1 + direct + kernel
}

/// Trims the trailing newline (and spaces) an editor leaves at the end of `cmdline.txt`.
pub fn trim_cmdline(text: &[u8]) -> &[u8] {
    let mut end = text.len();
    while end > 0 && matches!(text[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion {
            base,
            len,
            kind: kind as u32,
            _reserved: 0,
        }
    }

    #[test]
    fn kinds_follow_the_contract() {
        use MemoryKind::*;
        let want = [
            Reserved,
            Usable,
            Bootloader,
            Usable,
            Usable,
            FirmwareRuntime,
            FirmwareRuntime,
            Usable,
            Reserved,
            AcpiReclaimable,
            AcpiNvs,
            Reserved,
            Reserved,
            Reserved,
            Reserved,
            Reserved,
        ];
        for (t, k) in want.iter().enumerate() {
            assert_eq!(kind_of(t as u32), *k, "type {t}");
        }
        assert_eq!(kind_of(0x8000_0001), Reserved);
    }

    #[test]
    fn sorts_merges_and_drops_empty() {
        use MemoryKind::*;
        let mut m = [
            r(0x10_0000, 0x1000, Usable),
            r(0, 0x9_f000, Usable),
            r(0x9_f000, 0x1000, Reserved),
            r(0xa_0000, 0, Usable),
            r(0x10_1000, 0x2000, Usable),
            r(0x10_3000, 0x1000, Bootloader),
            r(0x10_4000, 0x1000, Usable),
            r(0x20_0000, 0x1000, Usable), // same kind but not touching
        ];
        let n = normalize(&mut m);
        assert_eq!(
            &m[..n],
            &[
                r(0, 0x9_f000, Usable),
                r(0x9_f000, 0x1000, Reserved),
                r(0x10_0000, 0x3000, Usable),
                r(0x10_3000, 0x1000, Bootloader),
                r(0x10_4000, 0x1000, Usable),
                r(0x20_0000, 0x1000, Usable),
            ]
        );
        assert_eq!(normalize(&mut []), 0);
    }

    #[test]
    fn direct_map_covers_at_least_4_gib() {
        assert_eq!(direct_map_end(256 << 20), 4 << 30);
        assert_eq!(direct_map_end((8 << 30) + 1), (8 << 30) + HUGE_PAGE);
    }

    #[test]
    fn table_bound_is_enough() {
        // 4 GiB: 1 PDPT + 4 PDs; a 1 MiB kernel: PDPT + PD + 1 PT; plus the PML4.
        assert!(table_pages(4 << 30, 1 << 20) >= 1 + 5 + 3);
        assert!(table_pages(600 * GIB, 256 << 20) >= 1 + 2 + 600 + 2 + 2 + 129);
    }

    #[test]
    fn cmdline_loses_trailing_newline_only() {
        assert_eq!(trim_cmdline(b"test=heap quiet\r\n"), b"test=heap quiet");
        assert_eq!(trim_cmdline(b"\n"), b"");
        assert_eq!(trim_cmdline(b" a b"), b" a b");
    }
}
