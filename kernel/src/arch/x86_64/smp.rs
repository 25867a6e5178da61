//! Starting the other CPUs: INIT-SIPI-SIPI into a real-mode trampoline.
//!
//! The trampoline (below) is copied to a free page under 1 MiB, which is also
//! identity-mapped while CPUs start: the instruction after the one that enables paging
//! is fetched through that mapping. It loads a temporary GDT, enables PAE, long mode
//! and no-execute, switches to the kernel's page tables (CR3 must lie below 4 GiB,
//! since it is loaded in 32-bit code) and jumps to [`ap_entry`] in the higher half on
//! a stack the boot CPU allocated. CPUs are started one at a time, so one trampoline
//! and one parameter block suffice.

use ::x86_64::registers::control::Cr3;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::boot::{MemoryKind, MemoryRegion};
use zen_abi::layout::DIRECT_MAP;

use super::{apic, gdt, interrupts, paging, percpu};

const AP_STACK_SIZE: usize = 64 * 1024;

// Layout of the trampoline page (offsets fixed so the 16-bit code can use plain
// numbers; checked against the symbols in `start_aps`):
//   0x00 jmp short 0x58      0x08 base (physical page)   0x10 cr3
//   0x18 stack top           0x20 entry (ap_entry)       0x28 argument (cpu index)
//   0x30 GDTR (limit, base)  0x40 GDT: null, code64, data
//   0x58 code
core::arch::global_asm!(
    r#"
    .section .rodata.zen_trampoline, "a"
    .balign 16
    .global zen_tramp_start
zen_tramp_start:
    .byte 0xeb, 0x56
    .balign 8, 0
zen_tramp_base:  .quad 0
zen_tramp_cr3:   .quad 0
zen_tramp_stack: .quad 0
zen_tramp_entry: .quad 0
zen_tramp_arg:   .quad 0
zen_tramp_gdtr:  .word 23
zen_tramp_gdt_base: .long 0
    .balign 8, 0
    .quad 0
zen_tramp_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
zen_tramp_code:
    .code16
    // CS = page >> 4 and IP = 0, so with DS = CS the data above is at its offset.
    cli
    cld
    mov ax, cs
    mov ds, ax
    mov ebx, dword ptr [0x08]
    lgdt [0x30]
    mov eax, cr4
    or eax, 0xa0
    mov cr4, eax
    mov eax, dword ptr [0x10]
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    // Far jump into 64-bit code: the offset is patched by the boot CPU.
    .byte 0x66, 0xea
zen_tramp_farptr:
    .long 0
    .word 0x08
    .code64
zen_tramp_long:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, [rbx + 0x18]
    mov rdi, [rbx + 0x28]
    mov rax, [rbx + 0x20]
    jmp rax
zen_tramp_end:
    .global zen_tramp_end
    .global zen_tramp_long
    .global zen_tramp_farptr
    .global zen_tramp_gdt
    .global zen_tramp_gdt_base
    .global zen_tramp_base
    .global zen_tramp_cr3
    .global zen_tramp_stack
    .global zen_tramp_entry
    .global zen_tramp_arg
    .global zen_tramp_code
    .text
    "#
);

extern "C" {
    static zen_tramp_start: u8;
    static zen_tramp_end: u8;
    static zen_tramp_long: u8;
    static zen_tramp_farptr: u8;
    static zen_tramp_gdt: u8;
    static zen_tramp_gdt_base: u8;
    static zen_tramp_base: u8;
    static zen_tramp_cr3: u8;
    static zen_tramp_stack: u8;
    static zen_tramp_entry: u8;
    static zen_tramp_arg: u8;
    static zen_tramp_code: u8;
}

/// Offset of a trampoline symbol from its start.
fn off(sym: *const u8) -> usize {
    sym as usize - (&raw const zen_tramp_start) as usize
}

/// Picks a page below 1 MiB that the memory map says is usable (the frame allocator
/// never hands out low memory, so it is ours).
fn trampoline_page(map: &[MemoryRegion]) -> Option<u64> {
    (1..0x9f_u64).map(|p| p << 12).find(|&a| {
        map.iter().any(|r| {
            r.kind == MemoryKind::Usable as u32 && r.base <= a && a + 4096 <= r.base + r.len
        })
    })
}

/// Arguments for one starting CPU, readable by it before it has a GS base.
static STARTING_ID: AtomicU64 = AtomicU64::new(0);

/// Microseconds to wait after INIT before the first SIPI. The MP spec's 10 ms is for
/// the external APICs of the 486 era; CPUs of family 6 and later (every x86_64 CPU
/// but the first AMD ones, family 15, which need none either) accept a SIPI at once,
/// which is what Linux does (`init_udelay = 0` on them). 10 µs keeps a margin.
fn init_delay_us() -> u64 {
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let eax = unsafe { core::arch::x86_64::__cpuid(1) }.eax;
    let family = (eax >> 8) & 0xf;
    let family = if family == 0xf {
        family + ((eax >> 20) & 0xff)
    } else {
        family
    };
    if family >= 6 {
        10
    } else {
        10_000
    }
}

/// How long a CPU gets to come online after its first SIPI before the second is sent
/// (the spec's 200 µs; a SIPI to a CPU that already started is ignored), and after
/// the second before it is given up.
const FIRST_SIPI_US: u64 = 200;
const SECOND_SIPI_US: u64 = 100_000;

/// Starts every CPU in the MADT besides the caller. Returns how many came online.
pub fn start_aps(map: &[MemoryRegion]) -> Result<usize, &'static str> {
    let cpus = super::acpi::cpus()?;
    let me = apic::local_id();
    let others: Vec<u32> = cpus
        .iter()
        .map(|c| c.apic_id)
        .filter(|&id| id != me)
        .collect();
    if others.is_empty() {
        return Ok(0);
    }
    let page = trampoline_page(map).ok_or("no free page below 1 MiB for the trampoline")?;
    let (l4, _) = Cr3::read();
    let cr3 = l4.start_address().as_u64();
    if cr3 >= 1 << 32 {
        return Err("page tables above 4 GiB, cannot start other CPUs");
    }
    // The 16-bit code uses these offsets as numbers.
    let layout = [
        off(&raw const zen_tramp_base),
        off(&raw const zen_tramp_cr3),
        off(&raw const zen_tramp_stack),
        off(&raw const zen_tramp_entry),
        off(&raw const zen_tramp_arg),
        off(&raw const zen_tramp_code),
    ];
    if layout != [0x08, 0x10, 0x18, 0x20, 0x28, 0x58] || off(&raw const zen_tramp_gdt_base) != 0x32
    {
        return Err("trampoline layout changed");
    }
    // Copy and patch the trampoline.
    let len = off(&raw const zen_tramp_end);
    // SAFETY: `page` is a usable page below 1 MiB that the frame allocator never hands
    // out (it reserves low memory), seen through the direct map; the trampoline is
    // `len` (< 4096) bytes of read-only data in the kernel image.
    let tramp = unsafe {
        let dst = (DIRECT_MAP + page) as *mut u8;
        core::ptr::copy_nonoverlapping(&raw const zen_tramp_start, dst, len);
        core::slice::from_raw_parts_mut(dst, 4096)
    };
    let put32 = |t: &mut [u8], at: usize, v: u32| t[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |t: &mut [u8], at: usize, v: u64| t[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put32(
        tramp,
        off(&raw const zen_tramp_farptr),
        (page as usize + off(&raw const zen_tramp_long)) as u32,
    );
    put32(
        tramp,
        off(&raw const zen_tramp_gdt_base),
        (page as usize + off(&raw const zen_tramp_gdt)) as u32,
    );
    put64(tramp, off(&raw const zen_tramp_base), page);
    put64(tramp, off(&raw const zen_tramp_cr3), cr3);
    put64(
        tramp,
        off(&raw const zen_tramp_entry),
        ap_entry as extern "C" fn(u64) -> ! as u64,
    );

    paging::map(
        page,
        page,
        paging::Flags {
            writable: true,
            user: false,
            executable: true,
        },
    )
    .map_err(|_| "cannot identity-map the trampoline")?;
    let mut started = 0;
    for (i, &apic_id) in others.iter().enumerate() {
        let id = i + 1;
        if id >= percpu::MAX_CPUS {
            crate::kprintln!(
                "zen: more than {} CPUs, ignoring the rest",
                percpu::MAX_CPUS
            );
            break;
        }
        let stack = alloc::vec![0u8; AP_STACK_SIZE].leak();
        put64(
            tramp,
            off(&raw const zen_tramp_stack),
            stack.as_ptr() as u64 + AP_STACK_SIZE as u64,
        );
        put64(tramp, off(&raw const zen_tramp_arg), id as u64);
        STARTING_ID.store(apic_id as u64, Ordering::SeqCst);
        apic::arm_deadline_us(20);
        apic::send_init(apic_id);
        apic::delay_us(init_delay_us());
        let cpu = percpu::cpu(id).ok_or("cpu index")?;
        for wait in [FIRST_SIPI_US, SECOND_SIPI_US] {
            apic::send_startup(apic_id, (page >> 12) as u8);
            // Polled continuously (with PAUSE, which lets QEMU run the starting CPU):
            // a coarse poll would only add to the boot.
            if apic::wait_us(wait, || cpu.is_online()) {
                break;
            }
        }
        if cpu.is_online() {
            started += 1;
        } else {
            crate::kprintln!("zen: CPU with APIC id {} did not start", apic_id);
        }
    }
    let _ = paging::unmap(page);
    Ok(started)
}

/// Where a started CPU lands, on its own stack, with the kernel's page tables.
extern "C" fn ap_entry(id: u64) -> ! {
    let apic_id = STARTING_ID.load(Ordering::SeqCst) as u32;
    super::fpu::init_cpu();
    let me = percpu::install(id as usize, apic_id);
    let df = alloc::vec![0u8; gdt::IST_STACK_SIZE].leak();
    let nmi = alloc::vec![0u8; gdt::IST_STACK_SIZE].leak();
    let top = |s: &[u8]| ::x86_64::VirtAddr::from_ptr(s.as_ptr()) + gdt::IST_STACK_SIZE as u64;
    gdt::init(me, top(df), top(nmi));
    interrupts::init();
    super::syscall::init();
    apic::init_ap();
    percpu::set_online(me);
    crate::ap_main(me.id())
}
