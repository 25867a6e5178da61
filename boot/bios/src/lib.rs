//! The BIOS stub's pure logic and on-disk layout, kept apart from the hardware glue in
//! `main.rs`/`real.rs` so that it is tested on the host (`cargo test -p zen-boot-bios
//! --lib`) and shared with the image writer (`tools/zenimg`).
//!
//! How the stub finds its pieces (docs/boot.md has the whole picture):
//! - the BIOS loads the MBR (sector 0) at 0x7C00; its last code bytes are an INT 13h
//!   disk address packet ([`MBR_DAP_SECTORS`], [`MBR_DAP_LBA`]) that the image writer
//!   fills with where the second stage lies (the BIOS boot partition);
//! - the second stage is followed on disk by one parameter sector ([`Params`]): where
//!   `zenos.bin` lies (its LBA range inside the ESP, which the image writer keeps
//!   contiguous) and the kernel command line. No file system code runs in the stub.
#![no_std]
#![deny(unsafe_code)]

use zen_abi::boot::{Framebuffer, MemoryKind, MemoryRegion, PixelFormat};
use zen_abi::layout::{DIRECT_MAP_MIN, PAGE_SIZE};

/// Where the BIOS loads the MBR, and so where the stub is linked.
pub const STUB_BASE: u64 = 0x7c00;
/// Bytes of boot code in a (protective) MBR; the disk signature follows.
pub const MBR_CODE_LEN: usize = 440;
/// Offset in the MBR of the u16 sector count of the second stage (parameters included).
pub const MBR_DAP_SECTORS: usize = 426;
/// Offset in the MBR of the u64 LBA of the second stage.
pub const MBR_DAP_LBA: usize = 432;
/// The most the MBR loads (some BIOSes refuse more than 127 sectors per INT 13h call;
/// 8 KiB of stub is 15 sectors after the MBR, plus the parameters).
pub const MAX_STAGE2_SECTORS: u16 = 127;
/// Where the stub loads `zenos.bin` (the kernel follows it).
pub const FILE_BASE: u64 = 0x10_0000;
/// The stub's identity map before it builds the kernel's tables covers this much; all
/// it allocates must lie below.
pub const EARLY_MAP_END: u64 = 1 << 30;
/// The longest `zenos.bin` the stub loads: it must end under EARLY_MAP_END.
pub const MAX_ZENOS_LEN: u64 = EARLY_MAP_END - FILE_BASE;

/// "ZENPARAM": the parameter sector's magic.
pub const PARAMS_MAGIC: [u8; 8] = *b"ZENPARAM";
/// Offsets in the parameter sector (the 16-bit code reads the first two directly).
pub const PARAMS_ZENOS_LBA: usize = 8;
pub const PARAMS_ZENOS_LEN: usize = 16;
pub const PARAMS_CMDLINE: usize = 128;
pub const SECTOR: usize = 512;

/// The parameter sector that follows the second stage on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// First LBA of `zenos.bin` (its bytes are contiguous on disk).
    pub zenos_lba: u64,
    /// Its length in bytes.
    pub zenos_len: u64,
    /// Kernel command line, NUL-padded.
    pub cmdline: [u8; 128],
}

impl Params {
    pub fn encode(&self) -> [u8; SECTOR] {
        let mut b = [0u8; SECTOR];
        b[..8].copy_from_slice(&PARAMS_MAGIC);
        b[PARAMS_ZENOS_LBA..PARAMS_ZENOS_LBA + 8].copy_from_slice(&self.zenos_lba.to_le_bytes());
        b[PARAMS_ZENOS_LEN..PARAMS_ZENOS_LEN + 8].copy_from_slice(&self.zenos_len.to_le_bytes());
        b[PARAMS_CMDLINE..PARAMS_CMDLINE + 128].copy_from_slice(&self.cmdline);
        b
    }

    /// `None` if the magic is wrong (the image writer never filled the sector in).
    pub fn decode(b: &[u8; SECTOR]) -> Option<Self> {
        if b[..8] != PARAMS_MAGIC {
            return None;
        }
        let mut cmdline = [0u8; 128];
        cmdline.copy_from_slice(&b[PARAMS_CMDLINE..PARAMS_CMDLINE + 128]);
        Some(Self {
            zenos_lba: u64_at(b, PARAMS_ZENOS_LBA),
            zenos_len: u64_at(b, PARAMS_ZENOS_LEN),
            cmdline,
        })
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// One entry of the BIOS memory map as INT 15h E820 returns it (ACPI 3.0, 24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub base: u64,
    pub len: u64,
    pub ty: u32,
    /// Bit 0 clear: ignore the entry. The stub presets 1 for BIOSes that return 20 bytes.
    pub attr: u32,
}

/// The kernel's view of an E820 type.
pub fn e820_kind(ty: u32) -> MemoryKind {
    match ty {
        1 => MemoryKind::Usable,
        3 => MemoryKind::AcpiReclaimable,
        4 => MemoryKind::AcpiNvs,
        _ => MemoryKind::Reserved,
    }
}

fn valid(e: &E820Entry) -> bool {
    e.attr & 1 != 0 && e.len != 0
}

/// End of RAM: the highest end of a usable or ACPI entry. Reserved entries are left
/// out because some firmware lists far-away holes (QEMU: at 1 TiB) that are not memory.
pub fn ram_end(map: &[E820Entry]) -> u64 {
    map.iter()
        .filter(|e| valid(e) && matches!(e.ty, 1 | 3 | 4))
        .map(|e| e.base.saturating_add(e.len))
        .max()
        .unwrap_or(0)
}

/// Whether one usable entry covers all of `start..end`.
pub fn usable_covers(map: &[E820Entry], start: u64, end: u64) -> bool {
    map.iter()
        .any(|e| valid(e) && e.ty == 1 && e.base <= start && end <= e.base.saturating_add(e.len))
}

/// Whether a `zenos.bin` of `len` bytes, as the (unsigned) parameter sector claims,
/// fits where the stub loads it: whole sectors from FILE_BASE, inside one usable
/// entry, under EARLY_MAP_END. The 16-bit code checks the same before it loads a byte
/// (`real.rs`); `len` may be anything, so nothing here may overflow.
pub fn file_fits(map: &[E820Entry], len: u64) -> bool {
    len <= MAX_ZENOS_LEN
        && usable_covers(
            map,
            FILE_BASE,
            FILE_BASE + len.next_multiple_of(SECTOR as u64),
        )
}

/// The kernel's memory map from the E820 map: page-rounded (usable regions shrink,
/// others grow), the stub's own allocations `loader` carved out as `Bootloader`,
/// sorted and merged. Returns how many regions of `out` are used. `out` needs room for
/// the entries plus two.
pub fn memory_map(e820: &[E820Entry], loader: (u64, u64), out: &mut [MemoryRegion]) -> usize {
    let region = |base: u64, end: u64, kind: MemoryKind| MemoryRegion {
        base,
        len: end - base,
        kind: kind as u32,
        _reserved: 0,
    };
    let cap = out.len().saturating_sub(2);
    let mut n = 0;
    for e in e820.iter().filter(|e| valid(e)) {
        let kind = e820_kind(e.ty);
        let end = e.base.saturating_add(e.len);
        let (b, end) = if kind == MemoryKind::Usable {
            (e.base.next_multiple_of(PAGE_SIZE), end & !(PAGE_SIZE - 1))
        } else {
            (
                e.base & !(PAGE_SIZE - 1),
                end.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
            )
        };
        if end > b && n < cap {
            out[n] = region(b, end, kind);
            n += 1;
        }
    }
    let (ls, le) = loader;
    // Only the regions from E820: the one split off here is never split again.
    let from_e820 = n;
    for i in 0..from_e820 {
        let r = out[i];
        let end = r.base + r.len;
        if r.kind == MemoryKind::Usable as u32 && r.base < le && ls < end {
            // At most one usable region holds the loader range (`usable_covers`), so
            // this adds at most one region besides the loader's own.
            out[i].len = ls.saturating_sub(r.base);
            if end > le && n < out.len() - 1 {
                out[n] = region(le, end, MemoryKind::Usable);
                n += 1;
            }
        }
    }
    out[n] = region(ls, le, MemoryKind::Bootloader);
    normalize(&mut out[..n + 1])
}

/// Sorts `regions` by base, drops empty ones and merges touching neighbours of the
/// same kind; returns how many are left at the front. (The same as the UEFI stub's;
/// an insertion sort, the smallest code for a few dozen entries.)
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

const GIB: u64 = 1 << 30;
const HUGE_PAGE: u64 = 2 << 20;

/// End of the direct map (and identity map): RAM end, at least `DIRECT_MAP_MIN`, in
/// 2 MiB pages. The same rule as the UEFI stub.
pub fn direct_map_end(ram_end: u64) -> u64 {
    ram_end.max(DIRECT_MAP_MIN).next_multiple_of(HUGE_PAGE)
}

/// Upper bound on the page-table pages for the direct map up to `end` (2 MiB pages,
/// shared with the identity alias) and `mem_size` bytes of kernel in 4 KiB pages.
pub fn table_pages(end: u64, mem_size: u64) -> u64 {
    let direct = end.div_ceil(512 * GIB) + end.div_ceil(GIB);
    1 + direct + 2 + 2 + mem_size.div_ceil(HUGE_PAGE) + 1
}

/// Offset of a valid ACPI RSDP in `area` (searched on 16-byte boundaries, as ACPI
/// specifies): the signature "RSD PTR " and a zero checksum over its first 20 bytes.
pub fn find_rsdp(area: &[u8]) -> Option<usize> {
    (0..area.len().saturating_sub(19)).step_by(16).find(|&o| {
        area[o..o + 8] == *b"RSD PTR "
            && area[o..o + 20].iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0
    })
}

/// The framebuffer described by a VBE mode information block (the mode the stub set).
/// Only 32-bit direct-colour modes with a linear framebuffer are described; anything
/// else gives format `None`.
pub fn vbe_framebuffer(mode: &[u8; 256]) -> Framebuffer {
    let none = Framebuffer {
        base: 0,
        size: 0,
        width: 0,
        height: 0,
        stride: 0,
        format: PixelFormat::None as u32,
    };
    let (attrs, pitch, width, height) = (
        u16_at(mode, 0),
        u16_at(mode, 16),
        u16_at(mode, 18),
        u16_at(mode, 20),
    );
    let base = u32::from_le_bytes([mode[40], mode[41], mode[42], mode[43]]) as u64;
    // Red/green/blue field positions.
    let format = match (mode[32], mode[34], mode[36]) {
        (16, 8, 0) => PixelFormat::Bgr,
        (0, 8, 16) => PixelFormat::Rgb,
        _ => return none,
    };
    if attrs & 0x80 == 0
        || mode[25] != 32
        || base == 0
        || pitch % 4 != 0
        || (pitch as u32 / 4) < width as u32
    {
        return none;
    }
    Framebuffer {
        base,
        size: pitch as u64 * height as u64,
        width: width as u32,
        height: height as u32,
        stride: pitch as u32 / 4,
        format: format as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(base: u64, len: u64, ty: u32) -> E820Entry {
        E820Entry {
            base,
            len,
            ty,
            attr: 1,
        }
    }
    fn r(base: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion {
            base,
            len,
            kind: kind as u32,
            _reserved: 0,
        }
    }

    #[test]
    fn params_round_trip_and_need_magic() {
        let mut cmdline = [0u8; 128];
        cmdline[..4].copy_from_slice(b"a=bc");
        let p = Params {
            zenos_lba: 4096 + 77,
            zenos_len: 40_084,
            cmdline,
        };
        let b = p.encode();
        assert_eq!(Params::decode(&b), Some(p));
        assert_eq!(u64_at(&b, PARAMS_ZENOS_LBA), 4173);
        assert_eq!(Params::decode(&[0; SECTOR]), None);
    }

    /// SeaBIOS's map for `-m 256M` on q35, with the loader range at 1 MiB.
    #[test]
    fn e820_becomes_kernel_map() {
        use MemoryKind::*;
        let map = [
            e(0, 0x9fc00, 1),
            e(0x9fc00, 0x400, 2),
            e(0xf0000, 0x10000, 2),
            e(0x100000, 0xfee0000, 1),
            e(0xffe0000, 0x20000, 2),
            e(0xfeffc000, 0x4000, 2),
            e(0xfffc0000, 0x40000, 2),
            e(0x1_0000_0000, 0x1000, 9), // unknown type: reserved
            E820Entry {
                base: 0x2_0000_0000,
                len: 0x1000,
                ty: 1,
                attr: 0,
            }, // ignored
        ];
        assert_eq!(ram_end(&map), 0xffe0000);
        assert!(usable_covers(&map, 0x100000, 0x400000));
        assert!(!usable_covers(&map, 0x100000, 0x10000000));
        let mut out = [r(0, 0, Usable); 16];
        let n = memory_map(&map, (0x10a000, 0x300000), &mut out);
        assert_eq!(
            &out[..n],
            &[
                r(0, 0x9f000, Usable),
                r(0x9f000, 0x1000, Reserved),
                r(0xf0000, 0x10000, Reserved),
                r(0x100000, 0xa000, Usable),
                r(0x10a000, 0x1f6000, Bootloader),
                r(0x300000, 0xffe0000 - 0x300000, Usable),
                r(0xffe0000, 0x20000, Reserved),
                r(0xfeffc000, 0x4000, Reserved),
                r(0xfffc0000, 0x41000, Reserved), // touching reserved entries merge
            ]
        );
        assert!(out[..n]
            .iter()
            .all(|r| r.len % PAGE_SIZE == 0 && r.base % PAGE_SIZE == 0));
    }

    #[test]
    fn file_must_fit_whatever_its_length_says() {
        let map = [e(0, 0x9fc00, 1), e(0x100000, 0xfee0000, 1)]; // 256 MiB
        assert!(file_fits(&map, 0));
        assert!(file_fits(&map, 40_084));
        assert!(file_fits(&map, 0xfee0000));
        assert!(
            !file_fits(&map, 0xfee0001),
            "one byte rounds up past the entry"
        );
        assert!(!file_fits(&map, 512 << 20), "more than the RAM");
        let big = [e(0, 0x9fc00, 1), e(0x100000, 16 << 30, 1)];
        assert!(file_fits(&big, MAX_ZENOS_LEN));
        assert!(!file_fits(&big, MAX_ZENOS_LEN + 1), "past the early map");
        for huge in [u32::MAX as u64, 1 << 32, u64::MAX - 100, u64::MAX] {
            assert!(!file_fits(&big, huge), "{huge:#x}");
        }
    }

    #[test]
    fn loader_at_region_start_leaves_no_empty_region() {
        let map = [e(0x100000, 0x1000000, 1)];
        let mut out = [r(0, 0, MemoryKind::Usable); 4];
        let n = memory_map(&map, (0x100000, 0x200000), &mut out);
        assert_eq!(
            &out[..n],
            &[
                r(0x100000, 0x100000, MemoryKind::Bootloader),
                r(0x200000, 0xf00000, MemoryKind::Usable)
            ]
        );
    }

    #[test]
    fn rsdp_needs_signature_and_checksum() {
        let mut area = [0u8; 64];
        area[16..24].copy_from_slice(b"RSD PTR ");
        assert_eq!(find_rsdp(&area), None, "bad checksum");
        let sum = area[16..36].iter().fold(0u8, |s, &b| s.wrapping_add(b));
        area[24] = 0u8.wrapping_sub(sum);
        assert_eq!(find_rsdp(&area), Some(16));
        let mut odd = [0u8; 64];
        odd[8..28].copy_from_slice(&area[16..36]);
        assert_eq!(find_rsdp(&odd), None, "not on a 16-byte boundary");
    }

    #[test]
    fn vbe_mode_info_decodes() {
        let mut m = [0u8; 256];
        m[0] = 0x9b; // supported, colour, graphics, linear framebuffer
        m[16..18].copy_from_slice(&4096u16.to_le_bytes());
        m[18..20].copy_from_slice(&1024u16.to_le_bytes());
        m[20..22].copy_from_slice(&768u16.to_le_bytes());
        m[25] = 32;
        (m[32], m[34], m[36]) = (16, 8, 0);
        m[40..44].copy_from_slice(&0xfd00_0000u32.to_le_bytes());
        let fb = vbe_framebuffer(&m);
        assert_eq!(
            fb,
            Framebuffer {
                base: 0xfd00_0000,
                size: 4096 * 768,
                width: 1024,
                height: 768,
                stride: 1024,
                format: PixelFormat::Bgr as u32
            }
        );
        m[25] = 24;
        assert_eq!(vbe_framebuffer(&m).format, PixelFormat::None as u32);
    }

    #[test]
    fn tables_bound_matches_the_uefi_rule() {
        assert_eq!(direct_map_end(256 << 20), 4 << 30);
        assert!(table_pages(4 << 30, 1 << 20) >= 1 + 5 + 3);
    }
}
