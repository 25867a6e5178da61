//! The local APIC (xAPIC, memory-mapped) and its timer.
//!
//! The legacy 8259 PICs are masked: every interrupt source goes through the APIC.
//! The timer's rate is measured once, by the boot CPU, in the same window that finds
//! the TSC's (`clock.rs`), and reused by the other CPUs.

use ::x86_64::instructions::port::Port;
use ::x86_64::registers::model_specific::Msr;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::layout::DIRECT_MAP;

use super::interrupts::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xb0;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

static BASE: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// APIC timer count per tick, measured by the boot CPU and reused by the others.
static PER_TICK: AtomicU64 = AtomicU64::new(0);
/// The timer interrupts per second `init` was asked for.
static RATE_HZ: AtomicU64 = AtomicU64::new(0);

fn reg(off: u64) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) + off) as *mut u32
}

fn read(off: u64) -> u32 {
    // SAFETY: BASE is the direct-map address of this CPU's APIC page (set in `init`
    // before any access); APIC registers are 32-bit, 16-byte aligned MMIO.
    unsafe { reg(off).read_volatile() }
}

fn write(off: u64, v: u32) {
    // SAFETY: as in `read`.
    unsafe { reg(off).write_volatile(v) }
}

/// Signals end of interrupt to the local APIC.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// TSC ticks per second, measured during `init` (0 before).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

fn mask_pics() {
    // SAFETY: writing 0xff to the 8259s' data ports masks every legacy IRQ line.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
}

/// Enables this CPU's local APIC and starts its timer at `hz` interrupts per second,
/// having found the TSC's rate (trying the clock `first` first, if given).
pub fn init(hz: u32, first: Option<zen_clock::Source>) -> super::clock::Calibration {
    mask_pics();
    let msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU with an APIC (all of them).
    let base = unsafe { msr.read() } & 0xf_ffff_f000;
    BASE.store(DIRECT_MAP + base, Ordering::Relaxed);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32); // software enable
    write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);

    // The APIC timer counts down from the top while the TSC's rate is measured.
    write(REG_TIMER_INIT, u32::MAX);
    let cal = super::clock::calibrate(first, &|| read(REG_TIMER_CURRENT));
    TSC_HZ.store(cal.tsc_hz, Ordering::Relaxed);
    // Without a count (no window, or the timer did not move) a guess: a 100 MHz bus.
    let per_tick = zen_clock::apic_per_tick(cal.apic, cal.tsc, cal.tsc_hz, hz)
        .unwrap_or(100_000_000 / 16 / hz.max(1));
    PER_TICK.store(per_tick as u64, Ordering::Relaxed);
    RATE_HZ.store(hz as u64, Ordering::Relaxed);
    write(REG_TIMER_INIT, 0); // stopped until `start_timer`
    cal
}

/// Arms this CPU's timer, one-shot, to expire in about `us` microseconds, with
/// interrupts off (the tick is taken, harmlessly early, when they are enabled).
///
/// For starting other CPUs under QEMU's `-icount`: while a CPU handles its INIT, QEMU
/// (running the CPUs in turn in one thread) moves virtual time on to the next timer
/// deadline, which was 10 ms (the periodic tick) or 24 ms (firmware timers) away, the
/// whole cost of a second CPU in the boot figures. A deadline this close bounds it.
/// On hardware it is one early tick.
pub fn arm_deadline_us(us: u64) {
    let per_us = PER_TICK.load(Ordering::Relaxed) * RATE_HZ.load(Ordering::Relaxed) / 1_000_000;
    write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    write(
        REG_TIMER_INIT,
        (per_us.max(1) * us).min(u32::MAX as u64) as u32,
    );
}

/// Starts the boot CPU's periodic timer at the rate [`init`] measured (after the other
/// CPUs are started, so [`arm_deadline_us`] does not have to stop it).
pub fn start_timer() {
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, PER_TICK.load(Ordering::Relaxed) as u32);
}

/// Enables the calling (application) CPU's local APIC with the boot CPU's timer
/// calibration. All CPUs' APICs sit at the same physical address.
pub fn init_ap() {
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_TIMER_DIVIDE, 0b0011);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, PER_TICK.load(Ordering::Relaxed) as u32);
}

/// The calling CPU's APIC id from CPUID, usable before the APIC is mapped.
pub fn local_id_early() -> u32 {
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid(1) };
    r.ebx >> 24
}

/// The calling CPU's APIC id from its APIC.
pub fn local_id() -> u32 {
    read(REG_ID) >> 24
}

fn send_ipi(apic_id: u32, low: u32) {
    // Interrupts off across the two ICR writes: an interrupt handler that sends an
    // IPI in between (a wake-up's reschedule kick) would rewrite ICR_HIGH and send
    // ours to its CPU instead.
    let were = super::cpu::interrupts_enabled();
    super::cpu::disable_interrupts();
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, low);
    // Wait for the delivery status bit to clear.
    for _ in 0..1_000_000 {
        if read(REG_ICR_LOW) & (1 << 12) == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    if were {
        super::cpu::enable_interrupts();
    }
}

/// A fixed-delivery interrupt with `vector` to one CPU.
pub fn send_fixed(apic_id: u32, vector: u8) {
    send_ipi(apic_id, vector as u32);
}

/// INIT IPI (level assert) to one CPU.
pub fn send_init(apic_id: u32) {
    send_ipi(apic_id, 0x0000_4500);
}

/// Startup IPI: the CPU starts in real mode at physical `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) {
    send_ipi(apic_id, 0x0000_4600 | page as u32);
}

/// Busy-waits about `us` microseconds on the TSC, without PAUSE: used after an INIT
/// IPI, when the target CPU is being reset, and QEMU (which runs the CPUs in turn in one
/// thread) answers a PAUSE then by jumping virtual time to its next timer deadline, up
/// to 10 ms later, under `-icount`.
pub fn delay_us(us: u64) {
    let hz = tsc_hz().max(1_000_000);
    let end = super::cpu::rdtsc() + hz / 1_000_000 * us;
    while super::cpu::rdtsc() < end {}
}

/// Busy-waits until `done` or about `us` microseconds on the TSC; whether `done`.
pub fn wait_us(us: u64, done: impl Fn() -> bool) -> bool {
    let hz = tsc_hz().max(1_000_000);
    let end = super::cpu::rdtsc() + hz / 1_000_000 * us;
    while super::cpu::rdtsc() < end {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}
