//! The IDT, the interrupt entry stubs and the dispatcher.
//!
//! All 256 vectors get a 16-byte stub (generated with `.rept`) that pushes a dummy
//! error code where the CPU does not push one, then the vector, then jumps to a common
//! routine that saves every general register into a [`TrapFrame`] and calls
//! [`dispatch`]. One frame layout for everything keeps the handler code in Rust and
//! lets a handler change the interrupted state (the fixup mechanism below).
//!
//! Fixups: a kernel instruction that may fault on purpose (probing memory now,
//! copying from user space later) is listed in the `.fixup_table` section with the
//! address to resume at. A page fault at such an instruction resumes there with
//! `rax = u64::MAX` instead of being fatal, the way Linux's exception tables work.

use ::x86_64::instructions::tables::lidt;
use ::x86_64::structures::DescriptorTablePointer;
use ::x86_64::VirtAddr;
use core::sync::atomic::{AtomicU64, Ordering};

use super::gdt::{IST_DOUBLE_FAULT, IST_NMI};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 32;
/// Vector of the reschedule IPI.
pub const RESCHED_VECTOR: u8 = 0x40;
/// Vector the local APIC uses for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The registers saved on every interrupt, in stack order.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .balign 16
    .global zen_isr_stubs
zen_isr_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    push vector
    jmp zen_isr_common
    .set vector, vector + 1
    .endr

zen_isr_common:
    // From user mode (CS RPL 3 in the frame): switch to the kernel's GS.
    test qword ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    test qword ptr [rsp + 8], 3
    jz 2f
    swapgs
2:
    iretq

    // u64 zen_probe_read(addr): the byte at addr, or u64::MAX if reading it faults.
    .global zen_probe_read
zen_probe_read:
    xor eax, eax
zen_probe_read_insn:
    movzx eax, byte ptr [rdi]
zen_probe_read_fixup:
    ret

    .section .fixup_table, "a"
    .quad zen_probe_read_insn, zen_probe_read_fixup
    .section .text
    "#,
    dispatch = sym dispatch,
);

extern "C" {
    static zen_isr_stubs: u8;
    static __fixup_start: [u64; 0];
    static __fixup_end: [u64; 0];
    fn zen_probe_read(addr: u64) -> u64;
}

/// One IDT gate descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    _zero: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: spin::Once<Idt> = spin::Once::new();

/// Builds the IDT (once; all CPUs share it) and loads it on the calling CPU.
pub fn init() {
    let idt = IDT.call_once(|| {
        let base = (&raw const zen_isr_stubs) as u64;
        let cs = <::x86_64::instructions::segmentation::CS as ::x86_64::instructions::segmentation::Segment>::get_reg().0;
        let mut gates = [Gate { offset_lo: 0, selector: 0, ist: 0, attr: 0, offset_mid: 0, offset_hi: 0, _zero: 0 }; 256];
        for (v, g) in gates.iter_mut().enumerate() {
            let addr = base + 16 * v as u64;
            let ist = match v {
                8 => IST_DOUBLE_FAULT + 1,
                2 => IST_NMI + 1,
                _ => 0,
            };
            *g = Gate {
                offset_lo: addr as u16,
                selector: cs,
                ist: ist as u8,
                attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
                offset_mid: (addr >> 16) as u16,
                offset_hi: (addr >> 32) as u32,
                _zero: 0,
            };
        }
        Idt(gates)
    });
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT lives in a static that is never modified after this point, and
    // every gate points at a stub in zen_isr_stubs.
    unsafe { lidt(&ptr) };
}

/// Breakpoints handled since boot.
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
/// Spurious interrupts seen since boot.
pub static SPURIOUS: AtomicU64 = AtomicU64::new(0);
/// Page faults resolved through the fixup table since boot.
pub static FIXED_FAULTS: AtomicU64 = AtomicU64::new(0);

/// Reads one byte at `addr`, returning `None` instead of faulting if it is not mapped.
pub fn probe_read(addr: u64) -> Option<u8> {
    // SAFETY: zen_probe_read only reads one byte; a fault on that read is resolved by
    // the fixup table (see `fixup`), so an unmapped address cannot hurt the kernel.
    let v = unsafe { zen_probe_read(addr) };
    u8::try_from(v).ok()
}

fn fixup(rip: u64) -> Option<u64> {
    // SAFETY: the linker script brackets the .fixup_table section with these symbols;
    // it holds (instruction, resume) pairs of u64 and is read-only.
    let table = unsafe {
        let start = (&raw const __fixup_start) as *const u64;
        let end = (&raw const __fixup_end) as *const u64;
        core::slice::from_raw_parts(start, (end as usize - start as usize) / 8)
    };
    table.chunks_exact(2).find(|e| e[0] == rip).map(|e| e[1])
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

extern "C" fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector >= 32 {
        crate::task::idle_ends();
    }
    match vector {
        3 => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        }
        0..=31 if frame.cs & 3 == 3 => {
            // A fault in user mode: the process dies, the kernel carries on.
            let cr2 = ::x86_64::registers::control::Cr2::read_raw();
            crate::proc::user_fault(vector, frame.error, frame.rip, cr2);
        }
        14 => {
            if let Some(resume) = fixup(frame.rip) {
                FIXED_FAULTS.fetch_add(1, Ordering::Relaxed);
                frame.rip = resume;
                frame.rax = u64::MAX;
            } else {
                fatal(frame);
            }
        }
        0..=31 => fatal(frame),
        TIMER_VECTOR => {
            let me = super::percpu::current();
            me.ticks.fetch_add(1, Ordering::Relaxed);
            super::apic::eoi();
            crate::console::tick();
            crate::task::on_tick();
        }
        RESCHED_VECTOR => {
            super::apic::eoi();
            crate::task::on_resched();
        }
        super::tlb::TLB_VECTOR => {
            super::tlb::on_ipi();
            super::apic::eoi();
        }
        super::vtd::FAULT_VECTOR => {
            super::vtd::on_fault();
            super::apic::eoi();
        }
        crate::irq::FIRST_VECTOR..=crate::irq::LAST_VECTOR => {
            crate::irq::on_vector(vector);
            super::apic::eoi();
        }
        SPURIOUS_VECTOR => {
            // No EOI for spurious interrupts (SDM 10.9).
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
            crate::edge::report_detail(zen_edge::EdgeKind::SpuriousInterrupt, vector as u16, 0);
        }
        _ => {
            crate::kprintln!("zen: unexpected interrupt, vector {}", vector);
            crate::edge::report_detail(zen_edge::EdgeKind::SpuriousInterrupt, vector as u16, 0);
            super::apic::eoi();
        }
    }
    if frame.cs & 3 == 3 {
        // Back to user mode: a process killed meanwhile ends here instead.
        crate::proc::check_killed();
    }
}

/// Reports an exception the kernel cannot handle, then stops (in test mode, QEMU
/// exits with failure so the harness sees it at once).
fn fatal(frame: &TrapFrame) -> ! {
    let v = frame.vector as usize;
    let cr2 = ::x86_64::registers::control::Cr2::read_raw();
    crate::console::emergency();
    crate::kprintln!(
        "\nzen: EXCEPTION {} (vector {}) error={:#x} rip={:#x} rsp={:#x}{}",
        NAMES.get(v).copied().unwrap_or("?"),
        v,
        frame.error,
        frame.rip,
        frame.rsp,
        if v == 14 { " (page fault)" } else { "" }
    );
    if v == 14 {
        crate::kprintln!(
            "zen:   cr2={:#x} ({} {} in {} mode)",
            cr2,
            if frame.error & 1 != 0 {
                "protection violation on"
            } else {
                "unmapped page on"
            },
            if frame.error & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if frame.error & 4 != 0 {
                "user"
            } else {
                "kernel"
            }
        );
    }
    crate::kprintln!(
        "zen:   rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi
    );
    crate::kprintln!("zen: halted");
    super::cpu::halt_after_fatal()
}
