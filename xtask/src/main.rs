//! `cargo xtask`: the one entry point for building, booting, testing and measuring
//! Zen OS (ARCHITECTURE.md section 7). A host program; see `usage()` for the verbs.
//!
//! Modules: `setup` installs what is missing, `build` and `elf` make `zenos.bin` and
//! the stub, `image` lays out the ESP directory the kernel tests boot, `disk` writes
//! `zenos.img` and knows the firmware that boots it, `qemu` starts VMs, `protocol`
//! parses test output, `test` and `bench` are the two verbs with the most to do
//! (`imgtest` holds the disk-image tests, `usertest` the user-space ones; `harness`
//! the job and verdict types all three share; `diskbench` is a suite of `bench`, and
//! `row` the figure type both make; `footprint` is the kernel's size by crate and
//! function for `bench`). `ovmf` names the firmware files `disk` and `qemu` both use.
//! Calls go one way: no two modules import each other.
#![deny(unsafe_code)]

mod bench;
mod build;
mod disk;
mod diskbench;
mod elf;
mod footprint;
mod harness;
mod image;
mod imgtest;
mod linux;
mod nvmebench;
mod ovmf;
mod profile;
mod protocol;
mod qemu;
mod report;
mod rootfs;
mod row;
mod secboot;
mod setup;
mod soak;
mod storebench;
mod storetest;
mod test;
mod usertest;
mod util;
mod verify;

use build::Kernel;
use std::process::ExitCode;
use util::Result;

fn usage() -> &'static str {
    "usage: cargo xtask <verb> [options]

verbs:
  build                 build the kernel (normal and test mode), zenos.bin and the UEFI stub
  image [--test] [--test-programs] [--cmdline STR] [--import DIR] [--fresh]
                        write the disk image target/zenos.img (target/zenos-test.img with
                        the test-mode kernel): GPT, BIOS stub, FAT32 ESP, TagFS root; it
                        boots under BIOS and UEFI and can be written to a USB stick (dd).
                        The root store of the last image is kept; a new one holds the
                        project's docs, README and program sources
      --import DIR      a new root store with the tree DIR imported instead (tagged
                        path:, type:, ext:, year:)
      --fresh           a new root store even if the last image has one
  run [options]         build the image and boot it under QEMU, serial console here
                        (Ctrl-A X quits); --import and --fresh as for image
      --uefi            boot it with OVMF (the default)
      --bios            boot it with SeaBIOS
      --secure-boot     boot it with OVMF's Secure Boot build, our keys enrolled
      --gui             open a display window
      --smp N           CPUs (default 1)
      --mem M           memory, QEMU syntax (default 256M)
      --release         release-profile kernel (the default)
      --debug           dev-profile kernel (debug assertions, slower)
      --test            boot the test-mode kernel
      --test-programs   boot zenos-test.bin: usertests and ipcbench in the boot archive
                        too (implied by a --cmdline with init=usertests or init=ipcbench)
      --cmdline STR     write STR to cmdline.txt on the ESP
      --kvm             use KVM (TCG by default: nested KVM hangs 64-bit guests here)
      --icount          -icount shift=0: the TSC counts guest instructions (as the bench)
      --scratch         attach a fresh 32 MiB scratch disk (NVMe at 00:10.0, the disk
                        usertests' disk tests write: target/scratch-nvme.img)
  test [--only NAME]    host tests, then the QEMU suites; ends with `N passed, N failed`
                        (--only: just the QEMU jobs whose name contains NAME)
  soak [--calls N]      the system-call fuzzer at length (10 million calls by default) on
                        2 CPUs: calls per second, kernel failures, what was lost
  verify [--no-mutants] the SMT proofs (tools/prove, Z3), the loom model checks, and
                        mutation testing (cargo-mutants) of lib/ipc, lib/sched, lib/cap
                        and lib/frames with the share of mutants caught
  bench [--only a,b]    sizes; boot, context switch, system call and IPC instruction
                        counts, the same on a Linux guest (suites: sizes, boot, disk,
                        switch, ipc, linux, nvme, tagfs, tagfs-os);
                        also written to target/bench.json"
}

/// Options of `run` (and `image`).
#[derive(Debug, PartialEq)]
struct RunOpts {
    gui: bool,
    smp: u32,
    mem: String,
    release: bool,
    test: bool,
    /// Boot `zenos-test.bin` (the test programs in the boot archive too).
    test_programs: bool,
    kvm: bool,
    icount: bool,
    cmdline: Option<String>,
    firmware: Fw,
    scratch: bool,
    /// Import this tree into a new root store (instead of the project's).
    import: Option<String>,
    /// A new root store even if the last image has one.
    fresh: bool,
}

/// Which firmware `run` boots the image with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fw {
    Uefi,
    Bios,
    SecureBoot,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            gui: false,
            smp: 1,
            mem: "256M".into(),
            release: true,
            test: false,
            test_programs: false,
            kvm: false,
            icount: false,
            cmdline: None,
            firmware: Fw::Uefi,
            scratch: false,
            import: None,
            fresh: false,
        }
    }
}

fn parse_run(args: &[String]) -> Result<RunOpts> {
    let mut o = RunOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--gui" => o.gui = true,
            "--smp" => {
                o.smp = value("--smp")?
                    .parse()
                    .map_err(|_| "--smp takes a number")?
            }
            "--mem" => o.mem = value("--mem")?,
            "--release" => o.release = true,
            "--debug" => o.release = false,
            "--test" => o.test = true,
            "--test-programs" => o.test_programs = true,
            "--kvm" => o.kvm = true,
            "--icount" => o.icount = true,
            "--scratch" => o.scratch = true,
            "--cmdline" => o.cmdline = Some(value("--cmdline")?),
            "--uefi" => o.firmware = Fw::Uefi,
            "--bios" => o.firmware = Fw::Bios,
            "--secure-boot" => o.firmware = Fw::SecureBoot,
            "--import" => o.import = Some(value("--import")?),
            "--fresh" => o.fresh = true,
            _ => return Err(format!("unknown option {a}\n\n{}", usage())),
        }
    }
    if o.smp == 0 {
        return Err("--smp must be at least 1".into());
    }
    Ok(o)
}

fn parse_only(args: &[String]) -> Result<Vec<String>> {
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let v = it.next().ok_or("--only needs a suite name")?;
                only.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from));
            }
            _ => return Err(format!("unknown option {a}\n\n{}", usage())),
        }
    }
    Ok(only)
}

/// Builds everything and writes the disk image for `o`; returns its path.
fn image(o: &RunOpts) -> Result<std::path::PathBuf> {
    setup::ensure()?;
    let kernel = if o.test { Kernel::Test } else { Kernel::Normal };
    let a = build::build_with(kernel, o.release)?;
    // The test programs only when asked for, or when the command line boots one.
    let with_tests = o.test_programs || o.cmdline.as_deref().is_some_and(build::names_test_program);
    let bios = disk::bios_stub()?;
    let path = util::target().join(if o.test {
        "zenos-test.img"
    } else {
        "zenos.img"
    });
    let root = match (&o.import, o.fresh) {
        (Some(d), _) => rootfs::Root::Import(d.into()),
        (None, true) => rootfs::Root::Project,
        (None, false) => rootfs::Root::Keep,
    };
    let mut said = String::new();
    let layout = disk::write_image_with(
        &path,
        &disk::Contents {
            bios_stub: &bios,
            uefi_stub: &util::read(&a.stub)?,
            zenos_bin: &util::read(if with_tests {
                &a.zenos_test_bin
            } else {
                &a.zenos_bin
            })?,
            cmdline: o.cmdline.as_deref(),
        },
        |img, layout| {
            said = rootfs::fill(img, layout, &path, &root)?;
            Ok(())
        },
    )?;
    println!("{}: {said}", path.display());
    println!(
        "{}: {} MiB, BIOS stub {} bytes, zenos.bin {} bytes at LBA {}",
        path.display(),
        std::fs::metadata(&path).map_or(0, |m| m.len() >> 20),
        bios.size(),
        layout.zenos_len,
        layout.zenos_lba
    );
    Ok(path)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((verb, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::FAILURE;
    };
    let result: Result<ExitCode> = match verb.as_str() {
        "build" => (|| {
            if !rest.is_empty() {
                return Err(format!("build takes no options\n\n{}", usage()));
            }
            setup::ensure()?;
            for k in [Kernel::Normal, Kernel::Test] {
                let a = build::build(k)?;
                println!(
                    "{k:?} kernel: {} -> {} ({} bytes flat)",
                    a.elf.display(),
                    a.zenos_bin.display(),
                    a.flat_len
                );
            }
            Ok(ExitCode::SUCCESS)
        })(),
        "image" => parse_run(rest).and_then(|o| {
            if o != (RunOpts {
                test: o.test,
                test_programs: o.test_programs,
                cmdline: o.cmdline.clone(),
                import: o.import.clone(),
                fresh: o.fresh,
                ..RunOpts::default()
            }) {
                return Err(
                    "image takes only --test, --test-programs, --cmdline, --import and --fresh"
                        .into(),
                );
            }
            image(&o)?;
            Ok(ExitCode::SUCCESS)
        }),
        "run" => parse_run(rest).and_then(|o| {
            let img = image(&o)?;
            let firmware = match o.firmware {
                Fw::Uefi => disk::Firmware::Uefi,
                Fw::Bios => disk::Firmware::Bios,
                Fw::SecureBoot => disk::Firmware::SecureBoot {
                    vars: secboot::keys()?.enrolled_vars()?,
                },
            };
            if o.scratch {
                // A fresh zeroed scratch disk (what usertests' disk tests write).
                let f = util::target().join("scratch-nvme.img");
                std::fs::write(&f, disk::scratch_image()?)
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
            let vm = qemu::Vm {
                gui: o.gui,
                smp: o.smp,
                mem: o.mem,
                kvm: o.kvm,
                icount: o.icount,
                disk: Some(disk::Disk {
                    image: img.clone(),
                    firmware,
                    snapshot: false,
                }),
                nvme: o.scratch.then(|| util::target().join("scratch-nvme.img")),
                ..qemu::Vm::new("run", &img)
            };
            let status = vm.run_interactive()?;
            // isa-debug-exit's success code (the test kernel's pass) counts as success.
            Ok(match status.code() {
                Some(0) | Some(qemu::EXIT_SUCCESS) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
                None => ExitCode::FAILURE,
            })
        }),
        "test" => {
            let only = match rest {
                [] => Ok(None),
                [flag, name] if flag == "--only" => Ok(Some(name.clone())),
                _ => Err(format!("test takes only --only NAME\n\n{}", usage())),
            };
            only.map(|o| {
                if test::run(o.as_deref()) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        "soak" => {
            let calls = match rest {
                [] => Ok(10_000_000),
                [flag, n] if flag == "--calls" => n
                    .parse::<u64>()
                    .map_err(|_| format!("--calls takes a number, not {n}")),
                _ => Err(format!("soak takes --calls N\n\n{}", usage())),
            };
            calls.and_then(soak::run).map(|_| ExitCode::SUCCESS)
        }
        "verify" => match rest {
            [] => verify::run_all(true),
            [f] if f == "--no-mutants" => verify::run_all(false),
            _ => Err(format!("verify takes only --no-mutants\n\n{}", usage())),
        }
        .map(|_| ExitCode::SUCCESS),
        "bench" => parse_only(rest)
            .and_then(|only| bench::run(&only))
            .map(|_| ExitCode::SUCCESS),
        "help" | "--help" | "-h" => {
            println!("{}", usage());
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("unknown verb {verb}\n\n{}", usage())),
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_run_options() {
        assert_eq!(parse_run(&[]).unwrap(), RunOpts::default());
        let o = parse_run(&args(
            "--gui --smp 4 --mem 1G --debug --kvm --icount --scratch --cmdline x",
        ))
        .unwrap();
        assert_eq!(
            o,
            RunOpts {
                gui: true,
                smp: 4,
                mem: "1G".into(),
                release: false,
                test: false,
                test_programs: false,
                kvm: true,
                icount: true,
                cmdline: Some("x".into()),
                firmware: Fw::Uefi,
                scratch: true,
                import: None,
                fresh: false,
            }
        );
        assert_eq!(parse_run(&args("--bios")).unwrap().firmware, Fw::Bios);
        assert_eq!(
            parse_run(&args("--secure-boot")).unwrap().firmware,
            Fw::SecureBoot
        );
        assert_eq!(
            parse_run(&args("--bios --uefi")).unwrap().firmware,
            Fw::Uefi
        );
        assert!(parse_run(&args("--smp")).is_err());
        assert!(parse_run(&args("--smp 0")).is_err());
        assert!(parse_run(&args("--bogus")).is_err());
        let o = parse_run(&args("--import /tmp/t --fresh")).unwrap();
        assert_eq!((o.import.as_deref(), o.fresh), (Some("/tmp/t"), true));
        assert!(parse_run(&args("--import")).is_err());
    }

    #[test]
    fn parses_only() {
        assert_eq!(
            parse_only(&args("--only boot,sizes --only tagfs")).unwrap(),
            ["boot", "sizes", "tagfs"]
        );
        assert!(parse_only(&args("--only")).is_err());
    }
}
