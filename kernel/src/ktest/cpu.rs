//! Tests of exceptions and the timer.

use core::sync::atomic::Ordering;

use super::{check, TestResult};
use crate::arch::{apic, cpu, interrupts::BREAKPOINTS, percpu};

pub fn breakpoint_resumes() -> TestResult {
    let before = BREAKPOINTS.load(Ordering::Relaxed);
    cpu::breakpoint();
    cpu::breakpoint();
    check(
        BREAKPOINTS.load(Ordering::Relaxed) == before + 2,
        "breakpoints not handled",
    )
}

pub fn timer_ticks() -> TestResult {
    check(cpu::interrupts_enabled(), "interrupts disabled")?;
    // This CPU's own interrupt count (the clock itself runs on the TSC).
    let me = crate::arch::percpu::current();
    let start = me.ticks.load(core::sync::atomic::Ordering::Relaxed);
    let clock = crate::time::ticks();
    let deadline = cpu::rdtsc() + apic::tsc_hz().max(1_000_000) * 2;
    while me.ticks.load(core::sync::atomic::Ordering::Relaxed) < start + 10 {
        if cpu::rdtsc() > deadline {
            return Err("fewer than 10 timer interrupts in 2 s");
        }
        core::hint::spin_loop();
    }
    // The clock moved too: 10 interrupts at TIMER_HZ are 10 ticks of TSC time. Both
    // rates were calibrated in the same short windows of a reference clock, which a
    // loaded host (four test VMs on two cores under TCG) can stretch: a third is
    // allowed between them; a clock that does not follow the timer at all fails.
    check(
        crate::time::ticks() >= clock + 7,
        "the TSC clock did not advance with the timer",
    )
}

pub fn all_cpus_online() -> TestResult {
    let madt = crate::arch::acpi::cpus().map_err(|_| "MADT unreadable")?;
    check(!madt.is_empty(), "MADT lists no CPU")?;
    check(
        percpu::online_count() == madt.len(),
        "not every CPU in the MADT came online",
    )
}

pub fn percpu_through_gs() -> TestResult {
    // The test thread may run anywhere; move it to each CPU and look through GS there.
    for id in (0..percpu::online_count()).rev() {
        crate::task::pin_current(id).map_err(|_| "cannot move to a CPU")?;
        let me = percpu::current();
        check(me.id() == id, "GS points at another CPU's entry")?;
        check(
            me.apic_id() == apic::local_id(),
            "GS entry has another CPU's APIC id",
        )?;
    }
    let me = percpu::current();
    check(me.id() == 0, "not back on CPU 0")?;
    check(
        me.apic_id() == apic::local_id(),
        "GS entry has another CPU's APIC id",
    )?;
    for id in 0..percpu::online_count() {
        let c = percpu::cpu(id).ok_or("missing entry")?;
        check(c.id() == id, "entry id mismatch")?;
        check(
            c.scratch_addr() % 64 == 0,
            "scratch buffer not cache-line aligned",
        )?;
    }
    let sum = percpu::with_scratch(|buf| {
        buf.fill(3);
        buf.iter().map(|&b| b as usize).sum::<usize>()
    });
    check(
        sum == 3 * percpu::SCRATCH_SIZE,
        "scratch buffer is not 1 KiB",
    )?;
    check(
        cpu::interrupts_enabled(),
        "with_scratch left interrupts off",
    )
}

pub fn every_cpu_takes_timer_ticks() -> TestResult {
    let n = percpu::online_count();
    let start: alloc::vec::Vec<u64> = (0..n)
        .map(|i| percpu::cpu(i).map_or(0, |c| c.ticks.load(Ordering::Relaxed)))
        .collect();
    let deadline = cpu::rdtsc() + apic::tsc_hz().max(1_000_000) * 2;
    loop {
        let all = (0..n).all(|i| {
            percpu::cpu(i).map_or(false, |c| c.ticks.load(Ordering::Relaxed) >= start[i] + 3)
        });
        if all {
            return Ok(());
        }
        if cpu::rdtsc() > deadline {
            return Err("some CPU took fewer than 3 timer interrupts in 2 s");
        }
        core::hint::spin_loop();
    }
}

/// Every reference clock QEMU's q35 machine has (the PM timer, the HPET, the PIT)
/// gives the TSC rate the boot found, within 2%. Interrupts are off around each window
/// (a timer interrupt inside it would count as window); without `-icount` the host may
/// deschedule QEMU inside a window, so each clock gets five tries.
pub fn clock_sources_agree() -> TestResult {
    use crate::arch::clock;
    use zen_clock::Source;
    let want = apic::tsc_hz();
    for source in [Source::PmTimer, Source::Hpet, Source::Pit] {
        let mut agreed = false;
        for _ in 0..5 {
            cpu::disable_interrupts();
            let found = clock::measure(source, &|| 0);
            cpu::enable_interrupts();
            // No answer counts as a failed try: a descheduled host thread can make a
            // window outlast the give-up limit.
            let Some(found) = found else { continue };
            if zen_clock::error_ppm(found.tsc_hz, want).abs() < 20_000 {
                agreed = true;
                break;
            }
        }
        check(
            agreed,
            "a reference clock of q35 is missing or disagrees with the boot's TSC rate by 2%",
        )?;
    }
    Ok(())
}
