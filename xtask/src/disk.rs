//! The one disk image, `zenos.img`, and the firmware that boots it.
//!
//! `tools/zenimg` (a library here) lays the image out: GPT with a protective MBR whose
//! boot code is the BIOS stub, a BIOS boot partition holding the stub's second stage,
//! a FAT32 ESP with `EFI/BOOT/BOOTX64.EFI` and `zenos.bin`, and the (empty) TagFS root.
//! The same file boots under SeaBIOS (QEMU's default firmware), under OVMF, and under
//! OVMF's Secure Boot build with our keys enrolled (`secboot`). It is a plain raw disk,
//! so `dd` writes it to a USB stick.

use crate::ovmf::{OVMF_CODE, OVMF_CODE_SECBOOT, OVMF_VARS};
use crate::util::{cargo, read, run, target, write, Result};
use std::path::{Path, PathBuf};

/// The firmware a [`Disk`] is booted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS: QEMU's default, so no firmware options at all.
    Bios,
    /// OVMF without Secure Boot (`ovmf::OVMF_CODE`, a fresh copy of `ovmf::OVMF_VARS`).
    Uefi,
    /// OVMF's Secure Boot build with SMM; the variable store given (a template copied
    /// per run) has PK, KEK and db enrolled and Secure Boot on.
    SecureBoot { vars: PathBuf },
}

/// A disk image and how to boot it (the `disk` of a `qemu::Vm`).
#[derive(Clone, Debug)]
pub struct Disk {
    pub image: PathBuf,
    pub firmware: Firmware,
    /// Boot from a throw-away overlay (`snapshot=on`): the file is never written, so
    /// parallel runs can share one image. Off for `cargo xtask run`, a real disk.
    pub snapshot: bool,
}

impl Disk {
    /// The variable store this run copies, if the firmware has one.
    pub fn vars_template(&self) -> Option<&Path> {
        match &self.firmware {
            Firmware::Bios => None,
            Firmware::Uefi => Some(Path::new(OVMF_VARS)),
            Firmware::SecureBoot { vars } => Some(vars),
        }
    }

    /// QEMU options for the firmware and the disk; `vars` is this run's store copy.
    pub fn qemu_args(&self, vars: &Path) -> Vec<String> {
        let mut a = Vec::new();
        let pflash = |a: &mut Vec<String>, code: &str| {
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        };
        match &self.firmware {
            Firmware::Bios => {}
            Firmware::Uefi => pflash(&mut a, OVMF_CODE),
            Firmware::SecureBoot { .. } => {
                // The Secure Boot build keeps its variables behind SMM, and the flash
                // must refuse writes from outside SMM, or the OS could rewrite db.
                // QEMU merges repeated -machine options into the q35 given before.
                a.extend(
                    [
                        "-machine",
                        "smm=on",
                        "-global",
                        "driver=cfi.pflash01,property=secure,value=on",
                    ]
                    .map(String::from),
                );
                pflash(&mut a, OVMF_CODE_SECBOOT);
            }
        }
        // The disk is an NVMe drive: the one nvmed serves, and both firmwares boot
        // from it (SeaBIOS's and OVMF's NVMe drivers).
        a.push("-drive".into());
        a.push(format!(
            "if=none,id=zenos,format=raw,file={}{}",
            self.image.display(),
            if self.snapshot { ",snapshot=on" } else { "" }
        ));
        a.push("-device".into());
        a.push("nvme,serial=zenos,drive=zenos,bootindex=0".into());
        a
    }
}

/// Builds the BIOS stub (its own target dir: the kernel's RUSTFLAGS for the same
/// target would otherwise rebuild the shared crates at every switch) and returns the
/// split stub.
pub fn bios_stub() -> Result<zenimg::BiosStub> {
    let dir = target().join("bios");
    run(cargo()
        .args(["build", "-p", "zen-boot-bios", "--bin", "zen-boot-bios"])
        .args(["--target", "x86_64-unknown-none", "--profile", "bios-stub"])
        .arg("--target-dir")
        .arg(&dir))?;
    let elf = dir.join("x86_64-unknown-none/bios-stub/zen-boot-bios");
    zenimg::BiosStub::from_elf(&read(&elf)?).map_err(|e| format!("{}: {e}", elf.display()))
}

/// Bytes of the scratch disk the driver tests write (`cargo xtask run --scratch`,
/// usertests' `disk::*`).
pub const SCRATCH_BYTES: usize = 32 << 20;

/// The scratch disk: zeroes under a GPT with an EFI system partition at LBA
/// 2048..=4095 and a TagFS root at 40960..=57343 (8 MiB), which the partition tests
/// write through a connection confined to it; the whole-disk tests stay between.
pub fn scratch_image() -> Result<Vec<u8>> {
    use zenimg::gpt::{write, Partition};
    let mut disk = vec![0u8; SCRATCH_BYTES];
    let part = |t, first, last, name: &str, id: u8| Partition {
        type_guid: t,
        unique_guid: [id; 16],
        first_lba: first,
        last_lba: last,
        attributes: 0,
        name: name.into(),
    };
    let parts = [
        part(zenimg::ESP_TYPE, 2048, 4095, "scratch ESP", 1),
        part(zenimg::ZEN_ROOT_TYPE, 40960, 57343, "scratch root", 2),
    ];
    write(&mut disk, &[0x5a; 16], &parts).map_err(|e| format!("scratch disk: {e}"))?;
    Ok(disk)
}

/// The store bench's disk: 512 MiB, a GPT with one blank TagFS root partition over
/// nearly all of it (storebench's tagfsd formats it).
pub fn store_bench_image() -> Result<Vec<u8>> {
    use zenimg::gpt::{write, Partition};
    let bytes = 512usize << 20;
    let sectors = (bytes / 512) as u64;
    let mut disk = vec![0u8; bytes];
    let parts = [Partition {
        type_guid: zenimg::ZEN_ROOT_TYPE,
        unique_guid: [3; 16],
        first_lba: 2048,
        last_lba: sectors - 2048,
        attributes: 0,
        name: "bench root".into(),
    }];
    write(&mut disk, &[0x5b; 16], &parts).map_err(|e| format!("store bench disk: {e}"))?;
    Ok(disk)
}

/// What goes on the disk.
#[derive(Debug)]
pub struct Contents<'a> {
    pub bios_stub: &'a zenimg::BiosStub,
    pub uefi_stub: &'a [u8],
    pub zenos_bin: &'a [u8],
    pub cmdline: Option<&'a str>,
}

/// Writes the image to `path` (its TagFS root partition left blank); returns where
/// things went.
pub fn write_image(path: &Path, c: &Contents) -> Result<zenimg::Layout> {
    write_image_with(path, c, |_, _| Ok(()))
}

/// As [`write_image`], with `fill` given the image to change before it is written.
pub fn write_image_with(
    path: &Path,
    c: &Contents,
    fill: impl FnOnce(&mut [u8], &zenimg::Layout) -> Result<()>,
) -> Result<zenimg::Layout> {
    let mut spec = zenimg::ImageSpec::new(c.bios_stub, c.uefi_stub, c.zenos_bin);
    spec.cmdline = c.cmdline;
    let (mut img, layout) =
        zenimg::write_image(&spec).map_err(|e| format!("{}: {e}", path.display()))?;
    fill(&mut img, &layout)?;
    write(path, &img)?;
    Ok(layout)
}

/// Ways to damage the BIOS stub's parameter sector in a written image. Nothing signs
/// that sector, and the 16-bit code loads as many bytes as it says, so the stub's own
/// checks are all that keep a bad length from overwriting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsCorruption {
    /// A `zenos.bin` length of 2^64 - 1 bytes.
    HugeLength,
    /// 512 MiB: under the stub's 1 GiB cap, but more than the test VMs' 256 MiB of
    /// RAM, so only the E820 check refuses it.
    LengthPastRam,
}

impl ParamsCorruption {
    pub const ALL: [ParamsCorruption; 2] = [Self::HugeLength, Self::LengthPastRam];

    /// Short name, used for the test name and the image file.
    pub fn name(self) -> &'static str {
        match self {
            Self::HugeLength => "huge_zenos_len",
            Self::LengthPastRam => "zenos_len_past_ram",
        }
    }

    /// The line the BIOS stub prints before it halts.
    pub fn refusal(self) -> &'static str {
        "zen-boot: zenos.bin does not fit in memory"
    }

    fn zenos_len(self) -> u64 {
        match self {
            Self::HugeLength => u64::MAX,
            Self::LengthPastRam => 512 << 20,
        }
    }

    /// Damages the parameter sector of `img`, an image `write_image` laid out as
    /// `layout`.
    pub fn apply(self, img: &mut [u8], layout: &zenimg::Layout) -> Result {
        let at = (layout.params_lba * 512) as usize;
        let sector: &mut [u8; 512] = img
            .get_mut(at..at + 512)
            .and_then(|s| s.try_into().ok())
            .ok_or("the parameter sector lies beyond the end of the image")?;
        let mut p = zenimg::Params::decode(sector).ok_or("no parameter sector")?;
        p.zenos_len = self.zenos_len();
        *sector = p.encode();
        Ok(())
    }
}

/// `sgdisk -v` on the image and `fsck.vfat -n` on its ESP: both must find it clean.
/// Returns what they said.
pub fn check_clean(image: &Path, layout: &zenimg::Layout) -> Result<String> {
    let sg = crate::util::output(std::process::Command::new("sgdisk").arg("-v").arg(image))?;
    if !sg.contains("No problems found") {
        return Err(format!("sgdisk -v {}: {}", image.display(), sg.trim()));
    }
    let esp = &layout.partitions[1];
    let bytes = read(image)?;
    let part = bytes
        .get((esp.first_lba * 512) as usize..((esp.last_lba + 1) * 512) as usize)
        .ok_or("the ESP lies beyond the end of the image")?;
    let esp_file = image.with_extension("esp.raw");
    write(&esp_file, part)?;
    let fsck = std::process::Command::new("fsck.vfat")
        .arg("-n")
        .arg(&esp_file)
        .output();
    let _ = std::fs::remove_file(&esp_file);
    let fsck = fsck.map_err(|e| format!("cannot run fsck.vfat: {e}"))?;
    let text =
        String::from_utf8_lossy(&fsck.stdout).to_string() + &String::from_utf8_lossy(&fsck.stderr);
    if !fsck.status.success() {
        return Err(format!(
            "fsck.vfat -n (ESP of {}): {}",
            image.display(),
            text.trim()
        ));
    }
    Ok(format!(
        "{} / {}",
        sg.trim().lines().next().unwrap_or(""),
        text.trim().lines().last().unwrap_or("")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_corruption_changes_only_the_length() {
        let stub = zenimg::BiosStub {
            mbr_code: [0xf4; 440],
            stage2: vec![0xeb; 3 * 512],
        };
        let spec = zenimg::ImageSpec::new(&stub, b"MZ", b"zenos.bin bytes");
        let (good, layout) = zenimg::write_image(&spec).unwrap();
        let at = (layout.params_lba * 512) as usize;
        let params = |img: &[u8]| zenimg::Params::decode(img[at..at + 512].try_into().unwrap());
        for c in ParamsCorruption::ALL {
            let mut bad = good.clone();
            c.apply(&mut bad, &layout).unwrap();
            let want = zenimg::Params {
                zenos_len: c.zenos_len(),
                ..params(&good).unwrap()
            };
            assert_eq!(params(&bad), Some(want), "{}", c.name());
            bad[at..at + 512].copy_from_slice(&good[at..at + 512]);
            assert!(
                bad == good,
                "{}: bytes outside the sector changed",
                c.name()
            );
        }
    }

    #[test]
    fn firmware_options() {
        let d = Disk {
            image: "/i.img".into(),
            firmware: Firmware::Bios,
            snapshot: true,
        };
        assert_eq!(
            d.qemu_args(Path::new("/v")).join(" "),
            "-drive if=none,id=zenos,format=raw,file=/i.img,snapshot=on \
             -device nvme,serial=zenos,drive=zenos,bootindex=0"
        );
        assert_eq!(d.vars_template(), None);
        let d = Disk {
            firmware: Firmware::Uefi,
            snapshot: false,
            ..d
        };
        let a = d.qemu_args(Path::new("/v")).join(" ");
        assert!(
            a.contains("unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"),
            "{a}"
        );
        assert!(
            a.ends_with(
                "unit=1,file=/v -drive if=none,id=zenos,format=raw,file=/i.img \
                 -device nvme,serial=zenos,drive=zenos,bootindex=0"
            ),
            "{a}"
        );
        let d = Disk {
            firmware: Firmware::SecureBoot {
                vars: "/sb.fd".into(),
            },
            ..d
        };
        let a = d.qemu_args(Path::new("/v")).join(" ");
        assert!(
            a.starts_with("-machine smm=on -global driver=cfi.pflash01,property=secure,value=on"),
            "{a}"
        );
        assert!(a.contains("OVMF_CODE_4M.secboot.fd"), "{a}");
        assert_eq!(d.vars_template(), Some(Path::new("/sb.fd")));
    }
}
