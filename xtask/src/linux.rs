//! The Linux guest of `cargo xtask bench`: the same operations Zen OS is measured on,
//! measured on Linux on the same QEMU in the same run, so the figures can be compared
//! as ratios.
//!
//! The guest is Debian's kernel (`linux-image-amd64`, booted directly with `-kernel`)
//! and an initramfs written here: `bench/linux/peer.c` built with `gcc -static -O2` as
//! `/init`, busybox (`busybox-static`) as `/bin/sh` for poking around by hand (boot the
//! same files with `rdinit=/bin/sh`), and `/dev/console`. Under `-icount shift=0` the
//! TSC counts guest instructions, so the peer's `rdtsc` deltas are instruction counts.
//!
//! Over 500 lines with its tests: three guests (the IPC, NVMe and store peers) share
//! the initramfs writer, the module loader list, the kernel finder and the QEMU
//! command.

use crate::protocol::figures;
use crate::qemu::{capture, Capture};
use crate::util::{mkdir, root, run, show, target, write, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What the peer prints before each figure, and its last line.
const PREFIX: &str = "linux: bench ";
const DONE: &str = "linux: bench done";
/// Quiet console on the first serial port; a panic powers off at once.
const APPEND: &str = "console=ttyS0 quiet panic=-1";
/// Boot plus the peer's loops take well under a minute of host time under TCG.
const TIMEOUT: Duration = Duration::from_secs(300);
const BUSYBOX: &str = "/bin/busybox";
/// Static glibc, which `gcc -static` links against (libc6-dev).
const LIBC_A: &str = "/usr/lib/x86_64-linux-gnu/libc.a";

/// The figures of one run, in the order the peer printed them
/// (`sched_yield_switch`, `getppid`, `pipe_roundtrip`, `unix_roundtrip`).
pub type Figures = Vec<(String, u64)>;

/// Makes sure the guest's parts are on the machine; installs them with apt-get when
/// root (saying what), otherwise fails with the exact command.
pub fn ensure_host() -> Result {
    let mut pkgs = Vec::new();
    if vmlinuz().is_none() {
        pkgs.push("linux-image-amd64");
    }
    if !std::fs::read(BUSYBOX).is_ok_and(|b| is_static_elf(&b)) {
        pkgs.push("busybox-static");
    }
    if !Path::new(LIBC_A).exists() {
        pkgs.push("libc6-dev");
    }
    if which("gcc").is_none() {
        pkgs.push("gcc");
    }
    if pkgs.is_empty() {
        return Ok(());
    }
    println!("xtask bench: the Linux guest needs {}", pkgs.join(" "));
    crate::setup::install_packages(&pkgs)?;
    if vmlinuz().is_none() {
        return Err("linux-image-amd64 installed, but still no /boot/vmlinuz-*".into());
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The newest `/boot/vmlinuz-<version>` (by version order, so 6.10 beats 6.9).
pub fn vmlinuz() -> Option<PathBuf> {
    let names = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok());
    newest_kernel(names).map(|n| Path::new("/boot").join(n))
}

fn newest_kernel(names: impl Iterator<Item = String>) -> Option<String> {
    names
        .filter(|n| n.starts_with("vmlinuz-"))
        .max_by_key(|n| version_key(&n["vmlinuz-".len()..]))
}

/// `6.1.0-56-amd64` -> [6, 1, 0, 56]: numeric runs compared as numbers.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// An ELF file without a PT_INTERP program header: it runs with no dynamic loader,
/// which the initramfs does not have.
fn is_static_elf(b: &[u8]) -> bool {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    };
    if !b.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).all(|i| {
        let at = phoff as usize + i * phentsize as usize;
        b.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) != 3)
    })
}

/// Builds the peer program; returns its path.
fn build_peer() -> Result<PathBuf> {
    build_c("peer")
}

/// Builds bench/linux/`name`.c statically; returns its path.
fn build_c(name: &str) -> Result<PathBuf> {
    let dir = target().join("linux");
    mkdir(&dir)?;
    let out = dir.join(name);
    let mut c = Command::new("gcc");
    c.args(["-static", "-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(root().join(format!("bench/linux/{name}.c")));
    run(&mut c)?;
    Ok(out)
}

/// The modules Linux's NVMe driver needs (blk.c loads them in this order), from the
/// module tree of the kernel `vmlinuz` is: (file name, bytes).
fn nvme_modules(kernel: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    modules(kernel, &[])
}

/// `nvme_modules` and then `more` (paths under the module tree, in load order).
fn modules(kernel: &Path, more: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let version = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("cannot tell the kernel's version from its file name")?;
    let tree = Path::new("/lib/modules").join(version).join("kernel");
    let wanted = [
        "crypto/crct10dif_common.ko",
        "lib/crc-t10dif.ko",
        "lib/crc64.ko",
        "lib/crc64-rocksoft.ko",
        "crypto/crc64_rocksoft_generic.ko",
        "block/t10-pi.ko",
        "drivers/nvme/host/nvme-core.ko",
        "drivers/nvme/host/nvme.ko",
    ];
    let mut out = Vec::new();
    for w in wanted.iter().chain(more) {
        let path = tree.join(w);
        // A module built into this kernel has no file: nothing to load.
        if let Ok(b) = std::fs::read(&path) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(w)
                .to_string();
            out.push((name, b));
        }
    }
    if !out.iter().any(|(n, _)| n == "nvme.ko") && !tree.join("drivers/nvme").exists() {
        return Err(format!("no NVMe driver modules under {}", tree.display()));
    }
    Ok(out)
}

/// The NVMe bench's initramfs: blk as /init, the driver's modules in /modules.
fn nvme_initramfs(blk: &Path, modules: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    initramfs_with(blk, modules, "initramfs-nvme.cpio")
}

/// An initramfs with `init` as /init and `modules` in /modules, as `name`.
fn initramfs_with(init: &Path, modules: &[(String, Vec<u8>)], name: &str) -> Result<PathBuf> {
    let blk = init;
    let blk = std::fs::read(blk).map_err(|e| format!("{}: {e}", blk.display()))?;
    let names: Vec<String> = modules
        .iter()
        .map(|(n, _)| format!("modules/{n}"))
        .collect();
    let mut entries = vec![
        file("init", &blk),
        dir("dev"),
        CONSOLE,
        dir("proc"),
        dir("modules"),
    ];
    for (n, (_, b)) in names.iter().zip(modules) {
        entries.push(Entry {
            name: n,
            mode: 0o100644,
            rdev: (0, 0),
            data: b,
        });
    }
    let path = target().join("linux").join(name);
    write(&path, &cpio_newc(&entries))?;
    Ok(path)
}

/// The store figures of the Linux guest (one CPU, one boot): bench/linux/store.c on
/// an ext4 file system mkfs.ext4 made on the host (512 MiB, 140,000 inodes, inode
/// tables and journal written out, so no lazy init runs during the bench), on the
/// same QEMU NVMe device model as Zen OS's storebench.
pub fn measure_store() -> Result<Figures> {
    ensure_host()?;
    let kernel = vmlinuz().ok_or("no /boot/vmlinuz-*")?;
    let ext4 = [
        "lib/crc16.ko",
        "fs/mbcache.ko",
        "fs/jbd2/jbd2.ko",
        "crypto/crc32c_generic.ko",
        "fs/ext4/ext4.ko",
    ];
    let initrd = initramfs_with(
        &build_c("store")?,
        &modules(&kernel, &ext4)?,
        "initramfs-store.cpio",
    )?;
    let disk = target().join("bench-linux-store.img");
    let f = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    f.set_len(512 << 20)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    drop(f);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args([
        "-F",
        "-q",
        "-N",
        "140000",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
    ])
    .arg(&disk);
    crate::util::run(&mut mkfs).map_err(|e| format!("mkfs.ext4 (e2fsprogs): {e}"))?;
    let mut c = qemu_with(&kernel, &initrd, 1, &format!("{APPEND} intel_iommu=on"));
    c.args(["-device", "intel-iommu,intremap=off"])
        .arg("-drive")
        .arg(format!(
            "if=none,id=data,format=raw,file={}",
            disk.display()
        ))
        .args(["-device", "nvme,serial=zen-data,drive=data,addr=0x10"]);
    println!("running: {}", show(&c));
    let cap: Capture = capture(c, "bench-linux-store", Duration::from_secs(1800), |l| {
        l.contains(DONE)
    })?;
    parse(&cap.lines).ok_or_else(|| {
        format!(
            "the Linux store guest did not finish ({}); last lines:\n{}",
            cap.ending(),
            cap.tail(15).join("\n")
        )
    })
}

/// The NVMe figures of the Linux guest on `smp` CPUs (one boot): blk.c on a fresh
/// scratch disk on QEMU's NVMe device, behind the same VT-d as Zen OS's.
pub fn measure_nvme(smp: u32) -> Result<Figures> {
    ensure_host()?;
    let kernel = vmlinuz().ok_or("no /boot/vmlinuz-*")?;
    let initrd = nvme_initramfs(&build_c("blk")?, &nvme_modules(&kernel)?)?;
    let scratch = target().join(format!("bench-linux-nvme-smp{smp}.img"));
    write(&scratch, &crate::disk::scratch_image()?)?;
    let mut c = qemu_with(&kernel, &initrd, smp, &format!("{APPEND} intel_iommu=on"));
    c.args(["-device", "intel-iommu,intremap=off"])
        .arg("-drive")
        .arg(format!(
            "if=none,id=data,format=raw,file={}",
            scratch.display()
        ))
        .args(["-device", "nvme,serial=zen-data,drive=data,addr=0x10"]);
    println!("running: {}", show(&c));
    let cap: Capture = capture(c, &format!("bench-linux-nvme-smp{smp}"), TIMEOUT, |l| {
        l.contains(DONE)
    })?;
    parse(&cap.lines).ok_or_else(|| {
        format!(
            "the Linux NVMe guest did not finish ({}); last lines:\n{}",
            cap.ending(),
            cap.tail(15).join("\n")
        )
    })
}

/// One file of a newc cpio archive.
pub struct Entry<'a> {
    pub name: &'a str,
    /// Type and permission bits, as in `st_mode` (0o100755 a file, 0o040755 a directory,
    /// 0o120777 a symlink whose data is its target, 0o020600 a character device).
    pub mode: u32,
    /// Device numbers (major, minor) for device nodes.
    pub rdev: (u32, u32),
    pub data: &'a [u8],
}

/// A newc ("070701") cpio archive, the format the kernel unpacks an initramfs from:
/// each entry is a 110-byte ASCII-hex header, the name with its NUL, padded to 4
/// bytes, then the data, padded to 4 bytes; `TRAILER!!!` ends it.
pub fn cpio_newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer = Entry {
        name: "TRAILER!!!",
        mode: 0,
        rdev: (0, 0),
        data: &[],
    };
    for (ino, e) in entries.iter().chain([&trailer]).enumerate() {
        let nlink = if e.mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            ino as u32 + 1, // inode
            e.mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the archive is the same every run
            e.data.len() as u32,
            0, // dev major
            0, // dev minor
            e.rdev.0,
            e.rdev.1,
            e.name.len() as u32 + 1,
            0, // check (unused by newc)
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(e.name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(e.data);
        pad4(&mut out);
    }
    out
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// An executable file of an initramfs.
fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        mode: 0o100755,
        rdev: (0, 0),
        data,
    }
}

/// A directory of an initramfs.
fn dir(name: &str) -> Entry<'_> {
    Entry {
        name,
        mode: 0o040755,
        rdev: (0, 0),
        data: &[],
    }
}

/// `/dev/console`: without it the kernel cannot open an initial console, and /init
/// would have no stdout for its figures.
const CONSOLE: Entry<'static> = Entry {
    name: "dev/console",
    mode: 0o020600,
    rdev: (5, 1),
    data: &[],
};

/// Writes the initramfs; returns its path.
fn initramfs(peer: &Path) -> Result<PathBuf> {
    let peer = std::fs::read(peer).map_err(|e| format!("{}: {e}", peer.display()))?;
    let busybox = std::fs::read(BUSYBOX).map_err(|e| format!("{BUSYBOX}: {e}"))?;
    let cpio = cpio_newc(&[
        file("init", &peer),
        dir("bin"),
        file("bin/busybox", &busybox),
        Entry {
            name: "bin/sh",
            mode: 0o120777,
            rdev: (0, 0),
            data: b"busybox",
        },
        dir("dev"),
        CONSOLE,
        dir("proc"),
        dir("sys"),
    ]);
    let path = target().join("linux/initramfs.cpio");
    write(&path, &cpio)?;
    Ok(path)
}

/// QEMU booting `kernel` + `initrd`: the machine Zen OS is measured on (q35, TCG,
/// `-cpu max`, 256 MiB, one CPU, `-icount shift=0,sleep=off`, see `Vm::args`) with
/// SeaBIOS and `-kernel` instead of OVMF and an ESP. Two changes make Linux exactly
/// repeatable (measured: without them its figures differ by a few instructions from
/// boot to boot): no RDRAND/RDSEED, which seed its randomisations (KASLR, slab
/// freelists, ...) differently every boot, and a real-time clock that starts at a
/// fixed date and follows virtual time.
fn qemu(kernel: &Path, initrd: &Path) -> Command {
    qemu_with(kernel, initrd, 1, APPEND)
}

/// `qemu` on `smp` CPUs with kernel command line `append`; devices may follow.
fn qemu_with(kernel: &Path, initrd: &Path, smp: u32, append: &str) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-machine", "q35", "-m", "256M", "-smp", &smp.to_string()])
        .args(["-accel", "tcg", "-cpu", "max,-rdrand,-rdseed"])
        .args([
            "-icount",
            "shift=0,sleep=off",
            "-rtc",
            "base=2020-01-01,clock=vm",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .args(["-serial", "stdio", "-monitor", "none", "-display", "none"])
        .args(["-nic", "none", "-no-reboot"]);
    c
}

/// Reads the peer's figures from the console: every `linux: bench k=v` line up to
/// `linux: bench done`. Returns None unless `done` was seen.
pub fn parse(lines: &[String]) -> Option<Figures> {
    let mut out = Vec::new();
    for l in lines {
        if l.contains(DONE) {
            return Some(out);
        }
        if let Some(f) = figures(l, PREFIX) {
            out.extend(f);
        }
    }
    None
}

/// Builds the guest and boots it `runs` times; returns each run's figures.
pub fn measure(runs: usize) -> Result<Vec<Figures>> {
    ensure_host()?;
    let kernel = vmlinuz().ok_or("no /boot/vmlinuz-*")?;
    let initrd = initramfs(&build_peer()?)?;
    let mut all = Vec::new();
    for i in 1..=runs {
        let c = qemu(&kernel, &initrd);
        println!("running: {}", show(&c));
        let cap: Capture = capture(c, &format!("bench-linux-{i}"), TIMEOUT, |l| {
            l.contains(DONE)
        })?;
        let f = parse(&cap.lines).ok_or_else(|| {
            format!(
                "the Linux guest did not finish ({}); last lines (all in target/qemu/bench-linux-{i}.log):\n{}",
                cap.ending(),
                cap.tail(15).join("\n")
            )
        })?;
        if f.is_empty() || f.iter().any(|(_, v)| *v == 0) {
            return Err(format!(
                "the Linux peer reported a failed measurement: {f:?}"
            ));
        }
        all.push(f);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One archive entry as read back: (name, mode, rdev, data).
    type Unpacked = (String, u32, (u32, u32), Vec<u8>);

    /// Reads back what `cpio_newc` wrote.
    fn unpack(mut b: &[u8]) -> Vec<Unpacked> {
        let mut out = Vec::new();
        let start = b.as_ptr() as usize;
        loop {
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rdev, namesize) =
                (field(1), field(6), (field(9), field(10)), field(11));
            let name = std::str::from_utf8(&b[110..110 + namesize as usize - 1]).unwrap();
            assert_eq!(b[110 + namesize as usize - 1], 0, "name NUL-terminated");
            let data_at = (110 + namesize as usize + 3) & !3;
            assert_eq!((b.as_ptr() as usize - start + data_at) % 4, 0);
            let data = b[data_at..data_at + size as usize].to_vec();
            if name == "TRAILER!!!" {
                assert_eq!(b.len(), data_at, "nothing after the trailer");
                return out;
            }
            out.push((name.to_string(), mode, rdev, data));
            b = &b[(data_at + size as usize + 3) & !3..];
        }
    }

    #[test]
    fn cpio_round_trips_with_alignment() {
        let entries = [
            Entry {
                name: "init",
                mode: 0o100755,
                rdev: (0, 0),
                data: b"\x7fELF12345",
            },
            Entry {
                name: "dev",
                mode: 0o040755,
                rdev: (0, 0),
                data: &[],
            },
            Entry {
                name: "dev/console",
                mode: 0o020600,
                rdev: (5, 1),
                data: &[],
            },
            Entry {
                name: "bin/sh",
                mode: 0o120777,
                rdev: (0, 0),
                data: b"busybox",
            },
        ];
        let a = cpio_newc(&entries);
        assert_eq!(a.len() % 4, 0);
        let back = unpack(&a);
        assert_eq!(back.len(), 4);
        for (e, (name, mode, rdev, data)) in entries.iter().zip(&back) {
            assert_eq!(
                (e.name, e.mode, e.rdev, e.data),
                (name.as_str(), *mode, *rdev, &data[..])
            );
        }
        // Headers are ASCII hex: the first entry's file size field is 9.
        assert_eq!(&a[54..62], b"00000009");
    }

    #[test]
    fn picks_newest_kernel_by_version() {
        let names = [
            "vmlinuz-6.9.0-1-amd64",
            "config-6.12.0",
            "vmlinuz-6.10.2-amd64",
            "initrd.img-7.0",
        ];
        assert_eq!(
            newest_kernel(names.iter().map(|s| s.to_string())).as_deref(),
            Some("vmlinuz-6.10.2-amd64")
        );
        assert_eq!(newest_kernel(std::iter::empty()), None);
    }

    /// A minimal ELF64 header with `types` as its program headers' p_type.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn tells_static_from_dynamic_elf() {
        assert!(is_static_elf(&elf(&[1, 1, 4])));
        assert!(!is_static_elf(&elf(&[6, 3, 1])));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        let mut cut = elf(&[1, 1]);
        cut.truncate(100);
        assert!(!is_static_elf(&cut), "truncated program headers");
    }

    #[test]
    fn parses_the_peer_output() {
        let lines: Vec<String> = [
            "[    0.5] random kernel line",
            "linux: bench sched_yield_switch=2072",
            "linux: bench getppid=327",
            "linux: bench done",
            "linux: bench late=1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            parse(&lines),
            Some(vec![
                ("sched_yield_switch".into(), 2072),
                ("getppid".into(), 327)
            ])
        );
        assert_eq!(parse(&lines[..3]), None, "no done line: unfinished");
    }
}
