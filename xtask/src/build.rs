//! Builds the pieces of a bootable Zen OS: the kernel (normal and test mode), its flat
//! image and `zenos.bin` (signed with the image key), and the UEFI stub (with that
//! key's public half built in, and signed for Secure Boot; see `secboot`).
//!
//! The boot archive of user programs is appended to the kernel in `zenos.bin` (after
//! its .bss, at `__kernel_end`), not compiled in, so one kernel build makes two images:
//! `zenos.bin` with the programs a system needs (`DEFAULT_PROGRAMS`), which `cargo
//! xtask run` boots and the stub loads quickly, and `zenos-test.bin`, which adds the
//! programs only tests and benchmarks run (`TEST_PROGRAMS`).
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
    /// The normal kernel with `--features profile`: keeps the per-step profile of
    /// the IPC path (kernel/src/prof.rs) for `cargo xtask bench --only ipc-profile`.
    Profile,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The kernel ELF as linked.
    pub elf: PathBuf,
    /// The compressed kernel image the stub loads, with the default boot archive.
    pub zenos_bin: PathBuf,
    /// The same kernel with the test archive (the default programs and the tests').
    pub zenos_test_bin: PathBuf,
    /// Bytes of the flat (uncompressed) kernel image.
    pub flat_len: u64,
    /// The UEFI stub, signed for Secure Boot (`secboot::unsigned_stub` is the same
    /// binary before sbsign).
    pub stub: PathBuf,
    /// The boot archives of `zenos.bin` and `zenos-test.bin`.
    pub archive: PathBuf,
    pub test_archive: PathBuf,
}

/// Builds the given kernel (release profile) and the stub, and writes `zenos.bin`
/// beside the ELF.
pub fn build(kernel: Kernel) -> Result<Artifacts> {
    build_with(kernel, true)
}

/// As [`build`], choosing the kernel's profile: `release` or cargo's `dev`.
pub fn build_with(kernel: Kernel, release: bool) -> Result<Artifacts> {
    let (archive, test_archive) = build_user()?;
    let keys = crate::secboot::keys()?;
    let image_key = keys.image_keypair()?;
    let elf = build_kernel(kernel, release)?;
    let stub = crate::secboot::signed_stub(&keys, &build_stub(&image_key.pk, true)?)?;
    let (zenos_bin, flat_len) = make_zenos_bin(&elf, &read(&archive)?, "zenos.bin", &image_key)?;
    let (zenos_test_bin, _) =
        make_zenos_bin(&elf, &read(&test_archive)?, "zenos-test.bin", &image_key)?;
    Ok(Artifacts {
        elf,
        zenos_bin,
        zenos_test_bin,
        flat_len,
        stub,
        archive,
        test_archive,
    })
}

/// The programs of the default boot archive (crates under user/), in archive order.
pub const DEFAULT_PROGRAMS: &[&str] = &["init", "shell", "nvmed", "tagfsd"];
/// The programs only the tests and benchmarks run: in the test archive, after the
/// default ones.
pub const TEST_PROGRAMS: &[&str] = &["usertests", "ipcbench", "blkbench", "storebench"];
/// Programs in no boot archive: a new root store holds them as objects tagged
/// `program:NAME` (`rootfs`), which the shell's `run` starts.
pub const STORE_PROGRAMS: &[&str] = &["hello"];

/// The built ELF of user program `name`.
pub fn program(name: &str) -> PathBuf {
    target().join("user/x86_64-unknown-none/user").join(name)
}

/// Whether a kernel command line names a program of the test archive as `init=`
/// (then `cargo xtask run` boots `zenos-test.bin`).
pub fn names_test_program(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("init="))
        .any(|p| TEST_PROGRAMS.contains(&p))
}

/// Builds the user programs (static-PIE, the target's default) and packs them into
/// the two boot archives (`zen_abi::archive`): (default, test). Their own target
/// directory: the kernel's code-model flags must not reach them.
fn build_user() -> Result<(PathBuf, PathBuf)> {
    // The declared system image names only programs of the default archive.
    let decl = crate::util::read(&crate::util::root().join("system.toml"))?;
    zen_sysdecl::parse(&String::from_utf8_lossy(&decl), DEFAULT_PROGRAMS)
        .map_err(|e| e.to_string())?;
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
    let all = || DEFAULT_PROGRAMS.iter().chain(TEST_PROGRAMS);
    for p in all().chain(STORE_PROGRAMS) {
        c.args(["-p", p]);
    }
    run(&mut c)?;
    let bin = dir.join("x86_64-unknown-none").join("user");
    let mut programs = Vec::new();
    for p in all() {
        programs.push((*p, read(&bin.join(p))?));
    }
    // The test archive also holds usertests under a second name, for the policy's
    // rules about a program other than the suite itself (policy-tests.zen).
    let usertests = programs
        .iter()
        .find(|(n, _)| *n == "usertests")
        .map(|p| p.1.clone());
    let (system, tests) = policies()?;
    let mut default = programs[..DEFAULT_PROGRAMS.len()].to_vec();
    default.push((zen_abi::archive::POLICY, system));
    let out = dir.join("archive.bin");
    write(&out, &archive(&default)?)?;
    programs.extend(usertests.map(|u| (PROBE, u)));
    programs.push((zen_abi::archive::POLICY, tests));
    let test_out = dir.join("archive-test.bin");
    write(&test_out, &archive(&programs)?)?;
    Ok((out, test_out))
}

/// The system's policy (`policy.zen`) and the test image's (`policy.zen` followed by
/// `policy-tests.zen`), compiled to zen-policy tables. A mistake stops the build with
/// the file, line and column.
pub fn policies() -> Result<(Vec<u8>, Vec<u8>)> {
    let root = crate::util::root();
    let text = |f: &str| -> Result<String> {
        String::from_utf8(read(&root.join(f))?).map_err(|_| format!("{f}: not UTF-8"))
    };
    let test_programs: Vec<&str> = DEFAULT_PROGRAMS
        .iter()
        .chain(TEST_PROGRAMS)
        .chain(&[PROBE])
        .copied()
        .collect();
    compile_policies(
        &text("policy.zen")?,
        &text("policy-tests.zen")?,
        DEFAULT_PROGRAMS,
        &test_programs,
    )
}

/// The test archive's second name for usertests (the policy test's other program).
const PROBE: &str = "probe";

/// [`policies`] on the two texts, for archives of the given programs.
fn compile_policies(
    system: &str,
    tests: &str,
    system_programs: &[&str],
    test_programs: &[&str],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let sep = if system.ends_with('\n') || system.is_empty() {
        ""
    } else {
        "\n"
    };
    let system_lines = system.lines().count();
    // Lines past the first file's are the second's.
    let place = |line: usize| {
        if line > system_lines {
            ("policy-tests.zen", line - system_lines)
        } else {
            ("policy.zen", line)
        }
    };
    let one = |text: &str, programs: &[&str]| -> Result<Vec<u8>> {
        let table = zen_policy::compile(text).map_err(|e| {
            let (file, line) = place(e.line);
            format!("{file}:{}", zen_policy::CompileError { line, ..e })
        })?;
        // Only a signed program may be named: a process from anywhere else (spawn_image)
        // is known to the policy as no name, so a rule naming one would cover nothing
        // (or, if it did, be anyone's to take).
        let decoded = zen_policy::Policy::decode(&table).map_err(|e| e.to_string())?;
        if let Some((line, name)) = decoded.names().find(|(_, n)| !programs.contains(n)) {
            let (file, line) = place(line as usize);
            return Err(format!(
                "{file}:{line}: `{name}` is not a program of the boot archive (only the \
                 image's own programs can be named; others are `any`)"
            ));
        }
        Ok(table)
    };
    let table = one(system, system_programs)?;
    let test_table = one(&format!("{system}{sep}{tests}"), test_programs)?;
    Ok((table, test_table))
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

fn build_kernel(kernel: Kernel, release: bool) -> Result<PathBuf> {
    let target_dir = match kernel {
        Kernel::Normal => target(),
        Kernel::Test => target().join("ktest"),
        Kernel::Profile => target().join("profile"),
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
    );
    match kernel {
        Kernel::Test => {
            c.args(["--features", "ktest"]);
        }
        Kernel::Profile => {
            c.args(["--features", "profile"]);
        }
        Kernel::Normal => {}
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

/// Flattens the kernel ELF, appends the boot archive `archive` at the end of its
/// memory image (after .bss, which becomes zeros in the payload: LZ4 makes them a few
/// bytes) and wraps it as `name` next to the ELF (so the normal and the test-mode
/// kernel's images do not overwrite each other). Returns its path and the flat
/// kernel's size (without the archive).
fn make_zenos_bin(
    elf_path: &Path,
    archive: &[u8],
    name: &str,
    key: &ed25519_compact::KeyPair,
) -> Result<(PathBuf, u64)> {
    let base = zen_abi::layout::KERNEL_BASE;
    let flat =
        elf::flatten(&read(elf_path)?, base).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let image = with_archive(&flat, archive);
    let mem_size = (image.len() as u64).next_multiple_of(zen_abi::layout::PAGE_SIZE);
    let mut bin = zen_image::build(&image, mem_size, base, flat.entry);
    crate::secboot::sign_image(&mut bin, key)?;
    zen_image::check_signature(&bin, &key.pk)
        .map_err(|e| format!("signed zenos.bin does not verify: {}", e.as_str()))?;
    // Catch a bad header here rather than as a refusal at boot.
    zen_image::verify(&bin)
        .map_err(|e| format!("built zenos.bin does not verify: {}", e.as_str()))?;
    let out = elf_path.with_file_name(name);
    write(&out, &bin)?;
    Ok((out, flat.image.len() as u64))
}

/// A `zenos.bin` named `name` of the kernel `a` was built with and another boot
/// archive, signed with the image key as the real one is (for tests of what the kernel
/// itself refuses, past the stub's signature check).
pub fn signed_with_archive(a: &Artifacts, archive: &[u8], name: &str) -> Result<PathBuf> {
    let key = crate::secboot::keys()?.image_keypair()?;
    Ok(make_zenos_bin(&a.elf, archive, name, &key)?.0)
}

/// The flat kernel, zeros up to its page-rounded memory size (its .bss, where
/// `__kernel_end` is), then the archive: what the stub loads at KERNEL_BASE.
fn with_archive(flat: &elf::Flat, archive: &[u8]) -> Vec<u8> {
    let mut image = flat.image.clone();
    image.resize(flat.mem_size as usize, 0);
    image.extend_from_slice(archive);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_mistake_names_its_file_line_and_column() {
        let c = |s: &str, t: &str| compile_policies(s, t, &["init"], &["init", "probe", "x"]);
        let system = "default deny\nprogram init may spawn any\n";
        assert!(c(system, "program probe memory 1M\n").is_ok());
        assert_eq!(
            c("default deny\nprogram init may spwan any\n", "").unwrap_err(),
            "policy.zen:2:18: expected \"spawn\", \"send\", \"claim\" or \"grant\", found \"spwan\""
        );
        let e = c(system, "\nprogram probe memory lots\n").unwrap_err();
        assert!(e.starts_with("policy-tests.zen:2:22: "), "{e}");
        // A second default in the test file is its mistake, at its own line.
        let e = c(system, "default allow\n").unwrap_err();
        assert!(e.starts_with("policy-tests.zen:1:1: "), "{e}");
        // Without a final newline the files are still joined line by line.
        let e = c("default deny", "program x may spawn\n").unwrap_err();
        assert!(e.starts_with("policy-tests.zen:1:"), "{e}");
        // A name no program of the image has: refused, as subject or as target.
        let e = c(system, "program init may grant pages to hello\n").unwrap_err();
        assert!(
            e.starts_with("policy-tests.zen:1: `hello` is not a program"),
            "{e}"
        );
        let e = c("program probe may spawn any\n", "").unwrap_err();
        assert!(
            e.starts_with("policy.zen:1: `probe` is not a program"),
            "{e}"
        );
    }

    #[test]
    fn the_policies_in_the_tree_compile_and_decode() {
        let (system, tests) = policies().unwrap();
        let s = zen_policy::Policy::decode(&system).unwrap();
        let t = zen_policy::Policy::decode(&tests).unwrap();
        // The system's programs get what they need and nothing a test program has.
        assert!(s.may_spawn("init", "shell").allowed());
        assert!(!s.may_spawn("shell", "init").allowed());
        assert!(s.may_claim("nvmed", 1, 8).allowed());
        assert!(!s.may_claim("shell", 1, 8).allowed());
        assert!(!s.may_spawn("usertests", "shell").allowed());
        assert!(t.may_spawn("usertests", "shell").allowed());
        assert!(!t.may_grant("usertests", "probe").allowed());
    }

    #[test]
    fn the_archive_starts_at_the_end_of_the_kernel() {
        let flat = elf::Flat {
            image: vec![0xcc; 5000],
            mem_size: 3 * 4096,
            base: zen_abi::layout::KERNEL_BASE,
            entry: zen_abi::layout::KERNEL_BASE,
        };
        let a = archive(&[("init", b"\x7fELF".to_vec())]).unwrap();
        let image = with_archive(&flat, &a);
        assert_eq!(&image[..5000], &flat.image[..]);
        assert!(
            image[5000..3 * 4096].iter().all(|&b| b == 0),
            ".bss is zeros"
        );
        let parsed = zen_abi::archive::Archive::parse(&image[3 * 4096..]).unwrap();
        assert_eq!(parsed.find("init"), Some(&b"\x7fELF"[..]));
    }

    #[test]
    fn only_test_programs_as_init_pick_the_test_image() {
        assert!(names_test_program("init=usertests"));
        assert!(names_test_program("log=x init=ipcbench arg=1"));
        assert!(!names_test_program("init=shell"));
        assert!(!names_test_program("usertests"));
        assert!(!names_test_program(""));
    }
}
