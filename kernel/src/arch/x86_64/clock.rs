//! Finding the TSC's rate (and, in the same window, the local APIC timer's).
//!
//! In order: CPUID leaves 0x15/0x16 (no waiting at all), else counting TSC cycles over
//! 250 µs windows (three, the median kept) of a reference clock: the ACPI PM timer, the HPET, or PIT channel
//! 2 when the firmware reports neither. Both ends of the window are aligned to a tick
//! of the reference (the count is read until it changes), so the window is a whole
//! number of ticks and the error is only the polling loop's few instructions, however
//! slow the reference ticks. A reference that does not tick, or gives an implausible
//! rate, is skipped (`zen_clock` holds the bounds and the arithmetic, host-tested).
//! The PIT used to be the only clock, over a 10 ms busy wait: most of the boot.

use ::x86_64::instructions::port::Port;
use zen_abi::layout::DIRECT_MAP;
use zen_clock::{Source, PIT_HZ, PM_TIMER_HZ};

use super::cpu::rdtsc;

/// The calibration window: long enough for an error of tens of ppm.
pub const WINDOW_US: u64 = 250;
/// Windows measured, the median kept: an interrupt, an SMI or a host descheduling the
/// (virtual) CPU inside one window makes that one too long, which would make the TSC
/// seem faster and the APIC timer's ticks too long. Seen under a loaded host with TCG:
/// a 100 Hz timer ticking at 65 Hz.
pub const WINDOWS: usize = 3;
/// TSC cycles after which a reference that has not finished its window is given up:
/// 5 ms even at 20 GHz, far more than any real window takes.
const GIVE_UP_TSC: u64 = 100_000_000;

/// What the calibration found.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    pub tsc_hz: u64,
    pub source: Source,
    /// TSC cycles of the window and the APIC timer's count over it (0, 0 if none).
    pub tsc: u64,
    pub apic: u64,
}

fn cpuid(leaf: u32) -> [u32; 4] {
    // SAFETY: CPUID is unprivileged and every leaf may be asked: leaves above the
    // maximum return other leaves' data, which the caller does not read.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid(leaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

fn cpuid_leaves() -> zen_clock::Cpuid {
    let max_leaf = cpuid(0)[0];
    let leaf15 = if max_leaf >= 0x15 {
        let r = cpuid(0x15);
        [r[0], r[1], r[2]]
    } else {
        [0; 3]
    };
    let leaf16_eax = if max_leaf >= 0x16 { cpuid(0x16)[0] } else { 0 };
    zen_clock::Cpuid {
        max_leaf,
        leaf15,
        leaf16_eax,
    }
}

/// [`window`] `WINDOWS` times: the median by TSC cycles (with its APIC count).
fn median_window(
    now: impl Fn() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
    ticks: u64,
    apic_now: &dyn Fn() -> u32,
) -> Option<(u64, u64, u64)> {
    let mut w = [(0, 0, 1); WINDOWS];
    for s in &mut w {
        *s = window(&now, &elapsed, ticks, apic_now)?;
    }
    // By rate (TSC cycles per reference tick), compared without dividing.
    w.sort_unstable_by(|a, b| (a.0 as u128 * b.2 as u128).cmp(&(b.0 as u128 * a.2 as u128)));
    Some(w[WINDOWS / 2])
}

/// Counts TSC cycles and APIC timer counts over at least `ticks` ticks of a reference
/// read by `now` (`elapsed(a, b)`: ticks from reading a to reading b): (TSC cycles,
/// APIC counts, the reference ticks that really passed). The last can exceed `ticks`
/// when one read of the reference takes longer than a tick of it (a PM timer read
/// exits to the hypervisor under KVM), so the rate must be taken from it, not from the
/// ticks asked for. `None` if the reference does not tick or never completes.
fn window(
    now: impl Fn() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
    ticks: u64,
    apic_now: &dyn Fn() -> u32,
) -> Option<(u64, u64, u64)> {
    let limit = rdtsc() + GIVE_UP_TSC;
    let first = now();
    let start = loop {
        let r = now();
        if r != first {
            break r;
        }
        if rdtsc() > limit {
            return None;
        }
    };
    let (tsc0, apic0) = (rdtsc(), apic_now());
    loop {
        let r = now();
        let t = rdtsc();
        let passed = elapsed(start, r);
        if passed >= ticks {
            let apic = apic0.wrapping_sub(apic_now()) as u64; // it counts down
            return Some((t - tsc0, apic, passed));
        }
        if t > limit {
            return None;
        }
    }
}

fn pm_read(port: u16) -> u64 {
    // SAFETY: a read of the PM timer port the FADT names; reading a port has no effect
    // beyond the device's, and the PM timer's read has none.
    unsafe { Port::<u32>::new(port).read() as u64 }
}

fn hpet_reg(base: u64, off: u64) -> *mut u64 {
    (DIRECT_MAP + base + off) as *mut u64
}

/// The HPET's rate, with its counter started if the firmware left it stopped.
fn hpet_start(base: u64) -> Option<u64> {
    // SAFETY: `base` is the HPET's register block from its ACPI table, below 4 GiB
    // (checked by acpi.rs) so inside the direct map; capabilities (0x0) and the
    // general configuration (0x10) are 64-bit registers. Setting ENABLE_CNF only
    // starts the main counter; no timer is armed.
    unsafe {
        let period_fs = (hpet_reg(base, 0).read_volatile() >> 32) as u32;
        let hz = zen_clock::hpet_hz(period_fs)?;
        let cfg = hpet_reg(base, 0x10);
        cfg.write_volatile(cfg.read_volatile() | 1);
        Some(hz)
    }
}

fn hpet_read(base: u64) -> u64 {
    // SAFETY: as in `hpet_start`; the main counter is at 0xf0. Its low 32 bits, which
    // a 32-bit counter also has.
    unsafe { hpet_reg(base, 0xf0).read_volatile() as u32 as u64 }
}

/// Starts PIT channel 2 counting down through all 65,536 values (mode 2, reload 0).
fn pit_start() {
    // SAFETY: ports 0x61/0x42/0x43 are the PIT's channel 2 and its gate; the speaker
    // output stays off. Nothing else in the kernel uses channel 2.
    unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // speaker off, gate high: count
        Port::<u8>::new(0x43).write(0b1011_0100); // channel 2, lo/hi byte, mode 2
        Port::<u8>::new(0x42).write(0);
        Port::<u8>::new(0x42).write(0);
    }
}

fn pit_read() -> u64 {
    // SAFETY: as in `pit_start`: latch channel 2's count, read it low byte first.
    unsafe {
        Port::<u8>::new(0x43).write(0b1000_0000);
        let lo = Port::<u8>::new(0x42).read() as u64;
        let hi = Port::<u8>::new(0x42).read() as u64;
        lo | hi << 8
    }
}

/// One reference clock's answer: the TSC rate and the window's counts.
fn against(
    source: Source,
    ref_hz: u64,
    now: impl Fn() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
    apic_now: &dyn Fn() -> u32,
) -> Option<Calibration> {
    let ticks = zen_clock::ticks_in(WINDOW_US, ref_hz);
    let (tsc, apic, passed) = median_window(now, elapsed, ticks, apic_now)?;
    Some(Calibration {
        tsc_hz: zen_clock::tsc_rate(tsc, passed, ref_hz)?,
        source,
        tsc,
        apic,
    })
}

/// Measures against one reference clock (`Cpuid15` for CPUID), if it exists and
/// answers plausibly. `apic_now` reads the APIC timer's current count.
pub fn measure(source: Source, apic_now: &dyn Fn() -> u32) -> Option<Calibration> {
    let platform = super::acpi::platform().ok();
    match source {
        Source::Cpuid15 | Source::Cpuid16 => {
            let (tsc_hz, source) = zen_clock::tsc_from_cpuid(&cpuid_leaves())?;
            // The APIC timer against the TSC, now that its rate is known.
            let cycles = tsc_hz / 1_000_000 * WINDOW_US;
            let (tsc, apic, _) =
                median_window(rdtsc, |a, b| b.saturating_sub(a), cycles, apic_now)?;
            Some(Calibration {
                tsc_hz,
                source,
                tsc,
                apic,
            })
        }
        Source::PmTimer => {
            let (port, wide) = platform?.pm_timer?;
            let elapsed = |a: u64, b: u64| zen_clock::pm_ticks(a as u32, b as u32, wide) as u64;
            against(source, PM_TIMER_HZ, || pm_read(port), elapsed, apic_now)
        }
        Source::Hpet => {
            let base = platform?.hpet?;
            let hz = hpet_start(base)?;
            let elapsed = |a: u64, b: u64| (b as u32).wrapping_sub(a as u32) as u64;
            against(source, hz, || hpet_read(base), elapsed, apic_now)
        }
        Source::Pit => {
            pit_start();
            let elapsed = |a: u64, b: u64| zen_clock::pit_ticks(a as u16, b as u16) as u64;
            against(source, PIT_HZ, pit_read, elapsed, apic_now)
        }
        Source::Assumed => None,
    }
}

/// The first source that answers, `first` (from the command line's `clock=`) tried
/// before the usual order; never fails (the last resort is an assumed rate).
pub fn calibrate(first: Option<Source>, apic_now: &dyn Fn() -> u32) -> Calibration {
    let order = [Source::Cpuid15, Source::PmTimer, Source::Hpet, Source::Pit];
    first
        .into_iter()
        .chain(order)
        .find_map(|s| measure(s, apic_now))
        .unwrap_or(Calibration {
            tsc_hz: zen_clock::ASSUMED_TSC_HZ,
            source: Source::Assumed,
            tsc: 0,
            apic: 0,
        })
}
