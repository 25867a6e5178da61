//! Tests of exceptions and the timer.

use core::sync::atomic::Ordering;

use super::{check, TestResult};
use crate::arch::{apic, cpu, interrupts::BREAKPOINTS};

pub fn breakpoint_resumes() -> TestResult {
    let before = BREAKPOINTS.load(Ordering::Relaxed);
    cpu::breakpoint();
    cpu::breakpoint();
    check(BREAKPOINTS.load(Ordering::Relaxed) == before + 2, "breakpoints not handled")
}

pub fn timer_ticks() -> TestResult {
    check(cpu::interrupts_enabled(), "interrupts disabled")?;
    let start = crate::time::ticks();
    let deadline = cpu::rdtsc() + apic::tsc_hz().max(1_000_000) * 2;
    while crate::time::ticks() < start + 5 {
        if cpu::rdtsc() > deadline {
            return Err("fewer than 5 timer interrupts in 2 s");
        }
        core::hint::spin_loop();
    }
    Ok(())
}
