//! x86_64: entry, CPU tables, interrupts, paging, the local APIC and the heap.

pub mod apic;
pub mod cpu;
mod entry;
pub use entry::memory_map;
mod gdt;
pub mod heap;
pub mod interrupts;
pub mod paging;
pub mod phys;
pub mod serial;

/// Sets up this CPU's descriptor tables: GDT with TSS (separate stacks for double
/// fault and NMI) and the IDT. Interrupts stay disabled.
pub fn init_cpu() {
    gdt::init();
    interrupts::init();
}
