//! The capability list and the MSI-X capability (PCI Local Bus 3.0, 6.7 and 6.8.2).
//!
//! The list is a chain of pointers the device supplies, so the walk is bounded: each
//! pointer must lie past the 64-byte header, word-aligned, and at most 48 entries are
//! followed (the most that fit in 256 bytes), so a looping list ends.

use crate::bar::{Bar, BARS};
use crate::{reg, Config, STATUS_CAPS};

/// MSI-X's capability id.
pub const CAP_MSIX: u8 = 0x11;

/// Most entries of one list: (256 - 64) / 4.
const MAX_CAPS: usize = 48;

/// The capabilities as `(id, offset)`, in list order.
pub fn capabilities(cfg: &impl Config) -> impl Iterator<Item = (u8, u16)> + '_ {
    let mut next = if cfg.read32(reg::COMMAND) & STATUS_CAPS != 0 {
        cfg.read8(reg::CAP_PTR) & 0xfc
    } else {
        0
    };
    let mut seen = 0;
    core::iter::from_fn(move || {
        if next < 0x40 || seen >= MAX_CAPS {
            return None;
        }
        seen += 1;
        let off = next as u16;
        let word = cfg.read32(off);
        next = (word >> 8) as u8 & 0xfc;
        Some((word as u8, off))
    })
}

/// A function's MSI-X capability: how many vectors, where their table and pending-bit
/// array live (a BAR and an offset in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixInfo {
    /// Offset of the capability in configuration space.
    pub cap: u16,
    /// Vectors in the table, 1..=2048.
    pub vectors: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

/// The MSI-X capability, if the function has one.
pub fn msix(cfg: &impl Config) -> Option<MsixInfo> {
    let (_, cap) = capabilities(cfg).find(|&(id, _)| id == CAP_MSIX)?;
    let control = cfg.read32(cap) >> 16;
    let table = cfg.read32(cap + 4);
    let pba = cfg.read32(cap + 8);
    Some(MsixInfo {
        cap,
        vectors: (control & 0x7ff) as u16 + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
        pba_bar: (pba & 7) as u8,
        pba_offset: pba & !7,
    })
}

/// Bytes of one table entry: address low, high, data, vector control.
pub const MSIX_ENTRY: u64 = 16;

/// Bits of the message control word (the high half of the capability's first word).
pub mod msix_control {
    pub const ENABLE: u32 = 1 << 31;
    pub const FUNCTION_MASK: u32 = 1 << 30;
}

impl MsixInfo {
    /// The table's `[start, end)` inside its BAR.
    pub fn table_range(&self) -> (u64, u64) {
        let start = self.table_offset as u64;
        (start, start + self.vectors as u64 * MSIX_ENTRY)
    }
    /// The pending-bit array's `[start, end)` inside its BAR.
    pub fn pba_range(&self) -> (u64, u64) {
        let start = self.pba_offset as u64;
        (start, start + (self.vectors as u64).div_ceil(64) * 8)
    }

    /// Checks the table and the PBA lie inside memory BARs the function has; the
    /// kernel believes them only then (it writes the table, and keeps its pages out
    /// of the driver's mapping).
    pub fn check(&self, bars: &[Option<Bar>; BARS]) -> Result<(), &'static str> {
        let inside = |bar: u8, (start, end): (u64, u64)| match bars.get(bar as usize) {
            Some(Some(b)) if b.is_memory() => end <= b.size && start < end,
            _ => false,
        };
        if !inside(self.table_bar, self.table_range()) {
            return Err("MSI-X table outside its BAR");
        }
        if !inside(self.pba_bar, self.pba_range()) {
            return Err("MSI-X pending bits outside their BAR");
        }
        Ok(())
    }

    /// Whether the page at `page_offset` of BAR `bar` holds part of the table or the
    /// PBA (so it is not the driver's to map).
    pub fn covers_page(&self, bar: u8, page_offset: u64) -> bool {
        let hits = |b: u8, (start, end): (u64, u64)| {
            b == bar && start < page_offset + 4096 && page_offset < end
        };
        hits(self.table_bar, self.table_range()) || hits(self.pba_bar, self.pba_range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bar::BarKind;
    use crate::model::Function;

    #[test]
    fn walks_the_list() {
        let f = Function::new(1, 2)
            .cap(0x40, 0x01, 0x50, 0)
            .cap(0x50, 0x05, 0x60, 0)
            .cap(0x60, CAP_MSIX, 0, 0x0003);
        let caps: Vec<_> = capabilities(&f).collect();
        assert_eq!(caps, [(0x01, 0x40), (0x05, 0x50), (CAP_MSIX, 0x60)]);
    }

    #[test]
    fn a_looping_or_bad_list_ends() {
        let f = Function::new(1, 2)
            .cap(0x40, 0x01, 0x44, 0)
            .cap(0x44, 0x05, 0x40, 0);
        assert_eq!(capabilities(&f).count(), MAX_CAPS);
        // Into the header: refused at once.
        let g = Function::new(1, 2).cap(0x40, 0x01, 0x10, 0);
        assert_eq!(capabilities(&g).count(), 1);
        // No status bit: no list, whatever the pointer says.
        let h = Function::new(1, 2);
        h.set(reg::CAP_PTR, 0x40);
        h.set(0x40, CAP_MSIX as u32);
        assert_eq!(capabilities(&h).count(), 0);
        // Low bits of pointers are reserved and ignored.
        let k = Function::new(1, 2)
            .cap(0x40, 0x01, 0x53, 0)
            .cap(0x50, 0x05, 0, 0);
        assert_eq!(capabilities(&k).count(), 2);
    }

    fn nvme_like() -> (Function, [Option<Bar>; BARS]) {
        // QEMU's NVMe: 65 vectors, table at 0x2000 and PBA at 0x3000 of BAR 0 (16 KiB).
        let f = Function::new(0x1b36, 0x10)
            .mem64(0, 0xfebd_0000 & !0x3fff, 0x4000)
            .cap(0x40, CAP_MSIX, 0, 64);
        f.set(0x44, 0x2000);
        f.set(0x48, 0x3000);
        let bars = crate::probe_bars(&f, &crate::Header::read(&f).unwrap());
        (f, bars)
    }

    #[test]
    fn msix_found_and_checked() {
        let (f, bars) = nvme_like();
        let m = msix(&f).unwrap();
        assert_eq!(m.vectors, 65);
        assert_eq!((m.table_bar, m.table_offset), (0, 0x2000));
        assert_eq!(m.table_range(), (0x2000, 0x2000 + 65 * 16));
        assert_eq!(m.pba_range(), (0x3000, 0x3010));
        assert_eq!(m.check(&bars), Ok(()));
        assert!(!m.covers_page(0, 0x0000));
        assert!(!m.covers_page(0, 0x1000), "the doorbells are the driver's");
        assert!(m.covers_page(0, 0x2000));
        assert!(m.covers_page(0, 0x3000));
        assert!(!m.covers_page(1, 0x2000));
    }

    #[test]
    fn a_table_outside_its_bar_is_refused() {
        let (f, bars) = nvme_like();
        f.set(0x44, 0x3ff8); // the table runs past the 16 KiB BAR
        assert!(msix(&f).unwrap().check(&bars).is_err());
        f.set(0x44, 0x2001); // BAR 1: the top half of the 64-bit BAR 0
        assert!(msix(&f).unwrap().check(&bars).is_err());
        f.set(0x44, 0x2000);
        f.set(0x48, 0x4000); // PBA just past the end
        assert!(msix(&f).unwrap().check(&bars).is_err());
        let io = [Some(Bar {
            base: 0xc000,
            size: 0x10000,
            kind: BarKind::Io,
            prefetchable: false,
        }); BARS];
        f.set(0x48, 0x3000);
        assert!(
            msix(&f).unwrap().check(&io).is_err(),
            "I/O space holds no table"
        );
    }
}
