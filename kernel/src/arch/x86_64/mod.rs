//! x86_64: entry, CPU tables, interrupts, paging, the local APIC and the heap.

pub mod acpi;
pub mod apic;
pub mod clock;
pub mod cpu;
pub mod cpulocal;
mod entry;
pub use entry::{boot_archive, memory_map};
pub mod fpu;
mod gdt;
pub mod heap;
pub mod interrupts;
pub mod paging;
pub mod pci;
pub mod percpu;
pub mod phys;
pub mod serial;
pub mod smp;
pub mod switch;
pub mod syscall;
mod tables;
pub mod tlb;
pub mod user;
pub mod vtd;

/// Sets up the boot CPU: per-CPU entry 0 behind GS, its GDT with TSS (separate stacks
/// for double fault and NMI), the IDT and the x87/SSE setup. Interrupts stay disabled.
pub fn init_boot_cpu() {
    fpu::init_cpu();
    let me = percpu::install(0, apic::local_id_early());
    let (df, nmi) = gdt::bsp_stacks();
    gdt::init(me, df, nmi);
    interrupts::init();
    syscall::init();
    percpu::set_online(me);
}
