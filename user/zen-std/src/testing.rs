//! For test programs only: raw system calls with arbitrary arguments, and deliberate
//! faults. Ordinary programs have no use for these.

use crate::sys;

/// A system call with any number and arguments, as a hostile program would make it;
/// the raw return value. Only for calls whose pointer arguments the caller makes
/// invalid (null, unmapped, kernel, read-only) or points at memory it owns
/// exclusively: see [`sys::raw`].
pub fn raw_syscall(nr: u64, a: [u64; 6]) -> u64 {
    // SAFETY: callers are test programs passing pointers the kernel must refuse, or
    // buffers they own; see the module documentation.
    unsafe { sys::raw(nr, a) }
}

/// Ways to crash this process on purpose.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Write to address 0.
    NullWrite,
    /// Read a kernel address.
    KernelRead,
    /// Execute a privileged instruction (`hlt`): #GP.
    Privileged,
    /// An undefined instruction: #UD.
    Undefined,
    /// Write into this program's own code (read-only): protection fault.
    WriteCode,
}

/// Commits the fault. Returns only if the kernel failed to stop the process.
pub fn fault(f: Fault) {
    // SAFETY: each of these is meant to fault; the kernel kills the process before any
    // of them has an effect.
    unsafe {
        match f {
            Fault::NullWrite => core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1),
            Fault::KernelRead => {
                core::ptr::read_volatile(0xffff_ffff_8000_0000u64 as *const u64);
            }
            Fault::Privileged => core::arch::asm!("hlt"),
            Fault::Undefined => core::arch::asm!("ud2"),
            Fault::WriteCode => core::ptr::write_volatile(fault as *const () as *mut u8, 0xc3),
        }
    }
}

/// Reads the 32-bit word at `addr` of this process's memory: a page fault (and the
/// process's end) if it is not mapped readable. For tests of what the kernel maps.
pub fn probe_read(addr: u64) -> u32 {
    // SAFETY: an atomic load from any address either reads a word the process may
    // read (mapped memory; atomics make a concurrent writer no data race) or faults
    // and ends the process, which is what the test wants to see. Callers pass
    // 4-aligned addresses of shared pages, never Rust-owned objects.
    unsafe {
        (*(addr as *const core::sync::atomic::AtomicU32))
            .load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// Writes the 32-bit word at `addr` without changing it (a compare-exchange of the
/// value with itself: `lock cmpxchg` always writes, and unlike an `or 0` the compiler
/// cannot turn it into a load): a page fault if the page is not mapped writable.
pub fn probe_write(addr: u64) {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    // SAFETY: as for `probe_read`; the word keeps its value (or, if a peer changed it
    // between the load and the exchange, the exchange fails and writes back what it
    // found), so a page the process may write (a ring it shares) is not disturbed.
    unsafe {
        let w = &*(addr as *const AtomicU32);
        let v = w.load(Relaxed);
        let _ = w.compare_exchange(v, v, Relaxed, Relaxed);
    }
}

/// Stores `value` in the 32-bit word at `addr` (a page fault if not writable): lets a
/// test play a peer that moves a ring counter behind the library's back.
pub fn poke_u32(addr: u64, value: u32) {
    // SAFETY: as for `probe_write`: an atomic store to a shared page the process may
    // write, or a fault; callers pass the 4-aligned address of a ring word.
    unsafe {
        (*(addr as *const core::sync::atomic::AtomicU32))
            .store(value, core::sync::atomic::Ordering::Release)
    }
}
