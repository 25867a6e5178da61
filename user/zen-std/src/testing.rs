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

/// What the registers hold after a system call made with known values in them (see
/// [`registers_across`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterCall {
    /// rbx, rbp, r12, r13, r14, r15: set to [`KEEP`] before the call, must be kept.
    pub kept: [u64; 6],
    /// rdi, rsi, rdx, r10, r8, r9: the arguments; the kernel zeroes them.
    pub args: [u64; 6],
}

/// The values [`registers_across`] puts in the callee-saved registers.
pub const KEEP: [u64; 6] = [
    0x1111_2222_3333_4444,
    0x5555_6666_7777_8888,
    0x9999_aaaa_bbbb_cccc,
    0xdddd_eeee_ffff_0001,
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
];

/// Makes system call `nr` with arguments `a` and [`KEEP`] in rbx, rbp and r12-r15,
/// and reports what all twelve registers hold afterwards: the ABI test of docs/abi.md
/// (the kept ones unchanged, the argument registers zeroed, no kernel value left).
pub fn registers_across(nr: u64, a: [u64; 6]) -> AfterCall {
    let mut out = [0u64; 12];
    // SAFETY: the block saves rbx, rbp and r12-r15 on the stack and restores them, so
    // it changes no register beyond those declared (rax, rcx, r11, the argument
    // registers, and r12-r15 once more so that `out` is not given one of them).
    // `out` is 12 valid words.
    // The call itself is as `raw_syscall`: only calls that write no memory of ours
    // may be passed (the tests pass getpid and an unknown number).
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push {out}",
            "mov rbx, {k0}",
            "mov rbp, {k1}",
            "mov r12, {k2}",
            "mov r13, {k3}",
            "mov r14, {k4}",
            "mov r15, {k5}",
            "syscall",
            "xchg rax, [rsp]",
            "mov [rax], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], r12",
            "mov [rax + 24], r13",
            "mov [rax + 32], r14",
            "mov [rax + 40], r15",
            "mov [rax + 48], rdi",
            "mov [rax + 56], rsi",
            "mov [rax + 64], rdx",
            "mov [rax + 72], r10",
            "mov [rax + 80], r8",
            "mov [rax + 88], r9",
            "pop rax",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbp",
            "pop rbx",
            out = in(reg) out.as_mut_ptr(),
            k0 = const KEEP[0],
            k1 = const KEEP[1],
            k2 = const KEEP[2],
            k3 = const KEEP[3],
            k4 = const KEEP[4],
            k5 = const KEEP[5],
            inout("rax") nr => _,
            inout("rdi") a[0] => _,
            inout("rsi") a[1] => _,
            inout("rdx") a[2] => _,
            inout("r10") a[3] => _,
            inout("r8") a[4] => _,
            inout("r9") a[5] => _,
            lateout("rcx") _,
            lateout("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    let mut kept = [0; 6];
    let mut args = [0; 6];
    kept.copy_from_slice(&out[..6]);
    args.copy_from_slice(&out[6..]);
    AfterCall { kept, args }
}
