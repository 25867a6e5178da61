//! `BootInfo`: what a boot stub hands to the kernel.
//!
//! Both stubs (UEFI and BIOS) fill the same structure. All addresses in it are
//! *physical*; the kernel reads them through the direct map. The kernel receives a
//! pointer to it (a direct-map virtual address) in `rdi`.

/// "ZENBOOT\0", little-endian: checked first by the kernel.
pub const BOOTINFO_MAGIC: u64 = u64::from_le_bytes(*b"ZENBOOT\0");
/// Bumped on any layout change of [`BootInfo`] or the types it contains.
pub const BOOTINFO_VERSION: u32 = 2;

/// Which firmware started the machine.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareKind {
    Uefi = 1,
    Bios = 2,
}

impl TryFrom<u32> for FirmwareKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            1 => Ok(Self::Uefi),
            2 => Ok(Self::Bios),
            other => Err(other),
        }
    }
}

/// Secure Boot state as the stub saw it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureBoot {
    /// Not reported by the firmware (always so under BIOS).
    Unknown = 0,
    Disabled = 1,
    /// Enforced by the firmware: the stub itself was verified.
    Enabled = 2,
}

impl TryFrom<u32> for SecureBoot {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            0 => Ok(Self::Unknown),
            1 => Ok(Self::Disabled),
            2 => Ok(Self::Enabled),
            other => Err(other),
        }
    }
}

/// What a physical memory region may be used for.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Free for the kernel's frame allocator.
    Usable = 1,
    /// Never touch (firmware, MMIO holes, bad memory).
    Reserved = 2,
    /// ACPI tables; usable once they have been parsed.
    AcpiReclaimable = 3,
    /// ACPI non-volatile storage; never touch.
    AcpiNvs = 4,
    /// Holds the kernel image, its page tables, this BootInfo and the memory map.
    Bootloader = 5,
    /// UEFI runtime services code and data; must stay mapped for runtime calls.
    FirmwareRuntime = 6,
}

impl TryFrom<u32> for MemoryKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Bootloader,
            6 => Self::FirmwareRuntime,
            other => return Err(other),
        })
    }
}

/// One entry of the physical memory map. Entries are sorted by `base` and do not
/// overlap; `len` is a multiple of 4 KiB.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub len: u64,
    /// A [`MemoryKind`] as `u32` (checked with `TryFrom` by the reader).
    pub kind: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<MemoryRegion>() == 24);

/// Pixel layout of the linear framebuffer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// No framebuffer (text mode or headless).
    None = 0,
    /// 32-bit pixels, byte order R, G, B, reserved.
    Rgb = 1,
    /// 32-bit pixels, byte order B, G, R, reserved.
    Bgr = 2,
}

/// A linear 32-bit framebuffer, if the firmware gave one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// Pixels per scan line (>= width).
    pub stride: u32,
    /// A [`PixelFormat`] as `u32`.
    pub format: u32,
}
const _: () = assert!(core::mem::size_of::<Framebuffer>() == 32);

/// Everything the kernel learns from the boot stub.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    /// A [`FirmwareKind`] as `u32`.
    pub firmware: u32,
    /// A [`SecureBoot`] as `u32`.
    pub secure_boot: u32,
    pub _reserved: u32,
    /// Physical address of `memory_map_len` [`MemoryRegion`]s.
    pub memory_map: u64,
    pub memory_map_len: u64,
    pub framebuffer: Framebuffer,
    /// Physical address of the ACPI RSDP, 0 if none was found.
    pub rsdp: u64,
    /// TSC frequency in Hz if the stub knows it, else 0.
    pub tsc_hz: u64,
    /// TSC value when the stub started: lets the kernel report firmware hand-off to
    /// ready (an instruction count under QEMU `-icount`).
    pub stub_start_tsc: u64,
    /// Physical address and size of the kernel image as loaded (flat image, .bss, and
    /// the boot archive after it: see the kernel's `arch::boot_archive`).
    pub kernel_phys: u64,
    pub kernel_size: u64,
    /// The TSC at the end of each of the stub's steps ([`STUB_STEPS`]), 0 for a step
    /// the stub does not measure: `cargo xtask bench` shows where the stub's time goes.
    pub stub_steps: [u64; STUB_STEPS.len()],
    /// Kernel command line, NUL-padded UTF-8.
    pub cmdline: [u8; 128],
}
const _: () = assert!(core::mem::size_of::<BootInfo>() == 288);

/// The stub's steps, in order, by the names the kernel reports them under (each from
/// the end of the one before, the first from `stub_start_tsc`): firmware queries and
/// allocations, reading zenos.bin, the ed25519 check, the payload hash (BLAKE3), LZ4, and the
/// rest up to the jump (page tables, the memory map, ExitBootServices).
pub const STUB_STEPS: [&str; 6] = [
    "stub_setup",
    "stub_read",
    "stub_signature",
    "stub_hash",
    "stub_lz4",
    "stub_exit",
];

impl BootInfo {
    /// The command line as text (up to the first NUL); empty if not UTF-8.
    pub fn cmdline(&self) -> &str {
        let end = self
            .cmdline
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.cmdline.len());
        core::str::from_utf8(&self.cmdline[..end]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_reject_unknown() {
        for k in [
            MemoryKind::Usable,
            MemoryKind::Reserved,
            MemoryKind::AcpiReclaimable,
            MemoryKind::AcpiNvs,
            MemoryKind::Bootloader,
            MemoryKind::FirmwareRuntime,
        ] {
            assert_eq!(MemoryKind::try_from(k as u32), Ok(k));
        }
        assert_eq!(MemoryKind::try_from(0), Err(0));
        assert_eq!(MemoryKind::try_from(7), Err(7));
        assert_eq!(FirmwareKind::try_from(2), Ok(FirmwareKind::Bios));
        assert_eq!(FirmwareKind::try_from(9), Err(9));
    }

    #[test]
    fn cmdline_stops_at_nul() {
        let mut cmdline = [0u8; 128];
        cmdline[..9].copy_from_slice(b"test=heap");
        let bi = BootInfo {
            magic: BOOTINFO_MAGIC,
            version: BOOTINFO_VERSION,
            firmware: 1,
            secure_boot: 0,
            _reserved: 0,
            memory_map: 0,
            memory_map_len: 0,
            framebuffer: Framebuffer {
                base: 0,
                size: 0,
                width: 0,
                height: 0,
                stride: 0,
                format: 0,
            },
            rsdp: 0,
            tsc_hz: 0,
            stub_start_tsc: 0,
            kernel_phys: 0,
            kernel_size: 0,
            stub_steps: [0; STUB_STEPS.len()],
            cmdline,
        };
        assert_eq!(bi.cmdline(), "test=heap");
    }
}
