//! Devices as the kernel reports them (`dev_list`) and names them (a device token's
//! object id is the function's packed PCI address).

/// One PCI function, as `dev_list` writes it. 32 bytes, little-endian, field order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `segment << 16 | bus << 8 | device << 3 | function`.
    pub address: u32,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// The process that holds the device (its driver), 0 for none.
    pub holder: u32,
    /// MSI-X vectors, 0 if it has no (usable) MSI-X.
    pub msix_vectors: u16,
    /// Bit `i`: BAR `i` is memory the driver can map.
    pub memory_bars: u8,
    /// [`flags`] bits.
    pub flags: u8,
    /// Per BAR: log2 of its size in bytes (sizes are powers of two), 0 for none.
    pub bar_size_log2: [u8; 6],
    pub reserved: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<DeviceInfo>() == 32);

/// Bits of [`DeviceInfo::flags`].
pub mod flags {
    /// The IOMMU confines the device's DMA to its driver's memory.
    pub const CONFINED: u8 = 1 << 0;
    /// A PCI-to-PCI bridge.
    pub const BRIDGE: u8 = 1 << 1;
    /// The IOMMU remaps its interrupts: it can raise only those its driver bound.
    pub const REMAPPED: u8 = 1 << 2;
}

impl DeviceInfo {
    pub const SIZE: usize = 32;

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&self.address.to_le_bytes());
        b[4..6].copy_from_slice(&self.vendor.to_le_bytes());
        b[6..8].copy_from_slice(&self.device.to_le_bytes());
        b[8] = self.class;
        b[9] = self.subclass;
        b[10] = self.prog_if;
        b[11] = self.revision;
        b[12..16].copy_from_slice(&self.holder.to_le_bytes());
        b[16..18].copy_from_slice(&self.msix_vectors.to_le_bytes());
        b[18] = self.memory_bars;
        b[19] = self.flags;
        b[20..26].copy_from_slice(&self.bar_size_log2);
        b[26..32].copy_from_slice(&self.reserved);
        b
    }

    /// The size of memory BAR `i` in bytes, if it has one.
    pub fn bar_size(&self, i: usize) -> Option<u64> {
        let log2 = *self.bar_size_log2.get(i)?;
        (self.memory_bars & (1 << i) != 0 && log2 < 64).then(|| 1u64 << log2)
    }

    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut bars = [0u8; 6];
        bars.copy_from_slice(&b[20..26]);
        let mut reserved = [0u8; 6];
        reserved.copy_from_slice(&b[26..32]);
        Self {
            address: u32_at(0),
            vendor: u16_at(4),
            device: u16_at(6),
            class: b[8],
            subclass: b[9],
            prog_if: b[10],
            revision: b[11],
            holder: u32_at(12),
            msix_vectors: u16_at(16),
            memory_bars: b[18],
            flags: b[19],
            bar_size_log2: bars,
            reserved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = DeviceInfo {
            address: 0x0000_0020,
            vendor: 0x1b36,
            device: 0x0010,
            class: 1,
            subclass: 8,
            prog_if: 2,
            revision: 3,
            holder: 9,
            msix_vectors: 65,
            memory_bars: 0b1,
            flags: flags::CONFINED,
            bar_size_log2: [14, 0, 0, 0, 0, 0],
            reserved: [0; 6],
        };
        assert_eq!(DeviceInfo::from_bytes(&d.to_bytes()), d);
        assert_eq!(d.to_bytes()[4..6], [0x36, 0x1b]);
        assert_eq!(d.bar_size(0), Some(0x4000));
        assert_eq!(d.bar_size(1), None);
        assert_eq!(d.bar_size(9), None);
    }
}
