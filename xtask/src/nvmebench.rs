//! `cargo xtask bench --only nvme`: the NVMe figures. Zen OS boots `blkbench` as init
//! with a scratch disk on QEMU's NVMe device (PCI 00:10.0, behind the VT-d IOMMU it
//! confines nvmed's device with); the Linux guest runs bench/linux/blk.c on the same
//! device model, with its own nvme driver and `intel_iommu=on`. Both on one CPU and on
//! two (a queue pair per CPU), under `-icount shift=0,sleep=off`, where the TSC counts
//! guest instructions of every CPU; idle time (waiting for QEMU's I/O thread) is
//! skipped to the next event, so a figure is the instructions of both the OS and the
//! idle skips, the same for both systems.
//!
//! Rows: instructions per I/O for each workload, the Linux figure, the ratio, and
//! IOPS and MB/s at one instruction per ns.

use crate::row::Row;
use crate::util::{target, Result};
use std::path::Path;
use std::time::Duration;

/// The workloads both sides run: (key, what, bytes per I/O).
const WORK: &[(&str, &str, u64)] = &[
    ("rr4k_qd1", "4 KiB random reads, queue depth 1", 4096),
    ("rw4k_qd1", "4 KiB random writes, queue depth 1", 4096),
    ("rr4k_qd32", "4 KiB random reads, queue depth 32", 4096),
    ("rw4k_qd32", "4 KiB random writes, queue depth 32", 4096),
    (
        "sr128k",
        "128 KiB sequential reads, queue depth 1",
        128 << 10,
    ),
];

/// Zen OS's figures on `smp` CPUs (one boot).
pub fn zen(esp: &Path, smp: u32) -> Result<Vec<(String, u64)>> {
    let scratch = target().join(format!("bench-nvme-smp{smp}.img"));
    std::fs::write(&scratch, crate::disk::scratch_image()?)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    let vm = crate::qemu::Vm {
        icount: true,
        smp,
        nvme: Some(scratch),
        ..crate::qemu::Vm::new(&format!("bench-nvme-smp{smp}"), esp)
    };
    crate::protocol::bench_figures(&vm, Duration::from_secs(600), |l| {
        l.contains("zen: bench done")
    })
}

/// The rows from both systems' figures at `smp` CPUs: for each workload the
/// instructions per I/O with the idle skips (what the clock says), and the busy
/// instructions with the time the whole machine sat idle taken off (`_busy`: Zen's
/// kernel counts it, Linux's /proc/stat does) — at queue depth 1 the first is mostly
/// the timer period an idle guest skips to, the second what the systems did.
pub fn rows(smp: u32, zen: &[(String, u64)], linux: Option<&[(String, u64)]>) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (key, what, bytes) in WORK {
        for (suffix, kind) in [("", ""), ("_busy", ", busy (idle taken off)")] {
            let k = format!("nvme_{key}_smp{smp}{suffix}");
            let get = |f: &[(String, u64)], who: &str| {
                f.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| *v)
                    .filter(|&v| v > 0)
                    .ok_or_else(|| format!("{who} printed no {k}="))
            };
            let z = get(zen, "blkbench")?;
            let cpus = if smp == 1 {
                "1 CPU"
            } else {
                "2 CPUs, a queue pair each"
            };
            let iops = 1e9 / z as f64;
            let rate = format!(
                "{:.0} IOPS, {:.1} MB/s at 1 instr/ns",
                iops,
                iops * *bytes as f64 / 1e6
            );
            let Some(linux) = linux else {
                rows.push(Row {
                    suite: "nvme",
                    name: format!("{what}, {cpus}{kind}"),
                    value: z as f64,
                    unit: "instr/IO",
                    note: format!(
                        "{rate}; no Linux peer (it does not boot on 2 CPUs under -icount)"
                    ),
                });
                continue;
            };
            let l = match get(linux, "the Linux peer") {
                Ok(l) => l,
                // Linux's idle time is in 10 ms ticks (/proc/stat): a workload that
                // is nearly all idle has no busy figure at that resolution.
                Err(_) if !suffix.is_empty() => {
                    rows.push(Row {
                        suite: "nvme",
                        name: format!("{what}, {cpus}{kind}"),
                        value: z as f64,
                        unit: "instr/IO",
                        note: format!(
                            "{rate}; Linux's busy time is below /proc/stat's 10 ms resolution here"
                        ),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            rows.push(Row {
                suite: "nvme",
                name: format!("{what}, {cpus}{kind}"),
                value: z as f64,
                unit: "instr/IO",
                note: format!("{rate}; Linux {l} ({:.0} IOPS)", 1e9 / l as f64),
            });
            rows.push(Row {
                suite: "nvme",
                name: format!("{what}, {cpus}{kind}, Zen / Linux"),
                value: z as f64 / l as f64,
                unit: "ratio",
                note: format!(
                    "{z} / {l}: Linux takes {:.2}x the instructions",
                    l as f64 / z as f64
                ),
            });
        }
    }
    Ok(rows)
}
