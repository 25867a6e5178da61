//! `syscall`/`sysret`: the system call entry, and the first entry into user mode.
//!
//! On `syscall` the CPU leaves the user stack in place, so the entry swaps GS to the
//! per-CPU area, parks the user rsp there, and moves to the running thread's kernel
//! stack (`PerCpu::syscall_rsp`) before it touches memory. It keeps only what `sysret`
//! needs (user rsp, rip in rcx, rflags in r11) and calls the kernel with the six
//! arguments where the C ABI wants them (r10 moves to rcx) and the call number as the
//! seventh, with interrupts enabled: system calls are preemptible.
//!
//! Nothing else is saved: rbx, rbp and r12-r15 are callee-saved in the C ABI, so the
//! kernel's code keeps them for us, and the argument registers are clobbered by the
//! system-call ABI (docs/abi.md). They are zeroed on the way out, so no kernel value
//! (a pointer, a key byte) leaks into them.
//!
//! `call` and `reply_recv` carry a message in registers (`zen_abi::syscall::CALL_REGS`
//! and r15), so they take a second path from the entry: every register of the
//! message is pushed into a [`CallFrame`] the kernel reads and rewrites, and every
//! register is popped from it on the way out, so the kernel writes each (the reply, or
//! zeros) and none keeps a kernel value.

use ::x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use ::x86_64::registers::rflags::RFlags;
use ::x86_64::structures::gdt::SegmentSelector;
use ::x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu::{SYSCALL_RSP_OFFSET, USER_RSP_OFFSET};

core::arch::global_asm!(
    r#"
    .text
    .global zen_syscall_entry
zen_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push qword ptr gs:[{user_rsp}]
    push rcx
    push r11
    // call (46) and reply_recv (47): the register-message path below.
    lea rcx, [rax - {first_call}]
    cmp rcx, 1
    jbe 3f
    push rax                // the seventh argument: the call number
    mov rcx, r10
    sti
    call {dispatch}
    cli
    add rsp, 8
    pop r11
    pop rcx
    // `sysret` to a non-canonical rip faults in ring 0 on the user's stack (the Intel
    // SYSRET erratum). rcx is at most 2^47 + 1 (the end of a `syscall` at the very
    // top of user space), so bit 47 tells.
    bt rcx, 47
    jc 2f
    pop rsp
    xor edi, edi
    xor esi, esi
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    swapgs
    sysretq
2:
    and rsp, -16
    sti
    call {bad_return}
    ud2

    // The register-message path: a `CallFrame` on the stack (rax lowest), 14 words
    // with the three above, so the call below keeps the ABI's alignment.
3:
    push r15
    push r14
    push r13
    push r12
    push r9
    push r8
    push r10
    push rdx
    push rsi
    push rdi
    push rax
    mov rdi, rsp
    sti
    call {call_dispatch}
    cli
    pop rax
    pop rdi
    pop rsi
    pop rdx
    pop r10
    pop r8
    pop r9
    pop r12
    pop r13
    pop r14
    pop r15
    pop r11
    pop rcx
    bt rcx, 47
    jc 2b
    pop rsp
    swapgs
    sysretq

    // zen_enter_user(rip [rdi], rsp [rsi], arg [rdx]): first entry into ring 3.
    .global zen_enter_user
zen_enter_user:
    cli
    push 0x1b          // user data selector | RPL 3
    push rsi
    push 0x202         // IF set
    push 0x23          // user code selector | RPL 3
    push rdi
    mov rdi, rdx
    xor eax, eax
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor ebp, ebp
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    swapgs
    iretq
    "#,
    user_rsp = const USER_RSP_OFFSET,
    kernel_rsp = const SYSCALL_RSP_OFFSET,
    dispatch = sym syscall_dispatch,
    call_dispatch = sym call_dispatch,
    first_call = const zen_abi::syscall::Syscall::Call as u64,
    bad_return = sym syscall_bad_return,
);

extern "C" {
    fn zen_syscall_entry();
    fn zen_enter_user(rip: u64, rsp: u64, arg: u64) -> !;
}

extern "C" fn syscall_dispatch(
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    nr: u64,
) -> u64 {
    crate::syscall::dispatch(nr, [a0, a1, a2, a3, a4, a5])
}

/// The registers of a call or reply_recv, as the entry pushed them (lowest first).
#[repr(C)]
pub struct CallFrame {
    /// The call number in; the result out (0 or a negated error).
    pub rax: u64,
    /// The token's address in; reply_recv's caller pid out.
    pub rdi: u64,
    /// The message, in `zen_abi::syscall::CALL_REGS` order.
    pub words: [u64; 8],
    /// reply_recv's reply handle, in and out; call leaves it as it came.
    pub r15: u64,
}

const _: () = assert!(
    zen_abi::syscall::Syscall::ReplyRecv as u64 == zen_abi::syscall::Syscall::Call as u64 + 1,
    "the entry's range check takes call and reply_recv as neighbours"
);

extern "C" fn call_dispatch(f: *mut CallFrame) {
    // SAFETY: the entry stub passes the frame it just pushed on this thread's kernel
    // stack; nothing else refers to it, and it outlives this call (the stub pops it
    // after we return, on the same stack, whatever threads ran meanwhile).
    let f = unsafe { &mut *f };
    crate::syscall::dispatch_call(f)
}

/// A `syscall` at the very top of user space: returning would fault in ring 0, so the
/// process ends instead.
extern "C" fn syscall_bad_return() -> ! {
    crate::proc::exit_current(zen_abi::syscall::FAULT_EXIT_CODE)
}

/// Enables `syscall` on the calling CPU. GDT order (kernel code, kernel data, user
/// data, user code) is what `sysret` expects.
pub fn init() {
    let kcode = SegmentSelector::new(1, PrivilegeLevel::Ring0);
    let kdata = SegmentSelector::new(2, PrivilegeLevel::Ring0);
    let udata = SegmentSelector::new(3, PrivilegeLevel::Ring3);
    let ucode = SegmentSelector::new(4, PrivilegeLevel::Ring3);
    Star::write(ucode, udata, kcode, kdata).expect("GDT layout does not suit sysret");
    LStar::write(VirtAddr::new(zen_syscall_entry as *const () as u64));
    // Interrupts, traps, direction and alignment checks off on entry.
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK,
    );
    // SAFETY: enabling SYSCALL/SYSRET only makes the instructions available; LSTAR
    // and STAR were set above.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Drops to user mode at `rip` with stack `rsp` and `rdi = arg`. The thread's kernel
/// stack must already be set (`percpu::set_kernel_stack`) and its address space active.
pub fn enter_user(rip: u64, rsp: u64, arg: u64) -> ! {
    assert!(rip < zen_abi::syscall::USER_END && rsp < zen_abi::syscall::USER_END);
    // SAFETY: both addresses are in the lower half, so the worst user code can do
    // there is fault, which kills only its process; iretq loads the user segments.
    unsafe { zen_enter_user(rip, rsp, arg) }
}
