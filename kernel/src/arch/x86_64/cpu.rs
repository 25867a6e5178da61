//! Small CPU operations: halting, interrupt flag, time stamp counter, QEMU exit.

use core::arch::asm;

/// Enables interrupts and halts until the next one, as one step: `sti` holds
/// interrupts off for one more instruction, so none can slip in between and leave
/// the CPU halted with its wake-up already handled.
pub fn enable_interrupts_and_halt() {
    // SAFETY: `hlt` only waits for an interrupt and touches no memory; enabling
    // interrupts is what the idle loop is for.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) }
}

/// Stops this CPU for good: interrupts off, then halt forever (an NMI would only
/// return to the loop).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting cannot violate memory safety.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

/// Enables interrupts on this CPU.
pub fn enable_interrupts() {
    ::x86_64::instructions::interrupts::enable();
}

/// Disables interrupts on this CPU.
pub fn disable_interrupts() {
    ::x86_64::instructions::interrupts::disable();
}

/// Whether interrupts are enabled on this CPU.
pub fn interrupts_enabled() -> bool {
    ::x86_64::instructions::interrupts::are_enabled()
}

/// Reads the time stamp counter. Under QEMU with `-icount shift=0` it advances by
/// one per guest instruction, which makes boot figures exactly repeatable.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` reads a counter into eax/edx; no memory is touched.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Raises a breakpoint exception (#BP); the handler counts it and resumes.
pub fn breakpoint() {
    ::x86_64::instructions::interrupts::int3();
}

/// Exit codes written to QEMU's isa-debug-exit device (port 0xf4). QEMU exits with
/// status `(code << 1) | 1`: 33 for success, 35 for failure.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum QemuExit {
    Success = 0x10,
    Failure = 0x11,
}

/// Ends the QEMU run with `code` (test mode). On real hardware the port write does
/// nothing, so this halts afterwards.
pub fn qemu_exit(code: QemuExit) -> ! {
    let mut port = ::x86_64::instructions::port::Port::<u32>::new(0xf4);
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit when configured, unused otherwise.
    unsafe { port.write(code as u32) };
    halt_forever()
}

/// After a fatal error: in test mode end the QEMU run as failed, else halt.
pub fn halt_after_fatal() -> ! {
    if cfg!(feature = "ktest") {
        qemu_exit(QemuExit::Failure)
    }
    halt_forever()
}

/// 32 random bytes for a per-boot key, and whether they came from the hardware
/// (without RDRAND the TSC stands in: a poor seed, which callers must say).
pub fn random_seed() -> ([u8; 32], bool) {
    let mut k = [0u8; 32];
    let mut hw = true;
    for chunk in k.chunks_mut(8) {
        let v = random_u64().unwrap_or_else(|| {
            hw = false;
            rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    (k, hw)
}

/// A hardware random number (RDSEED, else RDRAND), or `None` if the CPU has neither
/// or they keep failing.
pub fn random_u64() -> Option<u64> {
    for _ in 0..32 {
        if let Some(v) = ::x86_64::instructions::random::RdRand::new().and_then(|r| r.get_u64()) {
            return Some(v);
        }
    }
    None
}
