//! Assembles what the firmware boots: for now an EFI system partition as a host
//! directory, which QEMU presents as a FAT drive (`fat:rw:<dir>`).
//!
//! A later issue adds the real disk image (`zenos.img`: GPT, protective MBR with the
//! BIOS stub, FAT32 ESP, TagFS root). It should take the same `EspContents` and write
//! them into a FAT32 partition, so that every caller stays as it is.

use crate::util::{mkdir, write, Result};
use std::path::{Path, PathBuf};

/// The files of the ESP.
#[derive(Debug)]
pub struct EspContents<'a> {
    /// The UEFI stub, installed as the removable-media default `EFI/BOOT/BOOTX64.EFI`
    /// so OVMF boots it with no boot entry configured.
    pub stub: &'a Path,
    /// `zenos.bin` (possibly a deliberately corrupted one, for the refusal tests).
    pub zenos_bin: &'a [u8],
    /// The kernel command line, written as `cmdline.txt` when present.
    pub cmdline: Option<&'a str>,
}

/// Writes the ESP as a fresh directory `target/<name>` and returns its path. The
/// directory is emptied first: a stale `cmdline.txt` must not survive a run without one.
pub fn esp_dir(dir: &Path, c: &EspContents) -> Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot empty {}: {e}", dir.display()))?;
    }
    mkdir(&dir.join("EFI/BOOT"))?;
    let stub = crate::util::read(c.stub)?;
    write(&dir.join("EFI/BOOT/BOOTX64.EFI"), &stub)?;
    write(&dir.join("zenos.bin"), c.zenos_bin)?;
    if let Some(line) = c.cmdline {
        write(&dir.join("cmdline.txt"), line.as_bytes())?;
    }
    Ok(dir.to_path_buf())
}

/// Ways to damage `zenos.bin` that the stub must refuse (issue 2, "bad input").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    BadMagic,
    TruncatedPayload,
    FlippedPayloadByte,
}

impl Corruption {
    pub const ALL: [Corruption; 3] = [
        Corruption::BadMagic,
        Corruption::TruncatedPayload,
        Corruption::FlippedPayloadByte,
    ];

    /// Short name, used for the test name and the ESP directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadMagic => "bad_magic",
            Self::TruncatedPayload => "truncated_payload",
            Self::FlippedPayloadByte => "flipped_payload_byte",
        }
    }

    /// The exact line the stub prints when it refuses such an image.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::BadMagic => "zen-boot: refused zenos.bin: bad magic",
            Self::TruncatedPayload => "zen-boot: refused zenos.bin: truncated payload",
            Self::FlippedPayloadByte => "zen-boot: refused zenos.bin: payload hash mismatch",
        }
    }

    /// A damaged copy of a good `zenos.bin`.
    pub fn apply(self, good: &[u8]) -> Vec<u8> {
        let header = zen_image::IMAGE_HEADER_SIZE;
        let payload = good.len() - header;
        let mut bad = good.to_vec();
        match self {
            Self::BadMagic => bad[0] ^= 0x20, // "ZENOSBIN" -> "zENOSBIN"
            // Keep the header intact (it still claims the full payload) and cut the
            // payload in half, as an interrupted copy would.
            Self::TruncatedPayload => bad.truncate(header + payload / 2),
            // One bit in the middle of the payload: only the hash can notice.
            Self::FlippedPayloadByte => bad[header + payload / 2] ^= 0x01,
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_corruption_is_refused_with_its_message() {
        let flat: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let base = zen_abi::layout::KERNEL_BASE;
        let good = zen_image::build(&flat, 16_384, base, base);
        assert!(zen_image::verify(&good).is_ok());
        for c in Corruption::ALL {
            let err = zen_image::verify(&c.apply(&good)).unwrap_err();
            // The stub prints "zen-boot: refused zenos.bin: " + ImageError::as_str.
            assert_eq!(
                format!("zen-boot: refused zenos.bin: {}", err.as_str()),
                c.refusal()
            );
        }
    }

    #[test]
    fn esp_dir_is_rebuilt_from_scratch() {
        let dir = std::env::temp_dir().join(format!("xtask-esp-test-{}", std::process::id()));
        let stub = dir.with_extension("efi");
        std::fs::write(&stub, b"MZ stub").unwrap();
        let c = EspContents {
            stub: &stub,
            zenos_bin: b"img",
            cmdline: Some("log=debug"),
        };
        esp_dir(&dir, &c).unwrap();
        assert_eq!(
            std::fs::read(dir.join("EFI/BOOT/BOOTX64.EFI")).unwrap(),
            b"MZ stub"
        );
        assert_eq!(
            std::fs::read(dir.join("cmdline.txt")).unwrap(),
            b"log=debug"
        );
        esp_dir(&dir, &EspContents { cmdline: None, ..c }).unwrap();
        assert!(!dir.join("cmdline.txt").exists());
        assert_eq!(std::fs::read(dir.join("zenos.bin")).unwrap(), b"img");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&stub).unwrap();
    }
}
