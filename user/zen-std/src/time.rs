//! Time.

use crate::sys::call_reading;
use zen_abi::syscall::Syscall;

/// Milliseconds since boot.
pub fn uptime_ms() -> u64 {
    call_reading(Syscall::Uptime, [0; 6]).unwrap_or(0)
}

/// Sleeps for at least `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let _ = call_reading(Syscall::Sleep, [ms, 0, 0, 0, 0, 0]);
}

/// The CPU's time-stamp counter, read without entering the kernel: for measuring
/// short stretches of code (benchmarks). Under QEMU `-icount shift=0` it advances once
/// per guest instruction. Not ordered against the instructions around it (no fence),
/// which only matters for stretches of a few instructions.
pub fn cycles() -> u64 {
    // SAFETY: RDTSC reads a counter and touches no memory. At CPL 3 it faults (#GP)
    // only if CR4.TSD is set, and nothing sets it: the boot CPU keeps the firmware's
    // CR4 (or the BIOS stub's), the others get the SMP trampoline's, neither with TSD.
    unsafe { core::arch::x86_64::_rdtsc() }
}
