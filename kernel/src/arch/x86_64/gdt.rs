//! GDT and TSS, one pair per CPU (in its [`PerCpu`] entry): kernel code/data segments,
//! user segments (for later), and a TSS whose interrupt stack table gives double
//! faults and NMIs their own stacks, so a kernel stack overflow is reported instead of
//! triple-faulting.

use ::x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use ::x86_64::instructions::tables::load_tss;
use ::x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use ::x86_64::structures::tss::TaskStateSegment;
use ::x86_64::VirtAddr;

use super::percpu::PerCpu;

/// IST slots (0-based as in the TSS; the IDT uses these plus one).
pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;

/// Bytes of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub struct Stack(pub [u8; IST_STACK_SIZE]);

/// The boot CPU's IST stacks: it sets up its tables before there is a heap.
static mut BSP_DF_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static mut BSP_NMI_STACK: Stack = Stack([0; IST_STACK_SIZE]);

/// Top of a stack (stacks grow down).
pub fn top(stack: *const Stack) -> VirtAddr {
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

/// IST stack tops for the boot CPU.
pub fn bsp_stacks() -> (VirtAddr, VirtAddr) {
    (top(&raw const BSP_DF_STACK), top(&raw const BSP_NMI_STACK))
}

/// Builds and loads the calling CPU's GDT and TSS. Once per CPU, by that CPU.
pub fn init(me: &'static PerCpu, df_stack: VirtAddr, nmi_stack: VirtAddr) {
    // SAFETY: only the owning CPU calls this, once, before it loads the tables, so
    // nothing else references its TSS or GDT; both live in a static PerCpu entry.
    let (tss, gdt) = unsafe { (&mut *me.tss.get(), &mut *me.gdt.get()) };
    let tss: &'static mut TaskStateSegment = tss.write(TaskStateSegment::new());
    let gdt: &'static mut GlobalDescriptorTable = gdt.write(GlobalDescriptorTable::new());
    tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = df_stack;
    tss.interrupt_stack_table[IST_NMI as usize] = nmi_stack;
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    // User segments in the order sysret expects (data, then code), for later.
    gdt.append(Descriptor::user_data_segment());
    gdt.append(Descriptor::user_code_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    // SAFETY: the GDT lives in a static and is never changed after this point.
    unsafe { gdt.load_unsafe() };
    // SAFETY: the selectors index the GDT just loaded; the code segment is a 64-bit
    // code segment and the data selector a data segment; the TSS descriptor points at
    // this CPU's TSS, which is never moved.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }
}
