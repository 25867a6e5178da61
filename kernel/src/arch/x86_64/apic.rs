//! The local APIC (xAPIC, memory-mapped) and its timer.
//!
//! The legacy 8259 PICs are masked: every interrupt source goes through the APIC.
//! The timer is calibrated once against PIT channel 2 (a fixed 1.193182 MHz clock
//! that needs no interrupts), which also gives the TSC frequency.

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

/// Busy-waits `ms` milliseconds (at most 50) on PIT channel 2.
fn pit_wait(ms: u32) {
    let count = 1_193_182 * ms.min(50) / 1000;
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x61/0x42/0x43 are the PIT's channel 2 and its gate; the speaker
    // output stays off. Nothing else in the kernel uses channel 2.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) & !0x01); // gate low: hold the counter
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        gate.write((g & !0x02) | 0x01); // gate high: start counting
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
}

/// Enables this CPU's local APIC and starts its timer at `hz` interrupts per second.
pub fn init(hz: u32) {
    mask_pics();
    let msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU with an APIC (all of them).
    let base = unsafe { msr.read() } & 0xf_ffff_f000;
    BASE.store(DIRECT_MAP + base, Ordering::Relaxed);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32); // software enable
    write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);

    // Count APIC ticks and TSC ticks over 10 ms of the PIT.
    write(REG_TIMER_INIT, u32::MAX);
    let tsc0 = super::cpu::rdtsc();
    pit_wait(10);
    let apic_ticks = u32::MAX - read(REG_TIMER_CURRENT);
    let tsc1 = super::cpu::rdtsc();
    TSC_HZ.store((tsc1 - tsc0) * 100, Ordering::Relaxed);

    let per_tick = (apic_ticks as u64 * 100 / hz as u64).max(1);
    PER_TICK.store(per_tick, Ordering::Relaxed);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, per_tick as u32);
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

/// Busy-waits about `us` microseconds on the TSC.
pub fn delay_us(us: u64) {
    let hz = tsc_hz().max(1_000_000);
    let end = super::cpu::rdtsc() + hz / 1_000_000 * us;
    while super::cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}
