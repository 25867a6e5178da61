//! `cargo xtask bench --only tagfs-os`: the store inside Zen OS against ext4 inside
//! Linux, on the same QEMU NVMe device model, one CPU, `-icount shift=0,sleep=off`.
//! Zen OS boots `storebench` as init on a 512 MiB disk with a blank TagFS root
//! partition (nvmed, tagfsd, and the client in three processes); the Linux guest
//! runs bench/linux/store.c on a 512 MiB ext4 made on the host, tags as extended
//! attributes. Rows: instructions per operation (all of them, and busy: with the
//! time the machine sat idle taken off), Linux's, the ratio, and the rate at one
//! instruction per ns.

use crate::row::Row;
use crate::util::{target, Result};
use std::path::Path;
use std::time::Duration;

/// (key, what, unit, bytes per operation for a MB/s figure)
const WORK: &[(&str, &str, &str, u64)] = &[
    (
        "create4k",
        "create 4 KiB objects with 8 tags, durable every 1,000",
        "instr/object",
        0,
    ),
    (
        "query2",
        "2-tag AND query over 100,000 objects",
        "instr/query",
        0,
    ),
    ("read16m", "read a 16 MiB object", "instr/read", 16 << 20),
];

/// Zen OS's figures (one boot).
pub fn zen(esp: &Path) -> Result<Vec<(String, u64)>> {
    let disk = target().join("bench-store.img");
    std::fs::write(&disk, crate::disk::store_bench_image()?)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let vm = crate::qemu::Vm {
        icount: true,
        nvme: Some(disk),
        ..crate::qemu::Vm::new("bench-store", esp)
    };
    crate::protocol::bench_figures(&vm, Duration::from_secs(1800), |l| {
        l.contains("zen: bench done")
    })
}

pub fn rows(zen: &[(String, u64)], linux: &[(String, u64)]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (key, what, unit, bytes) in WORK {
        for (suffix, kind) in [("", ""), ("_busy", ", busy (idle taken off)")] {
            let k = format!("tagfs_{key}{suffix}");
            let get = |f: &[(String, u64)], who: &str| {
                f.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| *v)
                    .filter(|&v| v > 0)
                    .ok_or_else(|| format!("{who} printed no {k}="))
            };
            let (z, l) = (get(zen, "storebench")?, get(linux, "the Linux peer")?);
            let rate = |v: u64| {
                let per_s = 1e9 / v as f64;
                if *bytes > 0 {
                    format!("{:.1} MB/s", per_s * *bytes as f64 / 1e6)
                } else {
                    format!("{per_s:.0}/s")
                }
            };
            rows.push(Row {
                suite: "tagfs-os",
                name: format!("{what}{kind}"),
                value: z as f64,
                unit,
                note: format!(
                    "{} at 1 instr/ns; Linux ext4 + xattrs {l} ({})",
                    rate(z),
                    rate(l)
                ),
            });
            rows.push(Row {
                suite: "tagfs-os",
                name: format!("{what}{kind}, Zen / Linux"),
                value: z as f64 / l as f64,
                unit: "ratio",
                note: format!("{z} / {l}"),
            });
        }
    }
    Ok(rows)
}
