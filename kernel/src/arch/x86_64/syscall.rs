//! `syscall`/`sysret`: the system call entry, and the first entry into user mode.
//!
//! On `syscall` the CPU leaves the user stack in place, so the entry swaps GS to the
//! per-CPU area, parks the user rsp there, and moves to the running thread's kernel
//! stack (`PerCpu::syscall_rsp`) before it touches memory. It saves a [`SyscallFrame`]
//! and calls the kernel with interrupts enabled: system calls are preemptible.

use ::x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use ::x86_64::registers::rflags::RFlags;
use ::x86_64::structures::gdt::SegmentSelector;
use ::x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu::{SYSCALL_RSP_OFFSET, USER_RSP_OFFSET};

/// Registers of a system call, as saved on the kernel stack.
#[repr(C)]
#[derive(Debug)]
pub struct SyscallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Call number in, result out.
    pub rax: u64,
    pub rflags: u64,
    pub rip: u64,
    pub rsp: u64,
}

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
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    sti
    call {dispatch}
    cli
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    pop r11
    pop rcx
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
);

extern "C" {
    fn zen_syscall_entry();
    fn zen_enter_user(rip: u64, rsp: u64, arg: u64) -> !;
}

extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) {
    frame.rax = crate::syscall::dispatch(
        frame.rax,
        [
            frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
        ],
    );
    // `sysret` to a non-canonical address faults in ring 0 on the user's stack (the
    // Intel SYSRET erratum): a `syscall` at the very top of user space ends the process.
    if frame.rip >= zen_abi::syscall::USER_END {
        crate::proc::exit_current(zen_abi::syscall::FAULT_EXIT_CODE);
    }
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
