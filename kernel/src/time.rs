//! Time since boot, in timer ticks (`TIMER_HZ` per second), read from the TSC.
//!
//! Not a counter one CPU's timer interrupt bumps: then time would stand still for
//! every CPU whenever that one CPU ran with interrupts off (a long console write, a
//! process pinned there spinning in the kernel), and every sleep and timeout in the
//! system with it. The TSC runs on every CPU at one rate (invariant TSC; under QEMU
//! one virtual clock), so any CPU reads the same time, and each CPU's own timer
//! interrupt wakes its own sleepers.

use core::sync::atomic::{AtomicU64, Ordering};

/// TSC at the time origin, and TSC cycles per tick (0 until [`start`]).
static ORIGIN: AtomicU64 = AtomicU64::new(0);
static PER_TICK: AtomicU64 = AtomicU64::new(0);

/// Starts the clock, once the TSC frequency is known (after the timer calibration).
pub fn start(tsc_hz: u64) {
    ORIGIN.store(crate::arch::cpu::rdtsc(), Ordering::Relaxed);
    PER_TICK.store((tsc_hz / crate::TIMER_HZ as u64).max(1), Ordering::Release);
}

/// Timer ticks since the clock started (0 before).
pub fn ticks() -> u64 {
    let per_tick = PER_TICK.load(Ordering::Acquire);
    if per_tick == 0 {
        return 0;
    }
    crate::arch::cpu::rdtsc().saturating_sub(ORIGIN.load(Ordering::Relaxed)) / per_tick
}

/// Ticks to wait for at least `ms`: one more than the quotient, because the current
/// tick is already partly over.
pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(crate::TIMER_HZ as u64)
        .div_ceil(1000)
        .saturating_add(1)
}
