//! Host tests: the image parses back (GPT, MBR, ESP through fatfs), the stub's patch
//! points are filled in, and, where installed, `sgdisk -v` and `fsck.vfat -n` agree.

use super::*;
use fatfs::{FileSystem, FsOptions};
use std::io::Read;

fn fake_stub() -> BiosStub {
    let mut mbr_code = [0u8; MBR_CODE_LEN];
    mbr_code[..100].fill(0xf4);
    BiosStub {
        mbr_code,
        stage2: vec![0xeb; 3 * 512],
    }
}

fn zenos() -> Vec<u8> {
    (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn read_file(esp: &[u8], path: &str) -> Vec<u8> {
    let fs = FileSystem::new(Cursor::new(esp.to_vec()), FsOptions::new()).unwrap();
    let mut out = Vec::new();
    fs.root_dir()
        .open_file(path)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn image_parses_back() {
    let stub = fake_stub();
    let zen = zenos();
    let mut spec = ImageSpec::new(&stub, b"MZ uefi stub", &zen);
    spec.cmdline = Some("log=debug");
    let (img, layout) = write_image(&spec).unwrap();
    assert_eq!(img.len() % (1 << 20), 0);

    // GPT: three partitions where expected, both headers and arrays valid.
    let parts = gpt::read(&img).unwrap();
    assert_eq!(parts, layout.partitions);
    assert_eq!(
        parts.iter().map(|p| p.type_guid).collect::<Vec<_>>(),
        [BIOS_BOOT_TYPE, ESP_TYPE, ZEN_ROOT_TYPE]
    );
    assert_eq!((parts[0].first_lba, parts[0].last_lba), (2048, 4095));
    assert_eq!(
        (parts[1].first_lba, parts[1].last_lba),
        (4096, 4096 + (64 << 11) - 1)
    );
    assert_eq!(parts[2].first_lba, parts[1].last_lba + 1);
    assert_eq!(parts[2].last_lba - parts[2].first_lba + 1, 32 << 11);
    assert_ne!(parts[0].unique_guid, parts[1].unique_guid);

    // MBR: the stub's code, the patched disk address packet, the signature.
    assert_eq!(&img[..100], &[0xf4; 100][..]);
    assert_eq!(
        u16::from_le_bytes([img[MBR_DAP_SECTORS], img[MBR_DAP_SECTORS + 1]]),
        4
    );
    assert_eq!(
        u64::from_le_bytes(img[MBR_DAP_LBA..MBR_DAP_LBA + 8].try_into().unwrap()),
        BIOS_BOOT_LBA
    );
    assert_eq!(&img[510..512], &[0x55, 0xaa]);

    // Second stage, then the parameter sector naming zenos.bin's sectors.
    let s2 = (BIOS_BOOT_LBA * 512) as usize;
    assert!(img[s2..s2 + 1536].iter().all(|&b| b == 0xeb));
    let params = Params::decode(img[s2 + 1536..s2 + 2048].try_into().unwrap()).unwrap();
    assert_eq!(layout.params_lba * 512, (s2 + 1536) as u64);
    assert_eq!(
        (params.zenos_lba, params.zenos_len),
        (layout.zenos_lba, zen.len() as u64)
    );
    assert_eq!(&params.cmdline[..10], b"log=debug\0");
    let z = (params.zenos_lba * 512) as usize;
    assert_eq!(&img[z..z + zen.len()], &zen[..]);
    assert!(params.zenos_lba > parts[1].first_lba && params.zenos_lba < parts[1].last_lba);

    // ESP: FAT32 with the files, readable through fatfs.
    let esp = &img[(parts[1].first_lba * 512) as usize..((parts[1].last_lba + 1) * 512) as usize];
    let fs = FileSystem::new(Cursor::new(esp.to_vec()), FsOptions::new()).unwrap();
    assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
    assert_eq!(read_file(esp, "EFI/BOOT/BOOTX64.EFI"), b"MZ uefi stub");
    assert_eq!(read_file(esp, "zenos.bin"), zen);
    assert_eq!(read_file(esp, "cmdline.txt"), b"log=debug");

    // The root partition is empty (zeroed) for now.
    let root = &img[(parts[2].first_lba * 512) as usize..((parts[2].last_lba + 1) * 512) as usize];
    assert!(root.iter().all(|&b| b == 0));
}

#[test]
fn same_seed_same_image_and_limits() {
    let stub = fake_stub();
    let zen = zenos();
    let mut spec = ImageSpec::new(&stub, b"MZ", &zen);
    spec.esp_bytes = 40 << 20;
    spec.root_bytes = 1 << 20;
    let a = write_image(&spec).unwrap().0;
    assert_eq!(a, write_image(&spec).unwrap().0);
    let long = "x".repeat(128);
    spec.cmdline = Some(&long);
    assert!(write_image(&spec).is_err());
    spec.cmdline = None;
    spec.zenos_bin = b"";
    assert!(write_image(&spec).is_err());
}

/// A minimal ELF64 with one PT_LOAD at 0x7C00 and the header segment below it.
fn elf(load: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 0x100];
    e[..6].copy_from_slice(b"\x7fELF\x02\x01");
    e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    e[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
    let ph = |e: &mut Vec<u8>, at: usize, off: u64, vaddr: u64, size: u64| {
        e[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        e[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        e[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        e[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
    };
    ph(&mut e, 0x40, 0, 0x7000, 0x100);
    ph(&mut e, 0x78, 0x100, 0x7c00, load.len() as u64);
    e.extend_from_slice(load);
    e
}

#[test]
fn stub_elf_flattens() {
    let mut load = vec![0u8; 512 + 700];
    load[0] = 0xfa;
    load[510..512].copy_from_slice(&[0x55, 0xaa]);
    load[512..1212].fill(0x90);
    let stub = BiosStub::from_elf(&elf(&load)).unwrap();
    assert_eq!(stub.mbr_code[0], 0xfa);
    assert_eq!(stub.stage2.len(), 1024);
    assert_eq!(stub.size(), MBR_DAP_LBA + 8 + 700);
    assert!(
        BiosStub::from_elf(&elf(&[0u8; 600])).is_err(),
        "no boot signature"
    );
    assert!(
        BiosStub::from_elf(&elf(&vec![0u8; 9000])).is_err(),
        "over 8 KiB"
    );
    assert!(BiosStub::from_elf(b"MZ").is_err());
}

/// `sgdisk -v` and `fsck.vfat -n` (Debian: gdisk, dosfstools) on a written image, when
/// the tools are installed; skipped otherwise.
#[test]
fn external_checkers_agree() {
    let have = |t: &str| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok()
    };
    if !have("sgdisk") || !have("fsck.vfat") {
        eprintln!("sgdisk or fsck.vfat missing: skipped");
        return;
    }
    let stub = fake_stub();
    let zen = zenos();
    let (img, layout) = write_image(&ImageSpec::new(&stub, b"MZ", &zen)).unwrap();
    let dir = std::env::temp_dir().join(format!("zenimg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (disk, esp) = (dir.join("zenos.img"), dir.join("esp.img"));
    std::fs::write(&disk, &img).unwrap();
    let p = &layout.partitions[1];
    std::fs::write(
        &esp,
        &img[(p.first_lba * 512) as usize..((p.last_lba + 1) * 512) as usize],
    )
    .unwrap();
    let sg = std::process::Command::new("sgdisk")
        .arg("-v")
        .arg(&disk)
        .output()
        .unwrap();
    let sg_out = String::from_utf8_lossy(&sg.stdout);
    assert!(
        sg.status.success() && sg_out.contains("No problems found"),
        "sgdisk -v: {sg_out}"
    );
    let fsck = std::process::Command::new("fsck.vfat")
        .arg("-n")
        .arg(&esp)
        .output()
        .unwrap();
    let fsck_out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success(),
        "fsck.vfat -n: {fsck_out}{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
