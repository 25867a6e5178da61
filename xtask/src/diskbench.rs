//! `cargo xtask bench --only disk`: the boot chain's figures. Sizes of the BIOS stub,
//! the UEFI stub with and without the signature check (and as signed), and
//! instructions from the stub's first instruction to `zen: ready` when `zenos.img`
//! boots under SeaBIOS, OVMF and OVMF with Secure Boot, under `-icount shift=0`.
//!
//! The kernel prints `stub_to_ready` (TSC at ready minus the TSC the stub read first);
//! under icount the TSC counts instructions. Each boot runs twice: disk reads are
//! emulated device I/O, and a figure that differs between runs is flagged.

use crate::build::Artifacts;
use crate::disk::{self, Contents, Firmware};
use crate::protocol::figures;
use crate::row::Row;
use crate::util::{read, target, Result};
use std::time::Duration;

fn size(name: &str, bytes: u64, note: &str) -> Row {
    Row {
        suite: "disk",
        name: name.into(),
        value: bytes as f64,
        unit: "bytes",
        note: note.into(),
    }
}

fn len(p: &std::path::Path) -> Result<u64> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// The rows, and messages about figures that did not repeat.
pub fn rows(a: &Artifacts) -> Result<(Vec<Row>, Vec<String>)> {
    let keys = crate::secboot::keys()?;
    let bios = disk::bios_stub()?;
    let unsigned = crate::secboot::unsigned_stub(&a.stub);
    let pk = keys.image_keypair()?.pk;
    let nosig = crate::build::build_stub(&pk, false)?;
    let with = len(&unsigned)?;
    let without = len(&nosig)?;
    let mut rows = vec![
        size(
            "BIOS stub (MBR code + second stage)",
            bios.size() as u64,
            "budget 8192",
        ),
        size(
            "UEFI stub, with ed25519 check",
            with,
            &format!("+{} bytes for the check", with.saturating_sub(without)),
        ),
        size(
            "UEFI stub, without the check",
            without,
            "feature `signature` off",
        ),
        size(
            "UEFI stub as signed (sbsign)",
            len(&a.stub)?,
            "Authenticode signature appended",
        ),
        size("zenos.bin", len(&a.zenos_bin)?, "signed, LZ4"),
    ];
    let img = target().join("bench-img/zenos.img");
    disk::write_image(
        &img,
        &Contents {
            bios_stub: &bios,
            uefi_stub: &read(&a.stub)?,
            zenos_bin: &read(&a.zenos_bin)?,
            cmdline: None,
        },
    )?;
    let mut unrepeatable = Vec::new();
    let paths = [
        ("SeaBIOS", Firmware::Bios),
        ("OVMF", Firmware::Uefi),
        (
            "OVMF Secure Boot",
            Firmware::SecureBoot {
                vars: keys.enrolled_vars()?,
            },
        ),
    ];
    for (label, fw) in paths {
        let mut vals = Vec::new();
        for i in 1..=2 {
            let vm = crate::qemu::Vm {
                icount: true,
                ..crate::imgtest::vm(
                    &format!("bench-disk-{}-{i}", fw_tag(&fw)),
                    img.clone(),
                    fw.clone(),
                )
            };
            let mut found = None;
            let cap = vm.run_captured(Duration::from_secs(300), |l| {
                found = figures(l, "zen: bench ")
                    .and_then(|f| f.into_iter().find(|(k, _)| k == "stub_to_ready"))
                    .map(|(_, v)| v);
                found.is_some()
            })?;
            vals.push(found.ok_or_else(|| {
                format!(
                    "{label}: no `zen: bench ... stub_to_ready=` line ({}); last lines:\n{}",
                    cap.ending(),
                    cap.tail(10).join("\n")
                )
            })?);
        }
        let note = if vals[0] == vals[1] {
            "identical in 2 runs".to_string()
        } else {
            let m = format!("zenos.img via {label}: runs differ: {vals:?}");
            unrepeatable.push(m.clone());
            m
        };
        rows.push(Row {
            suite: "disk",
            name: format!("zenos.img via {label}: stub start -> ready"),
            value: vals[0] as f64,
            unit: "instructions",
            note,
        });
    }
    Ok((rows, unrepeatable))
}

fn fw_tag(fw: &Firmware) -> &'static str {
    match fw {
        Firmware::Bios => "bios",
        Firmware::Uefi => "uefi",
        Firmware::SecureBoot { .. } => "secboot",
    }
}
