//! zenimg: writes `zenos.img`, the one disk image that boots under BIOS and UEFI.
//!
//! ```text
//! LBA 0            protective MBR, boot code = the BIOS stub's MBR (patched, below)
//! LBA 1..33        primary GPT header and entries
//! LBA 2048..4095   BIOS boot partition: the stub's second stage, then its parameter
//!                  sector (where zenos.bin lies, the kernel command line)
//! LBA 4096..       EFI system partition, FAT32: EFI/BOOT/BOOTX64.EFI, zenos.bin,
//!                  cmdline.txt (if any)
//! then             TagFS root partition (empty for now, type ZEN_ROOT_TYPE)
//! last 33 LBAs     backup GPT entries and header
//! ```
//! The BIOS stub has no file system code: it reads zenos.bin by the LBA range this
//! writer records, and the writer checks that the file is contiguous on the FAT32
//! volume. Replacing zenos.bin on the ESP by hand therefore needs the image rewritten
//! (the stub refuses a stale range: the header or hash check fails).
//!
//! Everything is built in memory, so no root, loop devices or external tools are
//! needed; `write_image` returns the bytes.
#![deny(unsafe_code)]

pub mod gpt;

use gpt::{Guid, Partition, SECTOR};
use std::fmt;
use std::io::{Cursor, Write};
/// The BIOS stub's parameter sector, for callers that read or (in tests) damage it.
pub use zen_boot_bios::Params;
use zen_boot_bios::{MAX_STAGE2_SECTORS, MBR_CODE_LEN, MBR_DAP_LBA, MBR_DAP_SECTORS, STUB_BASE};

/// The partition types (GRUB's BIOS boot partition, which firmware and OSes leave
/// alone; the EFI system partition; the Zen OS TagFS root, made up for Zen OS and
/// documented in docs/boot.md): one definition in zen-gpt, which nvmed reads too.
pub use zen_gpt::{BIOS_BOOT_TYPE, ESP_TYPE, ZEN_ROOT_TYPE};

/// Where the partitions start (1 MiB aligned, as partitioning tools expect).
pub const BIOS_BOOT_LBA: u64 = 2048;
pub const BIOS_BOOT_SECTORS: u64 = 2048;
pub const ESP_LBA: u64 = BIOS_BOOT_LBA + BIOS_BOOT_SECTORS;
const ALIGN: u64 = 2048;
/// The stub's budget: MBR + second stage.
pub const STUB_MAX: usize = 8192;

/// Why an image could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("FAT: {e}"))
    }
}

/// The BIOS stub, split for the disk: MBR boot code and the second stage.
#[derive(Debug, Clone)]
pub struct BiosStub {
    /// The MBR's 440 bytes of boot code (its disk address packet still unpatched).
    pub mbr_code: [u8; MBR_CODE_LEN],
    /// The second stage, a whole number of sectors (without the parameter sector).
    pub stage2: Vec<u8>,
}

impl BiosStub {
    /// Flattens the stub's ELF (`target/x86_64-unknown-none/bios-stub/zen-boot-bios`): its
    /// loadable segments from STUB_BASE on, as they lie in memory.
    pub fn from_elf(elf: &[u8]) -> Result<Self, Error> {
        let bad = || Error::new("BIOS stub: not a 64-bit little-endian ELF");
        let u64_at = |o: usize| {
            elf.get(o..o + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                .ok_or_else(bad)
        };
        let u16_at = |o: usize| {
            elf.get(o..o + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(bad)
        };
        if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
            return Err(bad());
        }
        let (phoff, phentsize, phnum) = (
            u64_at(0x20)? as usize,
            u16_at(0x36)? as usize,
            u16_at(0x38)? as usize,
        );
        let mut flat = Vec::new();
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            let ty = u16_at(ph)?;
            let (offset, vaddr, filesz) = (
                u64_at(ph + 8)? as usize,
                u64_at(ph + 16)?,
                u64_at(ph + 32)? as usize,
            );
            // The linker also maps the ELF headers below STUB_BASE: not part of the stub.
            if ty != 1 || filesz == 0 || vaddr < STUB_BASE {
                continue;
            }
            let at = (vaddr - STUB_BASE) as usize;
            let data = elf.get(offset..offset + filesz).ok_or_else(bad)?;
            if at + filesz > STUB_MAX {
                return Err(Error::new(format!(
                    "BIOS stub: {} bytes, over the {STUB_MAX}-byte budget",
                    at + filesz
                )));
            }
            if flat.len() < at + filesz {
                flat.resize(at + filesz, 0);
            }
            flat[at..at + filesz].copy_from_slice(data);
        }
        if flat.len() <= 512 || flat[510..512] != [0x55, 0xaa] {
            return Err(Error::new("BIOS stub: no MBR at 0x7C00"));
        }
        let mut stage2 = flat.split_off(512);
        stage2.resize(stage2.len().next_multiple_of(SECTOR as usize), 0);
        Ok(BiosStub {
            mbr_code: flat[..MBR_CODE_LEN].try_into().unwrap(),
            stage2,
        })
    }

    /// Bytes of code and data in the MBR and the second stage (trailing padding left
    /// out): the figure the 8 KiB budget is about.
    pub fn size(&self) -> usize {
        let mbr = self
            .mbr_code
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        let stage2 = self
            .stage2
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        // The MBR's used bytes are counted whole up to its disk address packet.
        mbr.max(MBR_DAP_LBA + 8) + stage2
    }
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    pub bios_stub: &'a BiosStub,
    /// The UEFI stub, installed as EFI/BOOT/BOOTX64.EFI.
    pub uefi_stub: &'a [u8],
    /// zenos.bin (possibly a deliberately damaged one, for refusal tests).
    pub zenos_bin: &'a [u8],
    /// Kernel command line: `cmdline.txt` on the ESP for the UEFI stub, the parameter
    /// sector for the BIOS stub (at most 127 bytes).
    pub cmdline: Option<&'a str>,
    /// ESP size in bytes (at least 33 MiB, so that it is FAT32; 64 MiB by default).
    pub esp_bytes: u64,
    /// TagFS root partition size in bytes.
    pub root_bytes: u64,
    /// Seeds the disk and partition GUIDs: the same seed gives the same image.
    pub seed: u64,
}

impl<'a> ImageSpec<'a> {
    /// The defaults: 64 MiB ESP, 32 MiB root, fixed seed.
    pub fn new(bios_stub: &'a BiosStub, uefi_stub: &'a [u8], zenos_bin: &'a [u8]) -> Self {
        ImageSpec {
            bios_stub,
            uefi_stub,
            zenos_bin,
            cmdline: None,
            esp_bytes: 64 << 20,
            root_bytes: 32 << 20,
            seed: 0x5a45_4e4f_5321,
        }
    }
}

/// Where things ended up, for callers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub partitions: Vec<Partition>,
    /// LBA range of zenos.bin's bytes (inside the ESP).
    pub zenos_lba: u64,
    pub zenos_len: u64,
    /// LBA of the BIOS stub's parameter sector (right after its second stage).
    pub params_lba: u64,
}

/// Builds the whole image in memory.
pub fn write_image(spec: &ImageSpec) -> Result<(Vec<u8>, Layout), Error> {
    let stage2_sectors = spec.bios_stub.stage2.len() as u64 / SECTOR + 1;
    if stage2_sectors > MAX_STAGE2_SECTORS as u64 || stage2_sectors > BIOS_BOOT_SECTORS {
        return Err(Error::new("BIOS stub second stage too large"));
    }
    let cmdline = spec.cmdline.unwrap_or("").as_bytes();
    if cmdline.len() > 127 {
        return Err(Error::new("command line over 127 bytes"));
    }
    let esp_sectors = (spec.esp_bytes / SECTOR).next_multiple_of(ALIGN);
    let root_sectors = (spec.root_bytes / SECTOR)
        .next_multiple_of(ALIGN)
        .max(ALIGN);
    let root_lba = ESP_LBA + esp_sectors;
    // 1 MiB at the end holds the backup GPT (33 sectors) and keeps the size aligned.
    let total = root_lba + root_sectors + ALIGN;
    let mut disk = vec![0u8; (total * SECTOR) as usize];

    let esp = esp_image(
        esp_sectors * SECTOR,
        spec.uefi_stub,
        spec.zenos_bin,
        spec.cmdline,
    )?;
    let zenos_off = find_contiguous(&esp, spec.zenos_bin)?;
    let zenos_lba = ESP_LBA + zenos_off as u64 / SECTOR;
    let at = |lba: u64| (lba * SECTOR) as usize;
    disk[at(ESP_LBA)..at(ESP_LBA) + esp.len()].copy_from_slice(&esp);

    // MBR boot code with its disk address packet pointing at the second stage.
    disk[..MBR_CODE_LEN].copy_from_slice(&spec.bios_stub.mbr_code);
    disk[MBR_DAP_SECTORS..MBR_DAP_SECTORS + 2]
        .copy_from_slice(&(stage2_sectors as u16).to_le_bytes());
    disk[MBR_DAP_LBA..MBR_DAP_LBA + 8].copy_from_slice(&BIOS_BOOT_LBA.to_le_bytes());
    // Second stage, then the parameter sector.
    let stage2 = &spec.bios_stub.stage2;
    disk[at(BIOS_BOOT_LBA)..at(BIOS_BOOT_LBA) + stage2.len()].copy_from_slice(stage2);
    let mut line = [0u8; 128];
    line[..cmdline.len()].copy_from_slice(cmdline);
    let params = Params {
        zenos_lba,
        zenos_len: spec.zenos_bin.len() as u64,
        cmdline: line,
    };
    let params_lba = BIOS_BOOT_LBA + stage2.len() as u64 / SECTOR;
    let p = at(params_lba);
    disk[p..p + SECTOR as usize].copy_from_slice(&params.encode());

    let mut guids = Guids(spec.seed);
    let disk_guid = guids.next();
    let part = |ty: Guid, unique: Guid, first: u64, sectors: u64, name: &str| Partition {
        type_guid: ty,
        unique_guid: unique,
        first_lba: first,
        last_lba: first + sectors - 1,
        attributes: 0,
        name: name.into(),
    };
    let partitions = vec![
        part(
            BIOS_BOOT_TYPE,
            guids.next(),
            BIOS_BOOT_LBA,
            BIOS_BOOT_SECTORS,
            "BIOS boot",
        ),
        part(ESP_TYPE, guids.next(), ESP_LBA, esp_sectors, "EFI system"),
        part(
            ZEN_ROOT_TYPE,
            guids.next(),
            root_lba,
            root_sectors,
            "Zen OS root",
        ),
    ];
    gpt::write(&mut disk, &disk_guid, &partitions)?;
    Ok((
        disk,
        Layout {
            partitions,
            zenos_lba,
            zenos_len: spec.zenos_bin.len() as u64,
            params_lba,
        },
    ))
}

/// A fresh FAT32 volume of `bytes` bytes holding the boot files.
fn esp_image(
    bytes: u64,
    uefi_stub: &[u8],
    zenos_bin: &[u8],
    cmdline: Option<&str>,
) -> Result<Vec<u8>, Error> {
    use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
    let mut esp = vec![0u8; bytes as usize];
    // 512-byte clusters keep a 64 MiB volume well above FAT32's minimum cluster count.
    let opts = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_cluster(512)
        .volume_label(*b"ZEN OS ESP ");
    fatfs::format_volume(Cursor::new(&mut esp[..]), opts)?;
    {
        let fs = FileSystem::new(Cursor::new(&mut esp[..]), FsOptions::new())?;
        {
            let root = fs.root_dir();
            // zenos.bin first: on a fresh volume its clusters are then one run.
            root.create_file("zenos.bin")?.write_all(zenos_bin)?;
            root.create_dir("EFI")?
                .create_dir("BOOT")?
                .create_file("BOOTX64.EFI")?
                .write_all(uefi_stub)?;
            if let Some(line) = cmdline {
                root.create_file("cmdline.txt")?
                    .write_all(line.as_bytes())?;
            }
        }
        // Counting the free clusters fills in the FSInfo sector (fsck.vfat checks it).
        fs.stats()?;
        fs.unmount()?;
    }
    fix_dotdot(&mut esp, b"EFI        ")?;
    Ok(esp)
}

/// fatfs 0.3.6 points ".." of a directory in the root at cluster 2 (the FAT32 root's
/// cluster); the FAT specification (and fsck.vfat) want 0. Patches the ".." entry of
/// the root directory's subdirectory `name` (a short name, space padded).
fn fix_dotdot(esp: &mut [u8], name: &[u8; 11]) -> Result<(), Error> {
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let (bps, spc) = (u16_at(esp, 11), esp[13] as usize);
    let data = (u16_at(esp, 14) + esp[16] as usize * u32_at(esp, 36)) * bps;
    let cluster = |c: usize| data + (c - 2) * bps * spc;
    // The root holds a handful of entries: its first cluster is enough.
    let root = cluster(u32_at(esp, 44));
    let entry = (root..root + bps * spc)
        .step_by(32)
        .find(|&e| &esp[e..e + 11] == name && esp[e + 11] & 0x10 != 0)
        .ok_or_else(|| Error::new("ESP: directory not found for the '..' fix"))?;
    let dir = cluster(u16_at(esp, entry + 26) | u16_at(esp, entry + 20) << 16);
    let dotdot = dir + 32;
    if &esp[dotdot..dotdot + 11] != b"..         " {
        return Err(Error::new("ESP: unexpected directory layout"));
    }
    esp[dotdot + 20..dotdot + 22].fill(0);
    esp[dotdot + 26..dotdot + 28].fill(0);
    Ok(())
}

/// The sector-aligned offset at which all of `file` lies in one piece in `volume`.
/// Its header holds a BLAKE3 hash, so a match elsewhere is out of the question; a file
/// FAT had to fragment is not found, and that is an error.
fn find_contiguous(volume: &[u8], file: &[u8]) -> Result<usize, Error> {
    if file.is_empty() {
        return Err(Error::new("zenos.bin is empty"));
    }
    let probe = &file[..file.len().min(64)];
    (0..volume.len().saturating_sub(file.len()) + 1)
        .step_by(SECTOR as usize)
        .find(|&o| volume[o..].starts_with(probe) && volume[o..].starts_with(file))
        .ok_or_else(|| Error::new("zenos.bin is not contiguous on the ESP"))
}

/// Version-4-shaped GUIDs from a seed (splitmix64): reproducible images.
struct Guids(u64);

impl Guids {
    fn next(&mut self) -> Guid {
        let mut g = [0u8; 16];
        for half in g.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            half.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        g[7] = (g[7] & 0x0f) | 0x40; // version 4 (on-disk order: byte 7 is time_hi's high byte)
        g[8] = (g[8] & 0x3f) | 0x80; // RFC 4122 variant
        g
    }
}

#[cfg(test)]
mod tests;
