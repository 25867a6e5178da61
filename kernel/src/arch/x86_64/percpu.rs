//! Per-CPU data, reached through the GS base.
//!
//! Every CPU owns one cache-line-aligned [`PerCpu`] in a static array (so nothing is
//! allocated to bring a CPU up, and no two CPUs share a line), with its GDT, TSS and a
//! pre-reserved 1 KiB scratch buffer (brief item 5). `IA32_GS_BASE` points at the
//! CPU's own entry, whose first word points at itself: [`current`] is one load.
//!
//! Only the owning CPU touches the cells, with interrupts disabled where an interrupt
//! handler could touch them too; that is the invariant the `Sync` impl relies on.

use ::x86_64::registers::model_specific::GsBase;
use ::x86_64::structures::gdt::GlobalDescriptorTable;
use ::x86_64::structures::tss::TaskStateSegment;
use ::x86_64::VirtAddr;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Most CPUs the kernel drives.
pub const MAX_CPUS: usize = 64;
/// Bytes of per-CPU scratch space.
pub const SCRATCH_SIZE: usize = 1024;

#[repr(C, align(64))]
struct Scratch([u8; SCRATCH_SIZE]);

#[repr(C, align(64))]
pub struct PerCpu {
    /// Address of this struct: `mov rax, gs:[0]` finds it.
    self_ptr: AtomicU64,
    /// Kernel stack top of the running thread: where `syscall` switches to (gs:[8]).
    pub(super) syscall_rsp: AtomicU64,
    /// The user stack pointer while a system call runs (gs:[16]).
    pub(super) user_rsp: AtomicU64,
    id: AtomicU32,
    apic_id: AtomicU32,
    online: AtomicBool,
    scratch_busy: AtomicBool,
    /// Timer interrupts taken by this CPU.
    pub ticks: AtomicU64,
    scratch: UnsafeCell<Scratch>,
    /// Written by `gdt::init`. Zeroed until then (not `::new()`), so the whole array
    /// is zero bytes and lives in .bss instead of adding 80 KiB to the kernel image.
    pub(super) tss: UnsafeCell<MaybeUninit<TaskStateSegment>>,
    pub(super) gdt: UnsafeCell<MaybeUninit<GlobalDescriptorTable>>,
}

// SAFETY: the UnsafeCells are only accessed by the CPU that owns the entry (GDT and
// TSS while it initialises itself, the scratch buffer with interrupts off and a busy
// flag against re-entry); everything shared is atomic.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            syscall_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            id: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            scratch_busy: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            scratch: UnsafeCell::new(Scratch([0; SCRATCH_SIZE])),
            tss: UnsafeCell::new(MaybeUninit::zeroed()),
            gdt: UnsafeCell::new(MaybeUninit::zeroed()),
        }
    }

    /// Logical CPU number (0 = the boot CPU).
    pub fn id(&self) -> usize {
        self.id.load(Ordering::Relaxed) as usize
    }

    /// Local APIC id.
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// Whether this CPU has finished coming up.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Address of the scratch buffer (to check its alignment in tests).
    pub fn scratch_addr(&self) -> usize {
        self.scratch.get() as usize
    }
}

const _: () = assert!(core::mem::size_of::<Scratch>() == SCRATCH_SIZE);
// The syscall entry addresses these two fields by offset.
pub(super) const SYSCALL_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, syscall_rsp);
pub(super) const USER_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, user_rsp);
const _: () = assert!(core::mem::align_of::<PerCpu>() == 64);

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The per-CPU entry of logical CPU `id`.
pub fn cpu(id: usize) -> Option<&'static PerCpu> {
    CPUS.get(id)
}

/// Number of CPUs online.
pub fn online_count() -> usize {
    CPUS.iter().filter(|c| c.is_online()).count()
}

/// Points GS at entry `id` for the calling CPU. Called once per CPU at bring-up.
pub fn install(id: usize, apic_id: u32) -> &'static PerCpu {
    let me = &CPUS[id];
    me.self_ptr
        .store(me as *const PerCpu as u64, Ordering::Relaxed);
    me.id.store(id as u32, Ordering::Relaxed);
    me.apic_id.store(apic_id, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(me));
    // While user code runs, GS is the user's and KERNEL_GS_BASE holds ours; `swapgs`
    // on every entry from user mode exchanges them.
    ::x86_64::registers::model_specific::KernelGsBase::write(VirtAddr::new(0));
    me
}

/// Sets the kernel stack that entries from user mode (system calls, interrupts,
/// exceptions) switch to on the calling CPU: the running thread's.
pub fn set_kernel_stack(top: u64) {
    let me = current();
    me.syscall_rsp.store(top, Ordering::Relaxed);
    // SAFETY: only this CPU touches its TSS after bring-up, with interrupts off (the
    // scheduler calls this during a switch), and the TSS was initialised by gdt::init.
    unsafe { (*me.tss.get()).assume_init_mut().privilege_stack_table[0] = VirtAddr::new(top) };
}

/// Marks the calling CPU online.
pub fn set_online(me: &PerCpu) {
    me.online.store(true, Ordering::Release);
}

/// The calling CPU's entry.
pub fn current() -> &'static PerCpu {
    let p: u64;
    // SAFETY: `install` ran on this CPU before anything calls `current` (it is the
    // first step of bring-up), so gs:[0] holds the address of a static PerCpu.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*(p as *const PerCpu)
    }
}

/// Runs `f` with this CPU's scratch buffer. Interrupts are off meanwhile, so no
/// handler on this CPU can reach the buffer; a nested call panics.
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8; SCRATCH_SIZE]) -> R) -> R {
    let were_enabled = super::cpu::interrupts_enabled();
    super::cpu::disable_interrupts();
    let me = current();
    assert!(
        !me.scratch_busy.swap(true, Ordering::Acquire),
        "scratch buffer re-entered"
    );
    // SAFETY: only this CPU reaches its own entry; interrupts are off and the busy
    // flag excludes nesting, so this is the only reference to the buffer.
    let r = f(unsafe { &mut (*me.scratch.get()).0 });
    me.scratch_busy.store(false, Ordering::Release);
    if were_enabled {
        super::cpu::enable_interrupts();
    }
    r
}
