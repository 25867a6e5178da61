//! Makes the machine able to build and boot Zen OS: rustup targets and components,
//! then the host packages (QEMU, OVMF). Runs before every verb that needs them, so it
//! must be fast when all is present (two rustup queries and a few file checks).
//!
//! It must also work unattended: CI runs `cargo xtask test` on a fresh machine with
//! no stdin, so apt-get runs with `-y` and `DEBIAN_FRONTEND=noninteractive`.

use crate::util::{output, run, show, Result};
use std::path::Path;
use std::process::Command;

/// Rust targets the kernel and the stub are built for.
const TARGETS: &[&str] = &["x86_64-unknown-none", "x86_64-unknown-uefi"];
/// rustup components (llvm-tools: objcopy/size for inspecting the binaries).
const COMPONENTS: &[&str] = &["llvm-tools"];

/// A host tool we need, and the Debian package that provides it. The one place to
/// add tools (mtools, dosfstools, gdisk, sbsigntool, ...) as later issues need them.
struct HostNeed {
    /// A file whose presence means the package is installed.
    path: &'static str,
    /// Also accepted: the tool found on PATH under this name.
    on_path: Option<&'static str>,
    package: &'static str,
}

const HOST_NEEDS: &[HostNeed] = &[
    HostNeed {
        path: "/usr/bin/qemu-system-x86_64",
        on_path: Some("qemu-system-x86_64"),
        package: "qemu-system-x86",
    },
    HostNeed {
        path: crate::ovmf::OVMF_CODE,
        on_path: None,
        package: "ovmf",
    },
    HostNeed {
        path: crate::ovmf::OVMF_VARS,
        on_path: None,
        package: "ovmf",
    },
    HostNeed {
        path: crate::ovmf::OVMF_CODE_SECBOOT,
        on_path: None,
        package: "ovmf",
    },
    // Checking zenos.img: `sgdisk -v` (GPT) and `fsck.vfat -n` (the ESP).
    HostNeed {
        path: "/usr/sbin/sgdisk",
        on_path: Some("sgdisk"),
        package: "gdisk",
    },
    HostNeed {
        path: "/usr/sbin/fsck.vfat",
        on_path: Some("fsck.vfat"),
        package: "dosfstools",
    },
    // Secure Boot (see secboot.rs): keys, signing the stub, and a venv for pip's
    // virt-firmware (virt-fw-vars), which Debian 12 does not package.
    HostNeed {
        path: "/usr/bin/openssl",
        on_path: Some("openssl"),
        package: "openssl",
    },
    HostNeed {
        path: "/usr/bin/sbsign",
        on_path: Some("sbsign"),
        package: "sbsigntool",
    },
    HostNeed {
        path: "/usr/share/doc/python3-venv",
        on_path: None,
        package: "python3-venv",
    },
    // tools/prove: the z3 crate links Debian's libz3 and makes its bindings with
    // bindgen, which loads libclang and needs clang's own headers.
    HostNeed {
        path: "/usr/include/z3.h",
        on_path: None,
        package: "libz3-dev",
    },
    HostNeed {
        path: "/usr/lib/x86_64-linux-gnu/libclang-14.so.1",
        on_path: None,
        package: "libclang1-14",
    },
    HostNeed {
        path: "/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h",
        on_path: None,
        package: "libclang-common-14-dev",
    },
];

/// Checks and installs everything; prints only when it has something to do.
pub fn ensure() -> Result {
    rust_parts()?;
    host_packages()
}

fn rustup(args: &[&str]) -> Command {
    let mut c = Command::new("rustup");
    c.args(args).current_dir(crate::util::root());
    c
}

fn rust_parts() -> Result {
    // Inside `cargo xtask`, RUSTUP_TOOLCHAIN names the pinned toolchain, so these
    // queries and installs apply to it, not to the user's default.
    let targets = output(&mut rustup(&["target", "list", "--installed"]))?;
    for t in missing(TARGETS, &targets) {
        println!("xtask setup: installing Rust target {t} (rustup target add {t})");
        run(&mut rustup(&["target", "add", t]))?;
    }
    let comps = output(&mut rustup(&["component", "list", "--installed"]))?;
    for c in missing(COMPONENTS, &comps) {
        println!("xtask setup: installing rustup component {c} (rustup component add {c})");
        run(&mut rustup(&["component", "add", c]))?;
    }
    Ok(())
}

/// Entries of `wanted` that no line of rustup's `listing` names. Components are listed
/// with a host suffix (`llvm-tools-x86_64-unknown-linux-gnu`), hence the prefix match.
fn missing<'a>(wanted: &[&'a str], listing: &str) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| {
            !listing
                .lines()
                .any(|l| l.trim() == **w || l.trim().starts_with(&format!("{w}-")))
        })
        .copied()
        .collect()
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Debian packages still needed, in `HOST_NEEDS` order, without duplicates.
fn missing_packages() -> Vec<&'static str> {
    let mut pkgs: Vec<&str> = Vec::new();
    for n in HOST_NEEDS {
        let present = Path::new(n.path).exists() || n.on_path.is_some_and(on_path);
        if !present && !pkgs.contains(&n.package) {
            pkgs.push(n.package);
        }
    }
    pkgs
}

fn is_root() -> bool {
    // Without libc (and unsafe) there is no geteuid; `id -u` is in coreutils.
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

fn host_packages() -> Result {
    let pkgs = missing_packages();
    if pkgs.is_empty() {
        return Ok(());
    }
    let install = install_packages(&pkgs)?;
    let still = missing_packages();
    if !still.is_empty() {
        return Err(format!(
            "`{install}` ran but {} is still missing",
            still.join(" ")
        ));
    }
    Ok(())
}

/// Installs Debian packages with apt-get when root, saying what it installs; otherwise
/// returns an error holding the exact command to run. Returns the install command run,
/// for messages. Also used by suites with their own needs (the Linux bench guest).
pub fn install_packages(pkgs: &[&str]) -> Result<String> {
    let list = pkgs.join(" ");
    if !is_root() {
        return Err(format!(
            "missing host packages: {list}\nrun this, then try again:\n  \
             sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y {list}"
        ));
    }
    println!("xtask setup: installing Debian packages: {list} (apt-get update; apt-get install -y {list})");
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        c
    };
    run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y"]);
    install.args(pkgs);
    run(&mut install)?;
    Ok(show(&install))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_targets_and_components() {
        let listing = "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n";
        assert_eq!(missing(TARGETS, listing), vec!["x86_64-unknown-uefi"]);
        let comps = "cargo-x86_64-unknown-linux-gnu\nllvm-tools-x86_64-unknown-linux-gnu\n";
        assert!(missing(COMPONENTS, comps).is_empty());
        // The old name still counts as installed; an unrelated prefix does not.
        assert!(missing(
            &["llvm-tools"],
            "llvm-tools-preview-x86_64-unknown-linux-gnu"
        )
        .is_empty());
        assert_eq!(
            missing(&["llvm-tools"], "llvm-toolsx\n"),
            vec!["llvm-tools"]
        );
    }
}
