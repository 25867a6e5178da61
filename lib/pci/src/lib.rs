//! zen-pci: a PCI function's configuration space, read as data.
//!
//! The kernel enumerates PCI Express functions through ECAM and makes each one a
//! capability object; this crate is what it reads there: the header (ids, class, the
//! kind of header), the BARs (base, size and kind, found by the standard write-ones
//! probe), the capability list and the MSI-X capability. The kernel supplies the
//! access ([`Config`]); everything here is plain arithmetic, tested on the host against
//! a model function.
//!
//! A device is hardware the kernel does not control and firmware may have set it up
//! badly, so every value is checked before it is believed: a BAR whose base is not
//! aligned to its size, a 64-bit BAR in the last slot, a capability list that loops or
//! points into the header, an MSI-X table outside its BAR are all refused (`None` or
//! an error), never followed. Nothing here panics on any input.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod bar;
mod caps;

pub use bar::{probe_bars, Bar, BarKind, BARS};
pub use caps::{capabilities, msix, msix_control, MsixInfo, CAP_MSIX, MSIX_ENTRY};

/// A function's configuration space: 4096 bytes (ECAM), read and written as aligned
/// 32-bit words. `off` is a multiple of 4 below 4096; implementations may ignore the
/// low bits.
pub trait Config {
    fn read32(&self, off: u16) -> u32;
    fn write32(&self, off: u16, value: u32);

    fn read16(&self, off: u16) -> u16 {
        (self.read32(off & !3) >> ((off & 2) * 8)) as u16
    }
    fn read8(&self, off: u16) -> u8 {
        (self.read32(off & !3) >> ((off & 3) * 8)) as u8
    }
}

/// Offsets in the common header.
pub mod reg {
    pub const ID: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const CLASS: u16 = 0x08;
    pub const HEADER: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;
    /// Type 1 (bridge): primary, secondary and subordinate bus numbers.
    pub const BUSES: u16 = 0x18;
    pub const CAP_PTR: u16 = 0x34;
}

/// Bits of the command register (the low half of `reg::COMMAND`).
pub mod command {
    pub const IO: u32 = 1 << 0;
    pub const MEMORY: u32 = 1 << 1;
    /// The function may start DMA. Cleared before a driver's memory is freed.
    pub const BUS_MASTER: u32 = 1 << 2;
    pub const INTX_DISABLE: u32 = 1 << 10;
}

/// Bit of the status register (high half of `reg::COMMAND`): a capability list exists.
pub const STATUS_CAPS: u32 = 1 << (16 + 4);

/// Where a function sits: segment, bus, device (0..32), function (0..8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Address {
    /// Packed as `segment << 16 | bus << 8 | device << 3 | function`: the object id of
    /// the function's capability, and the order `devices` lists them in.
    pub const fn packed(self) -> u32 {
        (self.segment as u32) << 16
            | (self.bus as u32) << 8
            | ((self.device as u32) & 31) << 3
            | (self.function as u32 & 7)
    }
    pub const fn from_packed(v: u32) -> Self {
        Self {
            segment: (v >> 16) as u16,
            bus: (v >> 8) as u8,
            device: ((v >> 3) & 31) as u8,
            function: (v & 7) as u8,
        }
    }
    /// The offset of this function's 4 KiB in an ECAM region starting at `bus_start`.
    pub const fn ecam_offset(self, bus_start: u8) -> u64 {
        ((self.bus.wrapping_sub(bus_start) as u64) << 20)
            | ((self.device as u64 & 31) << 15)
            | ((self.function as u64 & 7) << 12)
    }
}

/// `0000:00:04.0`, as lspci writes it.
impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// What the header says about a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// 0: an endpoint, 1: a PCI-to-PCI bridge, 2: CardBus (its BARs are not probed).
    pub kind: u8,
    pub multifunction: bool,
}

impl Header {
    /// The header of the function behind `cfg`, `None` if no function answers
    /// (vendor 0xffff, or 0 which no vendor has).
    pub fn read(cfg: &impl Config) -> Option<Self> {
        let id = cfg.read32(reg::ID);
        let vendor = id as u16;
        if vendor == 0xffff || vendor == 0 {
            return None;
        }
        let class = cfg.read32(reg::CLASS);
        let header = cfg.read8(reg::HEADER + 2);
        Some(Self {
            vendor,
            device: (id >> 16) as u16,
            class: (class >> 24) as u8,
            subclass: (class >> 16) as u8,
            prog_if: (class >> 8) as u8,
            revision: class as u8,
            kind: header & 0x7f,
            multifunction: header & 0x80 != 0,
        })
    }

    /// How many BARs this kind of header has.
    pub const fn bar_count(&self) -> usize {
        match self.kind {
            0 => 6,
            1 => 2,
            _ => 0,
        }
    }
}

/// The bus behind a bridge (type 1 header): `(secondary, subordinate)`, `None` for
/// any other function or a bridge not yet given buses.
pub fn bridge_buses(cfg: &impl Config, header: &Header) -> Option<(u8, u8)> {
    if header.kind != 1 {
        return None;
    }
    let b = cfg.read32(reg::BUSES);
    let (primary, secondary, subordinate) = (b as u8, (b >> 8) as u8, (b >> 16) as u8);
    // A bridge's secondary bus lies past its own; anything else would make the walk
    // revisit a bus.
    (secondary > primary && subordinate >= secondary).then_some((secondary, subordinate))
}

/// A short name for a class code, as the shell's `devices` shows it.
pub fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x01, 0x01) => "IDE controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, _) => "storage controller",
        (0x02, _) => "network controller",
        (0x03, _) => "display controller",
        (0x04, _) => "multimedia controller",
        (0x05, _) => "memory controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, _) => "bridge",
        (0x07, _) => "communication controller",
        (0x08, _) => "system peripheral",
        (0x09, _) => "input controller",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus controller",
        (0x0c, _) => "serial bus controller",
        (0xff, _) => "unassigned class",
        _ => "device",
    }
}

#[cfg(test)]
pub(crate) mod model;

#[cfg(test)]
mod tests {
    use super::*;
    use model::Function;

    #[test]
    fn addresses_pack_and_print() {
        let a = Address {
            segment: 1,
            bus: 0x12,
            device: 31,
            function: 7,
        };
        assert_eq!(Address::from_packed(a.packed()), a);
        assert_eq!(a.packed(), 0x1_12ff);
        assert_eq!(format!("{a}"), "0001:12:1f.7");
        let b = Address {
            segment: 0,
            bus: 3,
            device: 2,
            function: 1,
        };
        assert_eq!(b.ecam_offset(0), 3 << 20 | 2 << 15 | 1 << 12);
        assert_eq!(b.ecam_offset(2), 1 << 20 | 2 << 15 | 1 << 12);
    }

    #[test]
    fn absent_functions_read_as_none() {
        let f = Function::absent();
        assert_eq!(Header::read(&f), None);
        let z = Function::new(0, 0);
        assert_eq!(Header::read(&z), None, "vendor 0 is no vendor");
    }

    #[test]
    fn header_fields() {
        let f = Function::new(0x1b36, 0x0010)
            .class(0x01, 0x08, 0x02)
            .multifunction();
        let h = Header::read(&f).unwrap();
        assert_eq!((h.vendor, h.device), (0x1b36, 0x0010));
        assert_eq!((h.class, h.subclass, h.prog_if), (1, 8, 2));
        assert!(h.multifunction);
        assert_eq!(h.kind, 0);
        assert_eq!(h.bar_count(), 6);
        assert_eq!(class_name(h.class, h.subclass), "NVMe controller");
    }

    #[test]
    fn bridges_must_point_past_themselves() {
        let f = Function::new(0x8086, 0x1234).kind(1);
        f.set(reg::BUSES, 0x00_01_01_00); // primary 0, secondary 1, subordinate 1
        let h = Header::read(&f).unwrap();
        assert_eq!(bridge_buses(&f, &h), Some((1, 1)));
        f.set(reg::BUSES, 0x00_00_00_00); // secondary 0: back to its own bus
        assert_eq!(bridge_buses(&f, &h), None);
        f.set(reg::BUSES, 0x00_01_02_00); // subordinate below secondary
        assert_eq!(bridge_buses(&f, &h), None);
        let e = Function::new(0x8086, 0x1234);
        assert_eq!(bridge_buses(&e, &Header::read(&e).unwrap()), None);
    }
}
