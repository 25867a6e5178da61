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
mod bench;
mod cap;
mod console;
mod edge;
mod fb;
mod ipc;
#[cfg(feature = "ktest")]
mod ktest;
mod mm;
mod proc;
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
    arch::init_boot_cpu();
    mm::init(boot);
    fb::banner(boot, firmware);
    arch::apic::init(TIMER_HZ);
    time::start(arch::apic::tsc_hz());
    arch::cpu::enable_interrupts();
    match arch::smp::start_aps(boot.rsdp, arch::memory_map(boot)) {
        Ok(n) => kprintln!("zen: {} CPUs online", n + 1),
        Err(why) => kprintln!("zen: running on one CPU: {}", why),
    }
    kprintln!(
        "zen: {} MiB free, heap {} KiB, tsc {} MHz, timer {} Hz",
        (mm::free_frames() * 4096) >> 20,
        mm::heap_size() >> 10,
        arch::apic::tsc_hz() / 1_000_000,
        TIMER_HZ
    );

    task::init_cpu();

    #[cfg(feature = "ktest")]
    task::spawn(task::Options::new("ktest"), || ktest::run())
        .expect("cannot start the test thread");

    if !cfg!(feature = "ktest") {
        let ready = arch::cpu::rdtsc();
        kprintln!("zen: ready");
        kprintln!(
            "zen: bench entry_to_ready={} stub_to_ready={}",
            ready - entry_tsc,
            ready.saturating_sub(boot.stub_start_tsc)
        );
        if boot.cmdline().split_whitespace().any(|w| w == "bench") {
            task::spawn(task::Options::new("bench"), bench::run)
                .expect("cannot start the benchmarks");
        } else {
            proc::start_init(boot.cmdline());
        }
    }
    task::idle_loop()
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
