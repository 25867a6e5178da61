//! `cargo xtask soak [--calls N]`: the system-call fuzzer at length, outside the timed
//! test run. Boots `usertests` as init on two CPUs with `arg=soak:N`: rounds of 8
//! fuzz children make N random system calls in all (10 million by default), mixed
//! with the sequences that found kernel defects (attach and unmap of channel pages,
//! map/unmap cycling, kill of threads blocked in msg_recv, revoke during use). At the
//! end usertests checks that every frame and kernel heap block is back and prints one
//! `zen-soak:` line; this verb shows it and fails on a kernel failure (a panic, an
//! exception, a hang), a misbehaving sequence or anything lost.

use crate::build::{self, Kernel};
use crate::image::{esp_dir, EspContents};
use crate::qemu::Vm;
use crate::util::{read, target, Result};
use std::time::{Duration, Instant};

/// Long enough for 10 million calls under TCG with room to spare.
const TIMEOUT: Duration = Duration::from_secs(3 * 3600);

pub fn run(calls: u64) -> Result<()> {
    crate::setup::ensure()?;
    let a = build::build(Kernel::Normal)?;
    let cmdline = format!("init=usertests arg=soak:{calls}");
    let esp = esp_dir(
        &target().join("esp-soak"),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_test_bin)?,
            cmdline: Some(&cmdline),
        },
    )?;
    let vm = Vm {
        smp: 2,
        ..Vm::new("soak", &esp)
    };
    println!("xtask: soak of {calls} system calls on 2 CPUs (log: target/qemu/soak.log)");
    let start = Instant::now();
    let mut result = None;
    let mut kernel_failures = Vec::new();
    let cap = vm.run_captured(TIMEOUT, |l| {
        if l.starts_with("zen-soak: progress") {
            println!("  {l}");
        }
        if l.contains("PANIC") || l.contains("EXCEPTION") {
            kernel_failures.push(l.to_string());
        }
        if let Some(r) = l.strip_prefix("zen-soak: calls=") {
            result = Some(format!("calls={r}"));
        }
        false
    })?;
    let secs = start.elapsed().as_secs();
    if cap.timed_out {
        kernel_failures.push(format!("timed out after {secs} s (a hang)"));
    }
    match &result {
        Some(r) => println!("zen-soak: {r} (host {secs} s)"),
        None => kernel_failures.push("no zen-soak result line".to_string()),
    }
    let clean = result.as_deref().is_some_and(|r| {
        r.contains(" failed=0 ")
            && r.contains(" works=true ")
            && r.contains(" lost_frames=0 ")
            && r.ends_with(" lost_heap_blocks=0")
    });
    println!(
        "kernel failures: {} ({})",
        kernel_failures.len(),
        if kernel_failures.is_empty() {
            "none".to_string()
        } else {
            kernel_failures.join("; ")
        }
    );
    if kernel_failures.is_empty() && clean {
        Ok(())
    } else {
        Err("the soak was not clean".to_string())
    }
}
