//! zen-clock: how fast the TSC and the local APIC timer run.
//!
//! The kernel asks the CPU first (CPUID leaf 0x15: crystal clock and TSC ratio; leaf
//! 0x16: base frequency), and otherwise counts TSC cycles over a short window of a
//! reference clock of known rate: the ACPI PM timer (3.579545 MHz, from the FADT), the
//! HPET (its period is in its capabilities register) or, when neither exists, PIT
//! channel 2. This crate is only the arithmetic: the kernel reads the hardware and hands
//! the numbers here, so every bound is tested on the host.
//!
//! Every value comes from something that may lie (a hypervisor's CPUID, firmware
//! tables, a device that does not tick): an implausible rate is `None` and the kernel
//! moves on to the next source. Nothing here panics, overflows or divides by zero, on
//! any input.
#![no_std]
#![deny(unsafe_code)]

/// The ACPI PM timer's rate (ACPI spec, "PM Timer"): fixed on every machine.
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The 8254 PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;
/// TSC rates believed: a CPU slower than 50 MHz or faster than 20 GHz is a lie or a
/// broken measurement, and would make every sleep and timeout wildly wrong.
pub const MIN_TSC_HZ: u64 = 50_000_000;
pub const MAX_TSC_HZ: u64 = 20_000_000_000;
/// The HPET spec bounds the counter period to (0, 100 ns], in femtoseconds.
pub const HPET_MAX_PERIOD_FS: u32 = 100_000_000;

/// Where the TSC rate came from (printed at boot, and in `cargo xtask bench`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// CPUID 0x15: crystal Hz times the TSC/crystal ratio. Exact, no waiting.
    Cpuid15,
    /// CPUID 0x16: the base frequency in MHz. No waiting, 1 MHz resolution.
    Cpuid16,
    PmTimer,
    Hpet,
    Pit,
    /// No clock answered (or each gave an implausible rate): [`ASSUMED_TSC_HZ`].
    Assumed,
}

/// The rate taken when nothing else answers: time runs wrong, but the system runs.
pub const ASSUMED_TSC_HZ: u64 = 2_000_000_000;

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpuid15 => "CPUID 0x15",
            Self::Cpuid16 => "CPUID 0x16",
            Self::PmTimer => "ACPI PM timer",
            Self::Hpet => "HPET",
            Self::Pit => "PIT",
            Self::Assumed => "assumed, no clock answered",
        }
    }

    /// The name the kernel command line uses to force a source (`clock=pm`).
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "cpuid" => Some(Self::Cpuid15),
            "pm" => Some(Self::PmTimer),
            "hpet" => Some(Self::Hpet),
            "pit" => Some(Self::Pit),
            _ => None,
        }
    }
}

/// CPUID's raw answers: leaf 0's maximum basic leaf, leaf 0x15's eax (denominator),
/// ebx (numerator) and ecx (crystal Hz), leaf 0x16's eax (base MHz in bits 15..0).
/// The leaves above `max_leaf` are not read (the caller passes zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpuid {
    pub max_leaf: u32,
    pub leaf15: [u32; 3],
    pub leaf16_eax: u32,
}

fn plausible(hz: u128) -> Option<u64> {
    (MIN_TSC_HZ as u128..=MAX_TSC_HZ as u128)
        .contains(&hz)
        .then_some(hz as u64)
}

/// The TSC rate CPUID gives, if it gives a plausible one: leaf 0x15 when all three of
/// its values are nonzero, else leaf 0x16's base frequency (which equals the TSC rate
/// on the CPUs that report it; leaf 0x15 without a crystal value means the same).
pub fn tsc_from_cpuid(c: &Cpuid) -> Option<(u64, Source)> {
    if c.max_leaf >= 0x15 {
        let [den, num, crystal] = c.leaf15;
        if den != 0 && num != 0 && crystal != 0 {
            let hz = crystal as u128 * num as u128 / den as u128;
            if let Some(hz) = plausible(hz) {
                return Some((hz, Source::Cpuid15));
            }
        }
    }
    if c.max_leaf >= 0x16 {
        let mhz = (c.leaf16_eax & 0xffff) as u128;
        if let Some(hz) = plausible(mhz * 1_000_000) {
            return Some((hz, Source::Cpuid16));
        }
    }
    None
}

/// Ticks a PM timer advanced between two reads: a 24-bit counter unless the FADT says
/// it is 32 bits wide (TMR_VAL_EXT). Wraps once at most, which the short windows used
/// here (a 24-bit wrap is 4.7 s) guarantee.
pub fn pm_ticks(start: u32, end: u32, wide: bool) -> u32 {
    let mask = if wide { u32::MAX } else { 0x00ff_ffff };
    (end & mask).wrapping_sub(start & mask) & mask
}

/// Ticks the PIT advanced between two reads of a channel counting down through all
/// 65,536 values (mode 2 with a reload of 0): wraps once at most (a wrap is 55 ms).
pub fn pit_ticks(start: u16, end: u16) -> u16 {
    start.wrapping_sub(end)
}

/// Reference ticks in a window of `us` microseconds of a clock of `hz` (at least 1).
pub fn ticks_in(us: u64, hz: u64) -> u64 {
    (hz as u128 * us as u128 / 1_000_000).clamp(1, u64::MAX as u128) as u64
}

/// The HPET's rate from its period in femtoseconds, if the period is in the spec's
/// range (a zero or huge period is a broken or lying device).
pub fn hpet_hz(period_fs: u32) -> Option<u64> {
    (1..=HPET_MAX_PERIOD_FS)
        .contains(&period_fs)
        .then(|| 1_000_000_000_000_000 / period_fs as u64)
}

/// The TSC rate from `tsc` cycles counted while a reference clock of `ref_hz`
/// advanced `ref_ticks`, if plausible.
pub fn tsc_rate(tsc: u64, ref_ticks: u64, ref_hz: u64) -> Option<u64> {
    if ref_ticks == 0 {
        return None;
    }
    plausible(tsc as u128 * ref_hz as u128 / ref_ticks as u128)
}

/// APIC timer counts per timer interrupt at `timer_hz`, the APIC timer having counted
/// `apic` while the TSC advanced `tsc` cycles at `tsc_hz`. `None` if the APIC timer did
/// not count, or so fast a tick overflows its 32-bit initial count.
pub fn apic_per_tick(apic: u64, tsc: u64, tsc_hz: u64, timer_hz: u32) -> Option<u32> {
    let den = tsc as u128 * timer_hz as u128;
    if den == 0 {
        return None;
    }
    let per_tick = apic as u128 * tsc_hz as u128 / den;
    u32::try_from(per_tick).ok().filter(|&n| n > 0)
}

/// `hz` in MHz with one decimal, rounded: (whole MHz, tenths).
pub fn mhz_tenths(hz: u64) -> (u64, u64) {
    let tenths = hz.saturating_add(50_000) / 100_000;
    (tenths / 10, tenths % 10)
}

/// How far `found` is from `exact`, in parts per million (signed).
pub fn error_ppm(found: u64, exact: u64) -> i64 {
    if exact == 0 {
        return 0;
    }
    let diff = found as i128 - exact as i128;
    (diff * 1_000_000 / exact as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaf_15_with_a_crystal() {
        // A Skylake-style answer: 24 MHz crystal, ratio 250/2 -> 3 GHz.
        let c = Cpuid {
            max_leaf: 0x16,
            leaf15: [2, 250, 24_000_000],
            leaf16_eax: 2900,
        };
        assert_eq!(tsc_from_cpuid(&c), Some((3_000_000_000, Source::Cpuid15)));
    }

    #[test]
    fn cpuid_falls_back_to_leaf_16_without_a_crystal() {
        let c = Cpuid {
            max_leaf: 0x16,
            leaf15: [2, 200, 0],
            leaf16_eax: 0xabcd_0000 | 2600, // high bits are reserved: ignored
        };
        assert_eq!(tsc_from_cpuid(&c), Some((2_600_000_000, Source::Cpuid16)));
    }

    #[test]
    fn cpuid_leaves_above_the_maximum_are_not_believed() {
        let c = Cpuid {
            max_leaf: 0x14,
            leaf15: [2, 250, 24_000_000],
            leaf16_eax: 2900,
        };
        assert_eq!(tsc_from_cpuid(&c), None);
        let c = Cpuid {
            max_leaf: 0x15,
            leaf15: [0, 250, 24_000_000],
            leaf16_eax: 2900,
        };
        assert_eq!(tsc_from_cpuid(&c), None, "leaf 0x16 is above the maximum");
    }

    #[test]
    fn lying_cpuid_values_are_refused() {
        let all_max = Cpuid {
            max_leaf: u32::MAX,
            leaf15: [1, u32::MAX, u32::MAX], // 1.8e19 Hz: no
            leaf16_eax: u32::MAX,            // 65.5 GHz: no
        };
        assert_eq!(tsc_from_cpuid(&all_max), None);
        let too_slow = Cpuid {
            max_leaf: 0x16,
            leaf15: [u32::MAX, 1, 1],
            leaf16_eax: 1,
        };
        assert_eq!(tsc_from_cpuid(&too_slow), None);
        assert_eq!(tsc_from_cpuid(&Cpuid::default()), None);
    }

    #[test]
    fn pm_timer_wraps_at_24_bits() {
        assert_eq!(pm_ticks(0x00ff_fff0, 0x0000_0010, false), 0x20);
        // A 24-bit timer's reserved top bits are ignored even if set.
        assert_eq!(pm_ticks(0xff00_0005, 0x0000_0009, false), 4);
        assert_eq!(pm_ticks(100, 100, false), 0);
        assert_eq!(pm_ticks(5, 4, false), 0x00ff_ffff);
    }

    #[test]
    fn pm_timer_wraps_at_32_bits_when_wide() {
        assert_eq!(pm_ticks(0xffff_fff0, 0x0000_0010, true), 0x20);
        assert_eq!(pm_ticks(0x00ff_fff0, 0x0100_0010, true), 0x20);
    }

    #[test]
    fn pit_counts_down_and_wraps() {
        assert_eq!(pit_ticks(1000, 700), 300);
        assert_eq!(pit_ticks(10, 0xfff0), 26);
        assert_eq!(pit_ticks(5, 5), 0);
    }

    #[test]
    fn a_pm_timer_window_gives_the_rate() {
        // 250 us of the PM timer is 894 ticks; a 1 GHz TSC counts 249,748 cycles in
        // them (894 / 3.579545 MHz).
        let ticks = ticks_in(250, PM_TIMER_HZ);
        assert_eq!(ticks, 894);
        let tsc = 894 * 1_000_000_000 / PM_TIMER_HZ;
        let hz = tsc_rate(tsc, ticks, PM_TIMER_HZ).unwrap();
        assert!(error_ppm(hz, 1_000_000_000).abs() < 5, "{hz}");
    }

    #[test]
    fn implausible_measurements_are_refused() {
        assert_eq!(tsc_rate(1_000, 0, PM_TIMER_HZ), None);
        assert_eq!(tsc_rate(0, 894, PM_TIMER_HZ), None);
        assert_eq!(tsc_rate(u64::MAX, 1, u64::MAX), None);
        assert_eq!(tsc_rate(10, 894, PM_TIMER_HZ), None); // 40 kHz
    }

    #[test]
    fn hpet_period_bounds() {
        assert_eq!(hpet_hz(0), None);
        assert_eq!(hpet_hz(HPET_MAX_PERIOD_FS + 1), None);
        assert_eq!(hpet_hz(u32::MAX), None);
        assert_eq!(hpet_hz(10_000_000), Some(100_000_000)); // QEMU: 10 ns
        assert_eq!(hpet_hz(69_841_279), Some(14_318_179)); // the classic 14.318 MHz
    }

    #[test]
    fn apic_ticks_per_timer_interrupt() {
        // QEMU: the APIC timer counts at 1 GHz / 16 with divide-by-16.
        let n = apic_per_tick(62_500, 1_000_000, 1_000_000_000, 100);
        assert_eq!(n, Some(625_000));
        assert_eq!(apic_per_tick(0, 1_000_000, 1_000_000_000, 100), None);
        assert_eq!(apic_per_tick(62_500, 0, 1_000_000_000, 100), None);
        assert_eq!(apic_per_tick(62_500, 1_000_000, 1_000_000_000, 0), None);
        // A tick longer than 2^32 counts does not fit the initial-count register.
        assert_eq!(apic_per_tick(u64::MAX, 1, u64::MAX, 1), None);
    }

    #[test]
    fn mhz_and_error_for_the_boot_line() {
        assert_eq!(mhz_tenths(1_000_000_000), (1000, 0));
        assert_eq!(mhz_tenths(1_000_249_999), (1000, 2));
        assert_eq!(mhz_tenths(2_609_960_000), (2610, 0));
        assert_eq!(mhz_tenths(u64::MAX), (u64::MAX / 1_000_000, 5));
        assert_eq!(error_ppm(1_000_250_000, 1_000_000_000), 250);
        assert_eq!(error_ppm(999_000_000, 1_000_000_000), -1000);
        assert_eq!(error_ppm(5, 0), 0);
    }

    #[test]
    fn source_names_parse() {
        assert_eq!(Source::parse("pm"), Some(Source::PmTimer));
        assert_eq!(Source::parse("pit"), Some(Source::Pit));
        assert_eq!(Source::parse("hpet"), Some(Source::Hpet));
        assert_eq!(Source::parse("cpuid"), Some(Source::Cpuid15));
        assert_eq!(Source::parse("tsc"), None);
    }
}
