//! `cargo xtask bench`: figures, never pass/fail. Sizes are exact; boot costs are
//! guest instruction counts under QEMU's `-icount shift=0` (the TSC then advances one
//! tick per instruction), which repeat exactly, unlike wall-clock time on a shared
//! machine. Each boot is run twice to check that.
//!
//! Benchmarks are suites of rows. To add one, add a function to `SUITES`; the table and
//! target/bench.json pick its rows up. A Zen figure with a Linux peer gets a ratio row
//! from `ratio_row`, the Linux side coming from `Ctx::linux_figure` (the Linux guest of
//! `linux.rs` is booted on first use, twice, and shared by every suite of the run; it
//! measures `sched_yield_switch`, `getppid`, `pipe_roundtrip` and `unix_roundtrip`).
//! The printed table and bench.json are `report.rs`'s.
//!
//! Over 500 lines on purpose: one short function per suite around the shared context
//! (`Ctx`) and run helpers; suites in files of their own would all import those back
//! from here, and the module would stop reading as one list of what is measured.
//!
//! Over 500 lines: the table of suites and their small row-makers; the large suites
//! live in their own modules (diskbench, nvmebench, footprint).

use crate::build::{self, Artifacts, Kernel};
use crate::image::{esp_dir, EspContents};
use crate::qemu::Vm;
use crate::report::{json, table};
use crate::row::Row;
use crate::util::{cargo, read, root, show, target, write, Result};
use std::time::Duration;

/// What the suites share: the build (done once, on first use) and their output.
#[derive(Default)]
pub struct Ctx {
    artifacts: Option<Artifacts>,
    /// Tables from external bench programs, passed through verbatim.
    passthrough: Vec<(&'static str, String)>,
    /// Figures that should have repeated exactly but did not.
    unrepeatable: Vec<String>,
    /// The Linux guest's figures (first run) with their repeatability notes, once
    /// measured.
    linux: Option<Vec<(String, u64, String)>>,
}

impl Ctx {
    /// The Linux guest's figures, measured on first use (two boots, compared).
    fn linux(&mut self) -> Result<&[(String, u64, String)]> {
        if self.linux.is_none() {
            crate::setup::ensure()?;
            let runs = crate::linux::measure(RUNS)?;
            let mut figs = Vec::new();
            for (key, v) in &runs[0] {
                let vals: Vec<Option<u64>> = runs
                    .iter()
                    .map(|r| r.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
                    .collect();
                let note = self.repeat_note(&format!("Linux {key}"), &vals);
                figs.push((key.clone(), *v, note));
            }
            self.linux = Some(figs);
        }
        Ok(self.linux.as_deref().expect("just measured"))
    }

    /// One Linux figure by the peer's name for it (`getppid`, `pipe_roundtrip`, ...).
    fn linux_figure(&mut self, key: &str) -> Result<u64> {
        self.linux()?
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| *v)
            .ok_or_else(|| format!("the Linux peer printed no {key}="))
    }

    /// "identical in N runs", or a warning (also collected for the end of the run)
    /// when the runs of an exactly repeatable figure disagree.
    fn repeat_note(&mut self, name: &str, vals: &[Option<u64>]) -> String {
        if vals.iter().all(|v| *v == vals[0]) {
            format!("identical in {} runs", vals.len())
        } else {
            let msg = format!("{name}: runs differ: {vals:?}");
            self.unrepeatable.push(msg.clone());
            msg
        }
    }

    fn artifacts(&mut self) -> Result<Artifacts> {
        if self.artifacts.is_none() {
            crate::setup::ensure()?;
            self.artifacts = Some(build::build(Kernel::Normal)?);
        }
        Ok(self.artifacts.clone().expect("just built"))
    }
}

type Suite = fn(&mut Ctx) -> Result<Vec<Row>>;

/// Every benchmark, by name (the names `--only` takes).
const SUITES: &[(&str, Suite)] = &[
    ("sizes", sizes),
    ("boot", boot),
    ("disk", disk),
    ("switch", switch),
    ("ipc", ipc),
    ("linux", linux),
    ("nvme", nvme),
    ("tagfs", tagfs),
    ("tagfs-os", tagfs_os),
    ("ipc-profile", crate::profile::ipc_profile),
];

/// The store in Zen OS against ext4 in Linux on the same NVMe device (`storebench`).
fn tagfs_os(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench-store"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_test_bin)?,
            cmdline: Some("init=storebench"),
        },
    )?;
    let zen = crate::storebench::zen(&esp)?;
    let linux = crate::linux::measure_store()?;
    crate::storebench::rows(&zen, &linux)
}

/// NVMe: Zen OS's nvmed and Linux's driver on the same QEMU device (`nvmebench`).
fn nvme(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench-nvme"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_test_bin)?,
            cmdline: Some("init=blkbench"),
        },
    )?;
    let mut rows = Vec::new();
    for smp in [1, 2] {
        let zen = crate::nvmebench::zen(&esp, smp)?;
        // Linux under -icount does not come up on two CPUs (its second CPU's
        // bring-up never completes; the `linux` suite is one CPU too): Zen's figures
        // stand alone there.
        let linux = if smp == 1 {
            Some(crate::linux::measure_nvme(smp)?)
        } else {
            None
        };
        rows.extend(crate::nvmebench::rows(smp, &zen, linux.as_deref())?);
    }
    Ok(rows)
}

/// Boots per figure that must repeat exactly.
const RUNS: usize = 2;

/// The boot chain from zenos.img (stub sizes, three firmware paths): `diskbench`.
fn disk(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let (rows, unrepeatable) = crate::diskbench::rows(&ctx.artifacts()?)?;
    ctx.unrepeatable.extend(unrepeatable);
    Ok(rows)
}

/// Runs the suites named in `only` (all if empty); prints the table and writes
/// target/bench.json.
pub fn run(only: &[String]) -> Result {
    for name in only {
        if !SUITES.iter().any(|(n, _)| n == name) {
            let all: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "no bench suite `{name}` (have: {})",
                all.join(", ")
            ));
        }
    }
    let mut ctx = Ctx::default();
    let mut rows = Vec::new();
    for (name, suite) in SUITES {
        if only.is_empty() || only.iter().any(|o| o == name) {
            rows.extend(suite(&mut ctx)?);
        }
    }
    for (name, text) in &ctx.passthrough {
        println!("\n== {name} ==\n{}", text.trim_end());
    }
    println!("\n{}", table(&rows));
    for u in &ctx.unrepeatable {
        println!("warning: {u}");
    }
    let path = target().join("bench.json");
    write(
        &path,
        json(&rows, &ctx.passthrough, &ctx.unrepeatable).as_bytes(),
    )?;
    println!("(also in {})", path.display());
    Ok(())
}

fn sizes(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let len = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let row = |name: &str, value: u64| Row {
        suite: "sizes",
        name: name.into(),
        value: value as f64,
        unit: "bytes",
        note: String::new(),
    };
    let elf_bytes = read(&a.elf)?;
    let bloat = crate::footprint::of_elf(&elf_bytes)?;
    ctx.passthrough.push((
        "kernel .text by crate and function",
        crate::footprint::table(&bloat, 20),
    ));
    let flat = crate::elf::flatten(&elf_bytes, zen_abi::layout::KERNEL_BASE)?;
    // The flat image is the kernel alone (the boot archive follows it in zenos.bin),
    // compressed as zenos.bin's kernel part is (zen_image::build), less the header.
    let alone = flat.image;
    let alone_lz4 = zen_image::build(&alone, flat.mem_size, flat.base, flat.entry).len()
        - zen_abi::image::IMAGE_HEADER_SIZE;
    Ok(vec![
        row("kernel .text", bloat.text),
        row("kernel alone, flat", alone.len() as u64),
        row("kernel alone, LZ4 (as in zenos.bin)", alone_lz4 as u64),
        row("zenos.bin", len(&a.zenos_bin)?),
        row("UEFI stub (.efi)", len(&a.stub)?),
        row(
            "boot archive (init, shell: after the kernel in zenos.bin)",
            len(&a.archive)?,
        ),
        row(
            "test boot archive (also usertests, ipcbench: zenos-test.bin)",
            len(&a.test_archive)?,
        ),
        row("zenos-test.bin", len(&a.zenos_test_bin)?),
    ])
}

/// The line the kernel prints right after `zen: ready` with its TSC deltas.
const BENCH_PREFIX: &str = "zen: bench ";
/// (key in the kernel's line, row name)
/// CPU counts the boot is measured at: one, and two (the cost of starting another CPU).
const BOOT_SMP: &[u32] = &[1, 2];
/// The stub's part is not exactly repeatable, by nature: it reads zenos.bin through
/// the firmware's disk driver, which polls for completions, and when QEMU completes a
/// read depends on the host. So only the kernel's part is held to "identical".
const BOOT_FIGURES: &[(&str, &str)] = &[
    ("entry_to_ready", "kernel entry -> ready"),
    ("stub_to_ready", "stub start -> ready"),
    ("k_mm", "kernel step: entry -> tables, frames, heap"),
    ("k_banner", "kernel step: framebuffer banner"),
    ("k_acpi", "kernel step: ACPI tables"),
    ("k_clock", "kernel step: TSC and APIC timer rates"),
    ("k_smp", "kernel step: starting the other CPUs"),
    (
        "stub_setup",
        "UEFI stub step: firmware queries, allocations",
    ),
    (
        "stub_read",
        "UEFI stub step: reading zenos.bin (firmware file reads)",
    ),
    ("stub_signature", "UEFI stub step: ed25519 signature check"),
    ("stub_hash", "UEFI stub step: BLAKE3 of the payload"),
    ("stub_lz4", "UEFI stub step: LZ4 decompression"),
    (
        "stub_exit",
        "UEFI stub step: page tables, memory map, ExitBootServices",
    ),
];
/// The figures that include firmware work (disk reads, its timers): see BOOT_FIGURES.
/// The kernel's clock step (so its entry -> ready) too, by up to one PM timer tick (279
/// instructions): it waits for a tick edge, and where the boot falls between two edges
/// depends on when the firmware's reads completed.
const FIRMWARE_FIGURES: &[&str] = &[
    "stub_to_ready",
    "stub_setup",
    "stub_read",
    "stub_exit",
    "entry_to_ready",
    "k_clock",
];
/// The rate `-icount shift=0` gives the TSC: one tick per instruction, one instruction
/// per virtual nanosecond.
const ICOUNT_TSC_HZ: u64 = 1_000_000_000;
/// Figures that include disk I/O (see BOOT_FIGURES): their runs may differ this much
/// (relative) without a warning. Measured: 0.02% on one CPU, 0.16% on two (OVMF's idle
/// second CPU spins while the first waits for the disk, and under `-icount` every CPU's
/// instructions advance the TSC).
const IO_TOLERANCE: f64 = 0.005;

fn boot(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_bin)?,
            cmdline: None,
        },
    )?;
    let mut rows = Vec::new();
    for smp in BOOT_SMP {
        // The kernel's line naming the TSC's source, e.g. `zen: tsc 1000.0 MHz (ACPI PM
        // timer, 250 us)`.
        let tsc_line = std::cell::RefCell::new(String::new());
        let runs = zen_runs(&esp, &format!("bench-boot-smp{smp}"), *smp, |l| {
            if let Some(i) = l.find("zen: tsc ") {
                *tsc_line.borrow_mut() = l[i + 5..].trim().to_string();
            }
            l.contains(BENCH_PREFIX)
        })?;
        let cpus = if *smp == 1 { "CPU" } else { "CPUs" };
        for (key, name) in BOOT_FIGURES {
            let name = format!("{name}, {smp} {cpus}");
            let (first, note) = if FIRMWARE_FIGURES.contains(key) {
                near(ctx, &name, &runs, key)?
            } else {
                repeated(ctx, &name, &runs, key)?
            };
            rows.push(Row {
                suite: "boot",
                name,
                value: first as f64,
                unit: "instructions",
                note,
            });
        }
        let name = format!("TSC rate found, {smp} {cpus}");
        let (hz, note) = repeated(ctx, &name, &runs, "tsc_hz")?;
        rows.push(Row {
            suite: "boot",
            name,
            value: hz as f64,
            unit: "Hz",
            note: format!(
                "{}; error {:+} ppm against the exact 1 GHz of -icount shift=0; {note}",
                tsc_line.borrow(),
                zen_clock::error_ppm(hz, ICOUNT_TSC_HZ)
            ),
        });
    }
    Ok(rows)
}

/// Boots Zen OS `RUNS` times on `smp` CPUs under `-icount shift=0` from `esp`, each
/// until a serial line satisfies `last`; returns every run's `zen: bench k=v` figures.
fn zen_runs(
    esp: &std::path::Path,
    name: &str,
    smp: u32,
    last: impl Fn(&str) -> bool,
) -> Result<Vec<Vec<(String, u64)>>> {
    let mut runs = Vec::new();
    for i in 1..=RUNS {
        let vm = Vm {
            icount: true,
            smp,
            ..Vm::new(&format!("{name}-{i}"), esp)
        };
        let found = crate::protocol::bench_figures(&vm, Duration::from_secs(300), &last)?;
        runs.push(found);
    }
    Ok(runs)
}

/// The figure `key` of the first run, and its repeatability note over all runs.
fn repeated(
    ctx: &mut Ctx,
    name: &str,
    runs: &[Vec<(String, u64)>],
    key: &str,
) -> Result<(u64, String)> {
    let vals: Vec<Option<u64>> = runs
        .iter()
        .map(|r| r.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
        .collect();
    let first = vals[0].ok_or_else(|| format!("the kernel's bench output has no {key}="))?;
    Ok((first, ctx.repeat_note(name, &vals)))
}

/// Like `repeated`, for figures that include disk I/O: runs may differ by up to
/// IO_TOLERANCE, and the note gives the spread.
fn near(
    ctx: &mut Ctx,
    name: &str,
    runs: &[Vec<(String, u64)>],
    key: &str,
) -> Result<(u64, String)> {
    let vals: Vec<u64> = runs
        .iter()
        .map(|r| r.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("the kernel's bench output has no {key}="))?;
    let (lo, hi) = (vals.iter().min().unwrap(), vals.iter().max().unwrap());
    let spread = (hi - lo) as f64 / *lo as f64;
    let note = if hi == lo {
        format!("identical in {} runs", vals.len())
    } else {
        format!(
            "{} runs within {} instructions (firmware timing)",
            vals.len(),
            hi - lo
        )
    };
    if spread > IO_TOLERANCE {
        ctx.unrepeatable
            .push(format!("{name}: runs differ by more than 0.5%: {vals:?}"));
    }
    Ok((vals[0], note))
}

/// A Zen figure over its Linux peer: below 1 means Zen OS takes fewer instructions.
fn ratio_row(suite: &'static str, what: &str, zen: u64, linux: u64) -> Row {
    Row {
        suite,
        name: format!("{what}, Zen / Linux"),
        value: zen as f64 / linux as f64,
        unit: "ratio",
        note: format!(
            "{zen} / {linux}: Linux takes {:.1}x the instructions",
            linux as f64 / zen as f64
        ),
    }
}

/// The in-kernel context switch benchmark (kernel command line `bench`): two kernel
/// threads on one CPU yield to each other; and Linux's `sched_yield` between two
/// processes on one CPU, with the ratio.
fn switch(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench-switch"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_bin)?,
            cmdline: Some("bench"),
        },
    )?;
    let runs = zen_runs(&esp, "bench-switch", 1, |l| l.contains("zen: bench done"))?;
    let name = "Zen thread yield -> thread";
    let (zen, note) = repeated(ctx, name, &runs, "ctx_switch_yield")?;
    let linux = ctx.linux_figure("sched_yield_switch")?;
    Ok(vec![
        Row {
            suite: "switch",
            name: name.into(),
            value: zen as f64,
            unit: "instr/switch",
            note,
        },
        ratio_row("switch", "context switch", zen, linux),
    ])
}

/// What the two-CPU round trip counts. Under `-icount` QEMU runs the CPUs in turn in
/// one host thread (a CPU until it halts or a timer is due), and every CPU's
/// instructions advance the TSC: the figure is both CPUs' instructions per trip, the
/// wake-up IPIs and their handlers included, and the two never overlap in time.
const TWO_CPU_NOTE: &str = "each process pinned to its own CPU (set_cpu); counts both \
     CPUs' instructions, IPIs included (under -icount QEMU runs the CPUs in turn)";

/// System calls and IPC between processes, measured by the user program `ipcbench`
/// (booted as init, on one CPU and on two), with the Linux guest's peers of them.
fn ipc(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let a = ctx.artifacts()?;
    let esp = esp_dir(
        &target().join("esp-bench-ipc"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_test_bin)?,
            cmdline: Some("init=ipcbench"),
        },
    )?;
    let done = |l: &str| l.contains("zen: bench done");
    let one = zen_runs(&esp, "bench-ipc-smp1", 1, done)?;
    let two = zen_runs(&esp, "bench-ipc-smp2", 2, done)?;
    let row = |name: &str, value: u64, unit, note: String| Row {
        suite: "ipc",
        name: name.into(),
        value: value as f64,
        unit,
        note,
    };
    let mut rows = Vec::new();

    let name = "null system call (getpid)";
    let (getpid, note) = repeated(ctx, name, &one, "getpid")?;
    rows.push(row(name, getpid, "instr/call", note));
    let linux = ctx.linux_figure("getppid")?;
    rows.push(ratio_row("ipc", "null system call", getpid, linux));

    let name = "channel system call (msg_send, nobody to wake)";
    let (call, note) = repeated(ctx, name, &one, "chancall")?;
    rows.push(row(
        name,
        call,
        "instr/call",
        note + "; the token named by its slot: the kernel checks its own copy",
    ));

    let name = "64-byte round trip between two processes, 1 CPU";
    let (trip, note) = repeated(ctx, name, &one, "roundtrip")?;
    rows.push(row(
        name,
        trip,
        "instr/trip",
        note + "; Channel::call / reply_recv: one msg_call per side, a direct switch each way",
    ));
    let name = "the same round trip through the rings' send and recv, 1 CPU";
    let (rings, note) = repeated(ctx, name, &one, "roundtrip_rings")?;
    rows.push(row(
        name,
        rings,
        "instr/trip",
        note + "; two system calls per side, through the run queue",
    ));
    let name = "the same round trip in registers (call / reply_recv), 1 CPU";
    let (regs, note) = repeated(ctx, name, &one, "roundtrip_regs")?;
    rows.push(row(
        name,
        regs,
        "instr/trip",
        note + "; Cap::call / Server: one trap per side, the 64 bytes in registers, a direct switch each way",
    ));
    for (key, what) in [
        ("pipe_roundtrip", "pipe"),
        ("unix_roundtrip", "unix socket"),
    ] {
        let linux = ctx.linux_figure(key)?;
        let mut r = ratio_row("ipc", &format!("round trip vs Linux {what}"), trip, linux);
        r.note += " (Linux: 1-byte messages)";
        rows.push(r);
        let mut r = ratio_row(
            "ipc",
            &format!("register round trip vs Linux {what}"),
            regs,
            linux,
        );
        r.note += " (Linux: 1-byte messages)";
        rows.push(r);
    }

    let name = "64-byte round trip between two processes, 2 CPUs";
    let (trip2, note) = repeated(ctx, name, &two, "roundtrip_cross")?;
    rows.push(row(
        name,
        trip2,
        "instr/trip",
        format!("{note}; Channel::call; {TWO_CPU_NOTE}"),
    ));
    let name = "the same in registers (call / reply_recv), 2 CPUs";
    let (regs2, note) = repeated(ctx, name, &two, "roundtrip_regs_cross")?;
    rows.push(row(
        name,
        regs2,
        "instr/trip",
        format!("{note}; Cap::call; {TWO_CPU_NOTE}"),
    ));
    let name = "the same through the rings' send and recv, 2 CPUs";
    let (rings2, note) = repeated(ctx, name, &two, "roundtrip_rings_cross")?;
    rows.push(row(
        name,
        rings2,
        "instr/trip",
        format!("{note}; {TWO_CPU_NOTE}"),
    ));

    let name = "64-byte messages one way, 1 CPU";
    let (instr, note) = repeated(ctx, name, &one, "stream_instr")?;
    let (msgs, _) = repeated(ctx, name, &one, "stream_msgs")?;
    rows.push(row(
        &format!("{name}: instructions per message"),
        (instr as f64 / msgs as f64).round() as u64,
        "instr/msg",
        format!("{instr} for {msgs} messages, {note}"),
    ));
    rows.push(row(
        &format!("{name}: messages per second"),
        per_second(msgs, instr).round() as u64,
        "msgs/s",
        "at one instruction per ns (icount shift=0)".into(),
    ));

    let name = "64 KiB page grants one way, 1 CPU";
    let (instr, note) = repeated(ctx, name, &one, "grant_instr")?;
    let (grants, _) = repeated(ctx, name, &one, "grant_count")?;
    rows.push(row(
        &format!("{name}: instructions per grant"),
        (instr as f64 / grants as f64).round() as u64,
        "instr/grant",
        format!("{instr} for {grants} grants (the receiver maps, reads all, unmaps), {note}"),
    ));
    rows.push(Row {
        suite: "ipc",
        name: format!("{name}: MB/s"),
        value: megabytes_per_second(GRANT_BYTES, grants, instr).round(),
        unit: "MB/s",
        note: "at one instruction per ns (icount shift=0)".into(),
    });
    Ok(rows)
}

/// The size of one page grant of `ipcbench`.
const GRANT_BYTES: u64 = 64 << 10;

/// MB (10^6 bytes) per second when `ops` operations of `bytes` each take `instr` guest
/// instructions, at one instruction per nanosecond.
fn megabytes_per_second(bytes: u64, ops: u64, instr: u64) -> f64 {
    per_second(ops, instr) * bytes as f64 / 1e6
}

/// Operations per second from `instr` guest instructions for `ops` operations, at one
/// instruction per nanosecond (`-icount shift=0`).
fn per_second(ops: u64, instr: u64) -> f64 {
    ops as f64 * 1e9 / instr as f64
}

/// (peer's key, row name, unit) of the Linux guest's figures.
const LINUX_FIGURES: &[(&str, &str, &str)] = &[
    (
        "sched_yield_switch",
        "sched_yield process -> process",
        "instr/switch",
    ),
    ("getppid", "getppid (null system call)", "instr/call"),
    ("pipe_roundtrip", "pipe 1-byte round trip", "instr/trip"),
    (
        "unix_roundtrip",
        "unix socket 1-byte round trip",
        "instr/trip",
    ),
];

/// The Linux guest's figures as rows (Debian's kernel on the same QEMU, one CPU).
fn linux(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let figs = ctx.linux()?.to_vec();
    let mut rows = Vec::new();
    for (key, name, unit) in LINUX_FIGURES {
        let (_, v, note) = figs
            .iter()
            .find(|(k, _, _)| k == key)
            .ok_or_else(|| format!("the Linux peer printed no {key}="))?;
        rows.push(Row {
            suite: "linux",
            name: name.to_string(),
            value: *v as f64,
            unit,
            note: note.clone(),
        });
    }
    Ok(rows)
}

/// TagFS's own benchmark program, when it exists; its table is passed through.
fn tagfs(ctx: &mut Ctx) -> Result<Vec<Row>> {
    if !root().join("tools/tagfs-bench").is_dir() {
        println!("xtask bench: tools/tagfs-bench does not exist yet, skipped");
        return Ok(vec![]);
    }
    let mut c = cargo();
    c.args(["run", "--release", "-p", "tagfs-bench"]);
    println!("running: {}", show(&c));
    let out = crate::util::output(&mut c)?;
    ctx.passthrough.push(("tagfs", out));
    Ok(vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::number;

    #[test]
    fn ratio_row_divides_zen_by_linux() {
        let r = ratio_row("switch", "context switch", 360, 2074);
        assert_eq!(number(r.value), "0.174");
        assert!(r.note.contains("5.8x"), "{}", r.note);
    }

    #[test]
    fn rates_are_at_one_instruction_per_ns() {
        // 100,000 messages in 41,234,567 instructions: 412.3 per message.
        assert_eq!(per_second(100_000, 41_234_567).round(), 2_425_150.0);
        assert_eq!(per_second(1, 1_000_000_000), 1.0);
        // A 64 KiB grant in 65,536 instructions: one byte per ns, 1,000 MB/s.
        assert_eq!(megabytes_per_second(65536, 5_000, 5_000 * 65536), 1000.0);
        assert_eq!(megabytes_per_second(65536, 2, 131_072_000).round(), 1.0);
    }

    fn runs(vals: &[u64]) -> Vec<Vec<(String, u64)>> {
        vals.iter().map(|v| vec![("k".to_string(), *v)]).collect()
    }

    #[test]
    fn differing_runs_warn() {
        let mut ctx = Ctx::default();
        assert_eq!(
            repeated(&mut ctx, "x", &runs(&[5, 5]), "k").unwrap(),
            (5, "identical in 2 runs".to_string())
        );
        assert!(ctx.unrepeatable.is_empty());
        repeated(&mut ctx, "x", &runs(&[5, 6]), "k").unwrap();
        assert_eq!(ctx.unrepeatable.len(), 1);
        assert!(repeated(&mut ctx, "x", &runs(&[5]), "missing").is_err());
        // Disk-bound figures: a small spread is expected, a large one is not.
        near(&mut ctx, "y", &runs(&[100_000, 100_300]), "k").unwrap();
        assert_eq!(ctx.unrepeatable.len(), 1);
        near(&mut ctx, "y", &runs(&[100_000, 101_000]), "k").unwrap();
        assert_eq!(ctx.unrepeatable.len(), 2);
    }

    #[test]
    fn unknown_suite_is_an_error() {
        assert!(run(&["nope".into()])
            .unwrap_err()
            .contains("have: sizes, boot, disk, switch, ipc, linux, nvme, tagfs"));
    }
}
