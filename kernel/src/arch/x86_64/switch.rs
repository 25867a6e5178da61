//! The register-only context switch (brief item 9).
//!
//! A thread switch is a function call: the System V ABI lets the callee clobber every
//! register except rbx, rbp, r12-r15 and rsp, so those six plus the stack pointer are
//! all there is to save. No FPU/SSE state here: the kernel is built without SSE, and
//! a user thread's x87/SSE registers are switched just before, by `fpu::switch`.
//!
//! A new thread's stack is laid out as if it had called `zen_switch` itself, with
//! [`zen_thread_start`] as the return address and the entry function and its argument
//! in r12/r13.

core::arch::global_asm!(
    r#"
    .text
    .global zen_switch
// zen_switch(save: *mut u64 [rdi], next_rsp: u64 [rsi])
zen_switch:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    .global zen_thread_start
zen_thread_start:
    mov rdi, r13
    call r12
    ud2
    "#
);

extern "C" {
    fn zen_switch(save: *mut u64, next_rsp: u64);
    fn zen_thread_start();
}

/// Saved registers pushed by `zen_switch`, lowest address first.
const SAVED_REGS: usize = 6;

/// Prepares a fresh kernel stack so that switching to it calls `entry(arg)`.
/// Returns the initial saved stack pointer.
pub fn init_stack(stack: &mut [u64], entry: extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let n = stack.len();
    assert!(n >= SAVED_REGS + 3);
    let base = stack.as_ptr() as usize;
    // After `ret` pops the start address rsp is at index `end`; `call r12` then pushes
    // one word, and the ABI wants rsp + 8 to be 16-byte aligned at entry, so the
    // address of index `end` must be a multiple of 16.
    let end = if (base + n * 8).is_multiple_of(16) {
        n
    } else {
        n - 1
    };
    let frame = end - SAVED_REGS - 1;
    // In memory from low to high: r15, r14, r13, r12, rbp, rbx, return address.
    stack[frame..end].copy_from_slice(&[
        0,
        0,
        arg,
        entry as usize as u64,
        0,
        0,
        zen_thread_start as *const () as u64,
    ]);
    (base + frame * 8) as u64
}

/// Switches away from `cur`, which is handed to `slot` (the CPU's "previous thread"
/// slot) instead of staying on our stack: a thread that never resumes (it exited)
/// then leaves no reference behind, and the next thread's `finish_switch` drops it.
/// `save` picks the field that receives the stack pointer.
pub fn switch_away<T: Send + Sync>(
    slot: &super::cpulocal::CpuArc<T>,
    cur: alloc::sync::Arc<T>,
    save: fn(&T) -> &core::sync::atomic::AtomicU64,
    next_rsp: u64,
) {
    let ptr = save(&cur).as_ptr();
    // The slot is empty (the last switch's `finish_switch` took what was there).
    drop(slot.replace(Some(cur)));
    // SAFETY: `slot` keeps the Arc (so `ptr`'s target) alive until the next thread
    // takes it in `finish_switch`, which runs after zen_switch has stored rsp; the
    // rest is as for `switch`.
    unsafe { zen_switch(ptr, next_rsp) }
}
