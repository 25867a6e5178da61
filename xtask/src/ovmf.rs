//! Where the host's OVMF builds are (Debian's ovmf package, installed by `setup`).
//!
//! Its own module because both `qemu` (an ESP booted under OVMF) and `disk` (a disk
//! image booted under a chosen firmware) need the paths, and `qemu` holds a
//! `disk::Disk`: with the paths here, `disk` no longer imports `qemu` back.

/// OVMF without Secure Boot: the code, and the variable store each run copies.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// OVMF built with Secure Boot and SMM (Debian's ovmf package).
pub const OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
