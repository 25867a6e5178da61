//! Base address registers: where a function's registers are and how large they are,
//! found by writing ones and reading back which bits stuck (PCI Local Bus 3.0, 6.2.5.1)
//! with the function's decoding off, so it never answers at a half-written address.

use crate::{command, reg, Config, Header};

/// BAR registers in a type 0 header.
pub const BARS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// Memory below 4 GiB.
    Mem32,
    /// Memory anywhere; the BAR takes two registers.
    Mem64,
    /// I/O ports (x86 `in`/`out`); never mapped into a driver.
    Io,
}

/// One decoded BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub base: u64,
    /// A power of two; the base is a multiple of it.
    pub size: u64,
    pub kind: BarKind,
    pub prefetchable: bool,
}

impl Bar {
    pub const fn is_memory(&self) -> bool {
        !matches!(self.kind, BarKind::Io)
    }
    /// Whether `[base, base + len)` overlaps this BAR.
    pub fn overlaps(&self, base: u64, len: u64) -> bool {
        base < self.base.saturating_add(self.size) && self.base < base.saturating_add(len)
    }
}

/// The function's BARs by index (a 64-bit BAR at `i` leaves `i + 1` empty). A BAR that
/// is not implemented, not assigned an address by firmware (base 0), not aligned to
/// its size, or a 64-bit BAR in the last register, is `None`. The command register is
/// restored afterwards.
pub fn probe_bars(cfg: &impl Config, header: &Header) -> [Option<Bar>; BARS] {
    let mut out = [None; BARS];
    let count = header.bar_count();
    if count == 0 {
        return out;
    }
    let cmd = cfg.read32(reg::COMMAND);
    // Decoding off while the BARs hold all ones (only the low 16 bits are the command;
    // writing the status half's ones would clear its error bits, so write zeros there).
    cfg.write32(
        reg::COMMAND,
        cmd & 0xffff & !(command::IO | command::MEMORY),
    );
    let mut i = 0;
    while i < count {
        let off = reg::BAR0 + 4 * i as u16;
        let (bar, used) = probe_one(cfg, off, i + 1 < count);
        out[i] = bar;
        i += used;
    }
    cfg.write32(reg::COMMAND, cmd & 0xffff);
    out
}

/// Sizes the BAR at `off`; how many registers it took (2 for a 64-bit BAR).
fn probe_one(cfg: &impl Config, off: u16, has_next: bool) -> (Option<Bar>, usize) {
    let orig = cfg.read32(off);
    cfg.write32(off, !0);
    let ones = cfg.read32(off);
    cfg.write32(off, orig);
    if orig & 1 == 1 {
        let mask = ones & !0x3;
        // I/O BARs decode at most 16 bits of port on x86.
        let size = (!(mask | 0xffff_0000)).wrapping_add(1) as u64;
        let base = (orig & !0x3) as u64;
        let ok = mask != 0 && size.is_power_of_two() && base != 0 && base.is_multiple_of(size);
        return (
            ok.then_some(Bar {
                base,
                size,
                kind: BarKind::Io,
                prefetchable: false,
            }),
            1,
        );
    }
    let prefetchable = orig & 0b1000 != 0;
    match (orig >> 1) & 0b11 {
        0b00 => {
            let mask = ones & !0xf;
            let size = (!mask).wrapping_add(1) as u64;
            let base = (orig & !0xf) as u64;
            (
                memory(base, size, mask != 0, BarKind::Mem32, prefetchable),
                1,
            )
        }
        0b10 if has_next => {
            let hi_off = off + 4;
            let orig_hi = cfg.read32(hi_off);
            cfg.write32(hi_off, !0);
            let ones_hi = cfg.read32(hi_off);
            cfg.write32(hi_off, orig_hi);
            let mask = (ones_hi as u64) << 32 | (ones & !0xf) as u64;
            let size = (!mask).wrapping_add(1);
            let base = (orig_hi as u64) << 32 | (orig & !0xf) as u64;
            (
                memory(base, size, mask != 0, BarKind::Mem64, prefetchable),
                2,
            )
        }
        // A 64-bit BAR with no register left for its top half, or the reserved kind.
        _ => (None, 1),
    }
}

fn memory(
    base: u64,
    size: u64,
    implemented: bool,
    kind: BarKind,
    prefetchable: bool,
) -> Option<Bar> {
    let ok = implemented
        && size.is_power_of_two()
        && base != 0
        && base.is_multiple_of(size)
        && base.checked_add(size).is_some();
    ok.then_some(Bar {
        base,
        size,
        kind,
        prefetchable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Function;

    fn header(f: &Function) -> Header {
        Header::read(f).unwrap()
    }

    #[test]
    fn sizes_every_kind() {
        let f = Function::new(1, 2)
            .mem64(0, 0x1_2340_0000, 0x4000)
            .mem32(2, 0xfebf_0000, 0x1000, false)
            .io(3, 0xc040, 0x20)
            .mem32(4, 0xe000_0000, 0x100_0000, true);
        f.set(reg::COMMAND, 0x0007);
        let bars = probe_bars(&f, &header(&f));
        assert_eq!(
            bars[0],
            Some(Bar {
                base: 0x1_2340_0000,
                size: 0x4000,
                kind: BarKind::Mem64,
                prefetchable: false
            })
        );
        assert_eq!(bars[1], None, "the top half of BAR 0");
        assert_eq!(bars[2].unwrap().size, 0x1000);
        assert_eq!(bars[3].unwrap().kind, BarKind::Io);
        assert_eq!(bars[3].unwrap().size, 0x20);
        assert!(bars[4].unwrap().prefetchable);
        assert_eq!(bars[4].unwrap().size, 0x100_0000);
        assert_eq!(bars[5], None, "not implemented");
        // Every register is as it was, decoding included.
        assert_eq!(f.get(reg::COMMAND), 0x0007);
        assert_eq!(f.get(reg::BAR0) & !0xf, 0x2340_0000);
        assert_eq!(f.get(reg::BAR0 + 4), 1);
        assert_eq!(f.get(reg::BAR0 + 12) & !3, 0xc040);
    }

    #[test]
    fn refuses_what_firmware_left_wrong() {
        // Misaligned to its size, unassigned, and 64-bit in the last register.
        let f = Function::new(1, 2)
            .mem32(0, 0xfebf_1000, 0x4000, false)
            .mem32(1, 0, 0x1000, false)
            .mem64(5, 0xfe00_0000, 0x1000);
        let bars = probe_bars(&f, &header(&f));
        assert_eq!(bars, [None; BARS]);
    }

    #[test]
    fn bridges_have_two_and_cardbus_none() {
        let f = Function::new(1, 2)
            .kind(1)
            .mem32(0, 0xfe00_0000, 0x1000, false)
            .mem32(2, 0xfd00_0000, 0x1000, false);
        let bars = probe_bars(&f, &header(&f));
        assert!(bars[0].is_some());
        assert_eq!(
            bars[2], None,
            "a bridge's third register is its bus numbers"
        );
        let c = Function::new(1, 2)
            .kind(2)
            .mem32(0, 0xfe00_0000, 0x1000, false);
        assert_eq!(probe_bars(&c, &header(&c)), [None; BARS]);
        assert_eq!(c.writes.get(), 0, "nothing probed");
    }

    #[test]
    fn decoding_is_off_while_probing() {
        // The model records the command register at each BAR write.
        struct Watch(Function, core::cell::Cell<bool>);
        impl Config for Watch {
            fn read32(&self, off: u16) -> u32 {
                self.0.read32(off)
            }
            fn write32(&self, off: u16, v: u32) {
                if (0x10..0x28).contains(&off)
                    && self.0.get(reg::COMMAND) & (command::MEMORY | command::IO) != 0
                {
                    self.1.set(true);
                }
                self.0.write32(off, v)
            }
        }
        let f = Function::new(1, 2).mem32(0, 0xfe00_0000, 0x1000, false);
        f.set(reg::COMMAND, 0x0006);
        let w = Watch(f, core::cell::Cell::new(false));
        let h = Header::read(&w).unwrap();
        assert!(probe_bars(&w, &h)[0].is_some());
        assert!(!w.1.get(), "a BAR was written while the function decoded");
    }

    #[test]
    fn overlap() {
        let b = Bar {
            base: 0x1000,
            size: 0x1000,
            kind: BarKind::Mem32,
            prefetchable: false,
        };
        assert!(b.overlaps(0x1fff, 1));
        assert!(!b.overlaps(0x2000, 0x1000));
        assert!(!b.overlaps(0, 0x1000));
        assert!(b.overlaps(0, u64::MAX));
        assert!(!b.overlaps(u64::MAX - 4, u64::MAX));
    }
}
