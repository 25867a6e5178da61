//! In-kernel benchmarks, run when the command line says `bench` (see `cargo xtask
//! bench`). Figures are TSC deltas: under QEMU `-icount shift=0` the TSC advances one
//! per guest instruction, so they are exact, repeatable instruction counts.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu::{self, qemu_exit, QemuExit};
use crate::kprintln;
use crate::task::{self, Options};

const SWITCH_ROUNDS: u64 = 20_000;

/// Two threads on one CPU yield to each other: guest instructions per switch.
fn ctx_switch() -> u64 {
    let start = Arc::new(AtomicU64::new(0));
    let spawn = |start: Arc<AtomicU64>| {
        task::spawn(Options::new("yield").pin(0), move || {
            // Line up: the first one to arrive starts the clock once both run.
            start
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .ok();
            task::yield_now();
            let t0 = cpu::rdtsc();
            for _ in 0..SWITCH_ROUNDS {
                task::yield_now();
            }
            t0
        })
        .expect("spawn")
    };
    let (a, b) = (spawn(start.clone()), spawn(start));
    let t0 = task::join(a).min(task::join(b));
    let t1 = cpu::rdtsc();
    // Both threads yield SWITCH_ROUNDS times; each yield switches to the other.
    (t1 - t0) / (2 * SWITCH_ROUNDS)
}

/// Runs every benchmark, prints `zen: bench <name>=<value>` lines, exits QEMU.
pub fn run() -> u64 {
    kprintln!("zen: bench ctx_switch_yield={}", ctx_switch());
    kprintln!("zen: bench done");
    crate::console::flush();
    qemu_exit(QemuExit::Success)
}
