//! `cargo xtask`: the one entry point for building, booting, testing and measuring
//! Zen OS (ARCHITECTURE.md section 7). A host program; see `usage()` for the verbs.
//!
//! Modules: `setup` installs what is missing, `build` and `elf` make `zenos.bin` and
//! the stub, `image` lays out what the firmware boots, `qemu` starts VMs, `protocol`
//! parses test output, `test` and `bench` are the two verbs with the most to do.
#![deny(unsafe_code)]

mod bench;
mod build;
mod elf;
mod image;
mod linux;
mod protocol;
mod qemu;
mod setup;
mod test;
mod util;

use build::Kernel;
use std::process::ExitCode;
use util::Result;

fn usage() -> &'static str {
    "usage: cargo xtask <verb> [options]

verbs:
  build                 build the kernel (normal and test mode), zenos.bin and the UEFI stub
  image [--test]        build and assemble the EFI system partition (target/esp, or
                        target/esp-test with the test-mode kernel)
  run [options]         build and boot under QEMU + OVMF, serial console here (Ctrl-A X quits)
      --gui             open a display window
      --smp N           CPUs (default 1)
      --mem M           memory, QEMU syntax (default 256M)
      --release         release-profile kernel (the default)
      --debug           dev-profile kernel (debug assertions, slower)
      --test            boot the test-mode kernel
      --cmdline STR     write STR to cmdline.txt on the ESP
      --kvm             use KVM (TCG by default: nested KVM hangs 64-bit guests here)
  test                  host tests, then the QEMU suites; ends with `N passed, N failed`
  bench [--only a,b]    sizes, boot and context switch instruction counts, the same on
                        a Linux guest (suites: sizes, boot, switch, linux, tagfs);
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
    kvm: bool,
    cmdline: Option<String>,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            gui: false,
            smp: 1,
            mem: "256M".into(),
            release: true,
            test: false,
            kvm: false,
            cmdline: None,
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
            "--kvm" => o.kvm = true,
            "--cmdline" => o.cmdline = Some(value("--cmdline")?),
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

/// Builds and lays out the ESP for `o`; returns its directory.
fn image(o: &RunOpts) -> Result<std::path::PathBuf> {
    setup::ensure()?;
    let kernel = if o.test { Kernel::Test } else { Kernel::Normal };
    let a = build::build_with(kernel, o.release)?;
    let dir = util::target().join(if o.test { "esp-test" } else { "esp" });
    let bin = util::read(&a.zenos_bin)?;
    image::esp_dir(
        &dir,
        &image::EspContents {
            stub: &a.stub,
            zenos_bin: &bin,
            cmdline: o.cmdline.as_deref(),
        },
    )
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
                ..RunOpts::default()
            }) {
                return Err("image takes only --test".into());
            }
            println!("ESP: {}", image(&o)?.display());
            Ok(ExitCode::SUCCESS)
        }),
        "run" => parse_run(rest).and_then(|o| {
            let esp = image(&o)?;
            let vm = qemu::Vm {
                gui: o.gui,
                smp: o.smp,
                mem: o.mem,
                kvm: o.kvm,
                ..qemu::Vm::new("run", &esp)
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
            if rest.is_empty() {
                Ok(if test::run() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            } else {
                Err(format!("test takes no options\n\n{}", usage()))
            }
        }
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
        let o = parse_run(&args("--gui --smp 4 --mem 1G --debug --kvm --cmdline x")).unwrap();
        assert_eq!(
            o,
            RunOpts {
                gui: true,
                smp: 4,
                mem: "1G".into(),
                release: false,
                test: false,
                kvm: true,
                cmdline: Some("x".into())
            }
        );
        assert!(parse_run(&args("--smp")).is_err());
        assert!(parse_run(&args("--smp 0")).is_err());
        assert!(parse_run(&args("--bogus")).is_err());
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
