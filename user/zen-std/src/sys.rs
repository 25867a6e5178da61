//! The system-call instruction, and the calls in their raw form (`u64` in, decoded
//! result out). Safe wrappers live in the other modules.

use crate::Result;
use zen_abi::syscall::{Error, Syscall};

/// Issues system call `nr` with six arguments; the raw return value.
///
/// # Safety
/// Calls that write user memory (read, ps, meminfo, edges, ...) write wherever the
/// pointer says, as long as it is mapped writable in this process; the caller must make
/// sure that does not break Rust's rules (aliasing, validity) for this program.
pub unsafe fn raw(nr: u64, a: [u64; 6]) -> u64 {
    let ret: u64;
    // SAFETY: `syscall` clobbers rcx, r11 and the argument registers (declared; the
    // kernel zeroes the last); it preserves every other register and checks every
    // argument; memory effects are the caller's contract above.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a[0] => _, inlateout("rsi") a[1] => _,
            inlateout("rdx") a[2] => _, inlateout("r10") a[3] => _,
            inlateout("r8") a[4] => _, inlateout("r9") a[5] => _,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A call that only reads the given memory (or none): always safe to make, because
/// the kernel checks every pointer and never writes through one.
pub fn call_reading(call: Syscall, a: [u64; 6]) -> Result<u64> {
    debug_assert!(!writes_memory(call));
    // SAFETY: this call does not write user memory (asserted in debug builds; the
    // public wrappers only pass calls from the reading set).
    Error::from_ret(unsafe { raw(call as u64, a) })
}

/// Calls that write through a pointer argument.
pub const fn writes_memory(call: Syscall) -> bool {
    matches!(
        call,
        Syscall::Read
            | Syscall::Ps
            | Syscall::MemInfo
            | Syscall::Edges
            | Syscall::Programs
            | Syscall::GetArg
            | Syscall::Unmap
            | Syscall::AuditRead
    )
}

/// A call that writes into `buf` (pointer and length are the first two arguments,
/// after `pre` arguments before them).
pub(crate) fn call_into(call: Syscall, pre: &[u64], buf: &mut [u8], post: &[u64]) -> Result<u64> {
    let mut a = [0u64; 6];
    let mut i = 0;
    for v in pre
        .iter()
        .chain(&[buf.as_mut_ptr() as u64, buf.len() as u64])
        .chain(post)
    {
        a[i] = *v;
        i += 1;
    }
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which we borrow
    // mutably for the call; any bytes are valid for `[u8]`.
    Error::from_ret(unsafe { raw(call as u64, a) })
}
