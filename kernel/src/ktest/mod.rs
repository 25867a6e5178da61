//! In-kernel tests (`--features ktest`): a plain registry of test functions, run in
//! order after boot. Each reports `test <name> ... ok|FAILED` on the serial port; the
//! run ends with `zen-test: done P passed, F failed` and exits QEMU through
//! isa-debug-exit (0x10 = pass, 0x11 = fail). A test that hangs is caught by the
//! harness's timeout, one that faults by the exception handler (which exits QEMU).
//!
//! To add a test: write `fn name() -> TestResult` in a file of this module and list it in [`TESTS`] (tests live in this module's files).

use crate::arch::cpu::{qemu_exit, QemuExit};
use crate::kprintln;

pub type TestResult = Result<(), &'static str>;

/// Fails the test with `msg` unless `cond` holds.
pub fn check(cond: bool, msg: &'static str) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg)
    }
}

mod cpu;
mod mm;
mod proc;
mod sched;

const TESTS: &[(&str, fn() -> TestResult)] = &[
    ("edge::empty_after_clean_boot", sched::edge_registry_empty),
    ("mm::frame_alloc_free", mm::frame_alloc_free),
    ("mm::frame_exhaustion", mm::frame_exhaustion),
    ("mm::map_unmap_translate", mm::map_unmap_translate),
    ("mm::page_fault_caught", mm::page_fault_caught),
    ("mm::heap_stress", mm::heap_stress),
    ("cpu::breakpoint_resumes", cpu::breakpoint_resumes),
    ("cpu::timer_ticks", cpu::timer_ticks),
    ("cpu::clock_sources_agree", cpu::clock_sources_agree),
    ("smp::all_cpus_online", cpu::all_cpus_online),
    ("smp::percpu_through_gs", cpu::percpu_through_gs),
    (
        "smp::every_cpu_takes_timer_ticks",
        cpu::every_cpu_takes_timer_ticks,
    ),
    (
        "sched::threads_bump_own_counters",
        sched::threads_bump_own_counters,
    ),
    (
        "sched::proportional_share_3_to_1",
        sched::proportional_share,
    ),
    ("sched::realtime_runs_first", sched::realtime_runs_first),
    ("sched::migration_by_pin_and_steal", sched::migration),
    ("sched::sleep_lasts_long_enough", sched::sleep_lasts),
    ("sched::no_lost_wakeups", sched::no_lost_wakeups),
    (
        "sched::early_wake_frees_sleeper",
        sched::early_wake_frees_sleeper,
    ),
    (
        "task::wait_queue_wakes_all_and_forgets_the_dead",
        proc::wait_queue_wakes_all_and_forgets_the_dead,
    ),
    (
        "ipc::attach_failing_halfway_maps_nothing",
        proc::attach_failing_halfway_maps_nothing,
    ),
    (
        "proc::teardown_steps_give_back_each_part",
        proc::teardown_steps_give_back_each_part,
    ),
    (
        "sched::crossing_switches_do_not_deadlock",
        sched::crossing_switches_do_not_deadlock,
    ),
];

pub fn run() -> u64 {
    kprintln!("zen-test: start {}", TESTS.len());
    let mut failed = 0;
    for (name, test) in TESTS {
        match test() {
            Ok(()) => kprintln!("test {} ... ok", name),
            Err(why) => {
                failed += 1;
                kprintln!("test {} ... FAILED: {}", name, why);
            }
        }
    }
    kprintln!(
        "zen-test: done {} passed, {} failed",
        TESTS.len() - failed,
        failed
    );
    crate::console::flush();
    qemu_exit(if failed == 0 {
        QemuExit::Success
    } else {
        QemuExit::Failure
    })
}
