//! Builds the pieces of a bootable Zen OS: the kernel (normal and test mode), its flat
//! image and `zenos.bin` (signed with the image key), and the UEFI stub (with that
//! key's public half built in, and signed for Secure Boot; see `secboot`).
//!
//! The normal and the test-mode kernel use separate target directories so switching
//! between `cargo xtask run` and `cargo xtask test` rebuilds neither.

use crate::elf;
use crate::util::{cargo, read, run, target, write, Result};
use std::path::{Path, PathBuf};

/// Which kernel to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The kernel that boots to `zen: ready`.
    Normal,
    /// Built with `--features ktest`: runs its test registry and exits QEMU.
    Test,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The kernel ELF as linked.
    pub elf: PathBuf,
    /// The compressed kernel image the stub loads.
    pub zenos_bin: PathBuf,
    /// Bytes of the flat (uncompressed) kernel image.
    pub flat_len: u64,
    /// The UEFI stub, signed for Secure Boot (`secboot::unsigned_stub` is the same
    /// binary before sbsign).
    pub stub: PathBuf,
    /// The boot archive of user programs built into the kernel.
    pub archive: PathBuf,
}

/// Builds the given kernel (release profile) and the stub, and writes `zenos.bin`
/// beside the ELF.
pub fn build(kernel: Kernel) -> Result<Artifacts> {
    build_with(kernel, true)
}

/// As [`build`], choosing the kernel's profile: `release` or cargo's `dev`.
pub fn build_with(kernel: Kernel, release: bool) -> Result<Artifacts> {
    let archive = build_user()?;
    let keys = crate::secboot::keys()?;
    let image_key = keys.image_keypair()?;
    let elf = build_kernel(kernel, release, &archive)?;
    let stub = crate::secboot::signed_stub(&keys, &build_stub(&image_key.pk, true)?)?;
    let (zenos_bin, flat_len) = make_zenos_bin(&elf, &image_key)?;
    Ok(Artifacts {
        elf,
        zenos_bin,
        flat_len,
        stub,
        archive,
    })
}

/// The programs of the boot archive (crates under user/), in archive order.
pub const USER_PROGRAMS: &[&str] = &["init", "shell", "usertests", "ipcbench"];

/// Builds the user programs (static-PIE, the target's default) and packs them into
/// the boot archive (`zen_abi::archive`). Their own target directory: the kernel's
/// code-model flags must not reach them.
fn build_user() -> Result<PathBuf> {
    let dir = target().join("user");
    let mut c = cargo();
    c.args([
        "build",
        "--profile",
        "user",
        "--target",
        "x86_64-unknown-none",
    ])
    .arg("--target-dir")
    .arg(&dir)
    .env_remove("CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS");
    for p in USER_PROGRAMS {
        c.args(["-p", p]);
    }
    run(&mut c)?;
    let bin = dir.join("x86_64-unknown-none").join("user");
    let mut programs = Vec::new();
    for p in USER_PROGRAMS {
        programs.push((*p, read(&bin.join(p))?));
    }
    let out = dir.join("archive.bin");
    write(&out, &archive(&programs)?)?;
    Ok(out)
}

/// The archive bytes for `(name, program)` pairs.
pub fn archive(programs: &[(&str, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let lens: Vec<(&str, usize)> = programs.iter().map(|(n, p)| (*n, p.len())).collect();
    zen_abi::archive::write_header(&lens, |b| out.extend_from_slice(b))
        .map_err(|e| format!("boot archive: {}", e.as_str()))?;
    for (_, p) in programs {
        out.extend_from_slice(p);
    }
    Ok(out)
}

fn build_kernel(kernel: Kernel, release: bool, archive: &Path) -> Result<PathBuf> {
    let target_dir = match kernel {
        Kernel::Normal => target(),
        Kernel::Test => target().join("ktest"),
    };
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "zen-kernel",
        "--target",
        "x86_64-unknown-none",
    ])
    .arg("--target-dir")
    .arg(&target_dir)
    // Target-specific so host build scripts are unaffected. The kernel code model
    // needs the kernel linked in the top 2 GiB (KERNEL_BASE); static relocation
    // because nothing relocates the flat image.
    .env(
        "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
        "-C code-model=kernel -C relocation-model=static",
    )
    .env("ZEN_ARCHIVE", archive);
    if kernel == Kernel::Test {
        c.args(["--features", "ktest"]);
    }
    // `kernel` is release with LTO (see the workspace Cargo.toml).
    let profile_dir = if release { "kernel" } else { "debug" };
    if release {
        c.args(["--profile", "kernel"]);
    }
    run(&mut c)?;
    Ok(target_dir
        .join("x86_64-unknown-none")
        .join(profile_dir)
        .join("zen-kernel"))
}

/// Builds the UEFI stub that accepts only images signed by `pk`; without
/// `signature`, the stub that checks no signature (in its own target directory, so the
/// two do not rebuild each other), for measuring what the check costs.
pub fn build_stub(pk: &[u8; 32], signature: bool) -> Result<PathBuf> {
    let dir = if signature {
        target()
    } else {
        target().join("stub-nosig")
    };
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "zen-boot-uefi",
        "--target",
        "x86_64-unknown-uefi",
    ])
    .args(["--profile", "stub", "--target-dir"])
    .arg(&dir)
    .env("ZEN_IMAGE_PUBKEY", crate::secboot::hex(pk));
    if !signature {
        c.arg("--no-default-features");
    }
    run(&mut c)?;
    Ok(dir.join("x86_64-unknown-uefi/stub/zen-boot-uefi.efi"))
}

/// Flattens the kernel ELF and wraps it as `zenos.bin` (next to the ELF, so the normal
/// and the test-mode image do not overwrite each other). Returns its path and the
/// flat image's size.
fn make_zenos_bin(elf_path: &Path, key: &ed25519_compact::KeyPair) -> Result<(PathBuf, u64)> {
    let base = zen_abi::layout::KERNEL_BASE;
    let flat =
        elf::flatten(&read(elf_path)?, base).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let mut bin = zen_image::build(&flat.image, flat.mem_size, base, flat.entry);
    crate::secboot::sign_image(&mut bin, key)?;
    zen_image::check_signature(&bin, &key.pk)
        .map_err(|e| format!("signed zenos.bin does not verify: {}", e.as_str()))?;
    // Catch a bad header here rather than as a refusal at boot.
    zen_image::verify(&bin)
        .map_err(|e| format!("built zenos.bin does not verify: {}", e.as_str()))?;
    let out = elf_path.with_file_name("zenos.bin");
    write(&out, &bin)?;
    Ok((out, flat.image.len() as u64))
}
