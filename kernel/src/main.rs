//! Zen OS: a capability-based microkernel.
//!
//! Boot order: the arch entry validates the stub's BootInfo and calls [`kmain`], which
//! brings up the console, this CPU's tables, memory (frames, paging, heap), the
//! framebuffer banner and the timer, then reports ready (or, built with the `ktest`
//! feature, runs the in-kernel tests and exits QEMU with their verdict).
//!
//! Only `arch` may use `unsafe`; everything else is checked by the compiler.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
// Parts of the arch API (paging, probing, heap statistics) are used only by the
// in-kernel tests until the subsystems that need them land.
#![cfg_attr(not(feature = "ktest"), allow(dead_code))]

extern crate alloc;

mod arch;
mod audit;
mod bench;
mod cap;
mod console;
mod dev;
mod edge;
mod fb;
mod ipc;
mod irq;
#[cfg(feature = "ktest")]
mod ktest;
mod mm;
mod policy;
mod proc;
mod prof;
mod sync;
mod syscall;
mod task;
mod time;

use zen_abi::boot::{BootInfo, FirmwareKind, SecureBoot};

/// The stub's BootInfo, for code that runs after boot (tests, later servers).
pub static BOOT_INFO: spin::Once<&'static BootInfo> = spin::Once::new();

/// Timer interrupts per second.
const TIMER_HZ: u32 = 100;

/// The kernel proper; `entry_tsc` is the TSC read at the first instruction.
pub fn kmain(boot: &'static BootInfo, entry_tsc: u64) -> ! {
    let firmware = match FirmwareKind::try_from(boot.firmware) {
        Ok(FirmwareKind::Uefi) => "UEFI",
        Ok(FirmwareKind::Bios) => "BIOS",
        Err(_) => "unknown",
    };
    let secure_boot = match SecureBoot::try_from(boot.secure_boot) {
        Ok(SecureBoot::Enabled) => "on",
        Ok(SecureBoot::Disabled) => "off",
        _ => "unknown",
    };
    BOOT_INFO.call_once(|| boot);
    kprintln!(
        "zen: Zen OS {} starting (firmware {}, secure boot {})",
        env!("CARGO_PKG_VERSION"),
        firmware,
        secure_boot
    );
    let mut marks = Marks::new(entry_tsc);
    arch::init_boot_cpu();
    mm::init(boot);
    marks.mark("k_mm");
    fb::banner(boot, firmware);
    marks.mark("k_banner");
    let acpi = arch::acpi::init(boot.rsdp, arch::memory_map(boot));
    marks.mark("k_acpi");
    let first = boot
        .cmdline()
        .split_whitespace()
        .find_map(|w| zen_clock::Source::parse(w.strip_prefix("clock=")?));
    let cal = arch::apic::init(TIMER_HZ, first);
    marks.mark("k_clock");
    time::start(cal.tsc_hz);
    let (mhz, tenths) = zen_clock::mhz_tenths(cal.tsc_hz);
    match cal.source {
        zen_clock::Source::Cpuid15 | zen_clock::Source::Cpuid16 | zen_clock::Source::Assumed => {
            kprintln!("zen: tsc {}.{} MHz ({})", mhz, tenths, cal.source.name())
        }
        s => kprintln!(
            "zen: tsc {}.{} MHz ({}, median of {} x {} us)",
            mhz,
            tenths,
            s.name(),
            arch::clock::WINDOWS,
            arch::clock::WINDOW_US
        ),
    }
    let smp = acpi.and_then(|_| arch::smp::start_aps(arch::memory_map(boot)));
    arch::apic::start_timer();
    arch::cpu::enable_interrupts();
    match smp {
        Ok(n) => kprintln!("zen: {} CPUs online", n + 1),
        Err(why) => kprintln!("zen: running on one CPU: {}", why),
    }
    marks.mark("k_smp");
    if let Ok(p) = acpi {
        dev::init(&p.ecam, p.dmar.as_ref(), arch::memory_map(boot));
    }
    marks.mark("k_pci");
    audit::init(boot.cmdline());
    let policy = policy::init(proc::archive().and_then(|a| a.data(zen_abi::archive::POLICY)));
    kprintln!(
        "zen: {} MiB free, heap {} KiB, tsc {} MHz, timer {} Hz",
        (mm::free_frames() * 4096) >> 20,
        mm::heap_size() >> 10,
        cal.tsc_hz / 1_000_000,
        TIMER_HZ
    );

    task::init_cpu();

    #[cfg(feature = "ktest")]
    task::spawn(task::Options::new("ktest"), || ktest::run())
        .expect("cannot start the test thread");

    let bench = boot.cmdline().split_whitespace().any(|w| w == "bench");
    if !cfg!(feature = "ktest") && !policy && !bench {
        // Not ready: nothing may run without the rules of who may do what.
        kprintln!("zen: no init without a policy");
    } else if !cfg!(feature = "ktest") {
        task::spawn(task::Options::new("audit"), audit::checkpoints)
            .expect("cannot start the audit thread");
        let ready = arch::cpu::rdtsc();
        kprintln!("zen: ready");
        kprintln!(
            "zen: bench entry_to_ready={} stub_to_ready={} tsc_hz={}{}{}",
            ready - entry_tsc,
            ready.saturating_sub(boot.stub_start_tsc),
            cal.tsc_hz,
            marks,
            StubSteps(boot, entry_tsc)
        );
        if bench {
            task::spawn(task::Options::new("bench"), bench::run)
                .expect("cannot start the benchmarks");
        } else {
            proc::start_init(boot.cmdline());
        }
    }
    task::idle_loop()
}

/// TSC deltas between the steps of the boot, printed on the `zen: bench` line (for
/// `cargo xtask bench --only boot`). Fixed room, so marking allocates nothing.
struct Marks {
    last: u64,
    steps: [(&'static str, u64); 8],
    n: usize,
}

impl Marks {
    fn new(entry_tsc: u64) -> Self {
        Self {
            last: entry_tsc,
            steps: [("", 0); 8],
            n: 0,
        }
    }

    /// Ends the step `name`, which began at the previous mark (or kernel entry).
    fn mark(&mut self, name: &'static str) {
        let now = arch::cpu::rdtsc();
        if let Some(s) = self.steps.get_mut(self.n) {
            *s = (name, now - self.last);
            self.n += 1;
        }
        self.last = now;
    }
}

/// ` name=cycles` for each step, for the end of the `zen: bench` line.
impl core::fmt::Display for Marks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (name, cycles) in &self.steps[..self.n] {
            write!(f, " {name}={cycles}")?;
        }
        Ok(())
    }
}

/// ` name=cycles` for each step the stub measured (`BootInfo::stub_steps`), and
/// `stub_handoff` from its last step to kernel entry. Steps out of order (a stub that
/// measures nothing, or a TSC that went backwards) are left out.
struct StubSteps<'a>(&'a BootInfo, u64);

impl core::fmt::Display for StubSteps<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut last = self.0.stub_start_tsc;
        let ends = self.0.stub_steps.iter().copied().chain([self.1]);
        let names = zen_abi::boot::STUB_STEPS.iter().chain(&["stub_handoff"]);
        for (name, end) in names.zip(ends) {
            if last != 0 && end >= last {
                write!(f, " {name}={}", end - last)?;
                last = end;
            }
        }
        Ok(())
    }
}

/// Where every other CPU ends up once it is online.
pub fn ap_main(_id: usize) -> ! {
    task::init_cpu();
    task::idle_loop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::cpu::disable_interrupts();
    console::emergency();
    kprintln!("\nzen: PANIC: {}", info);
    #[cfg(feature = "ktest")]
    kprintln!("test ... FAILED (panic)");
    arch::cpu::halt_after_fatal()
}
