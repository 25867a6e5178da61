//! User FPU/SSE state: each CPU's x87/SSE setup, and the save area every user thread
//! carries across context switches.
//!
//! The kernel is built soft-float (x86_64-unknown-none), so kernel code never touches
//! the x87 or SSE registers: whatever they hold when `task::schedule` switches belongs
//! to the last user thread that ran on this CPU. (The one exception in the binary,
//! BLAKE3's SIMD code, is never selected: see kernel/Cargo.toml; the `fpu_*` usertests
//! have tokens minted while they check their registers.) The switch saves the state
//! into the outgoing thread's [`FpuArea`] and loads the incoming thread's (eagerly,
//! FXSAVE64/FXRSTOR64); kernel threads have no area and never use the registers. A new
//! thread's area starts as `CLEAN`, the state FNINIT leaves with MXCSR at its default
//! 0x1F80, so a thread never starts with another thread's values.
//!
//! Only the legacy FXSAVE image is switched (x87, MXCSR, XMM0-15), so AVX must stay
//! off for user code: [`init_cpu`] clears CR4.OSXSAVE, which makes every VEX/EVEX
//! instruction (and XGETBV) raise #UD, killing the process, instead of leaving the
//! upper halves of YMM/ZMM registers unswitched between threads. Enabling AVX means
//! moving to XSAVE(OPT)/XRSTOR with a 64-byte-aligned area sized from CPUID leaf 0xd.

use alloc::boxed::Box;
use core::alloc::Layout;
use core::arch::asm;

/// Bytes of the FXSAVE image.
const IMAGE_BYTES: usize = 512;

/// One thread's saved x87/SSE state: the 512-byte FXSAVE image, 16-byte aligned as
/// FXSAVE64/FXRSTOR64 require. A lock, uncontended by construction: only a CPU that
/// holds the thread's `on_cpu` flag touches it (saving as it leaves the thread,
/// loading as it enters it), but the lock makes that a fact the type system sees.
#[repr(C, align(16))]
pub struct FpuArea(spin::Mutex<Image>);

#[repr(C, align(16))]
struct Image([u8; IMAGE_BYTES]);

/// The state after FNINIT with the default MXCSR: x87 control word 0x037F (all
/// exceptions masked, 64-bit precision, round to nearest), empty x87 stack (abridged
/// tag word 0), MXCSR 0x1F80 (all SIMD exceptions masked, round to nearest), every
/// register zero.
const CLEAN: Image = {
    let mut b = [0u8; IMAGE_BYTES];
    // FCW at byte 0.
    b[0] = 0x7f;
    b[1] = 0x03;
    // MXCSR at byte 24.
    b[24] = 0x80;
    b[25] = 0x1f;
    Image(b)
};

impl FpuArea {
    /// A clean area on the heap, or `None` if the heap is full (thread creation then
    /// fails with NoMemory, as for its stack).
    pub fn try_new() -> Option<Box<FpuArea>> {
        let layout = Layout::new::<FpuArea>();
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc::alloc(layout) }.cast::<FpuArea>();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is a fresh allocation with FpuArea's layout, written once before
        // the Box takes ownership; the global allocator is the one Box frees with.
        unsafe {
            p.write(FpuArea(spin::Mutex::new(CLEAN)));
            Some(Box::from_raw(p))
        }
    }
}

/// Switches this CPU's x87/SSE registers from one thread to another: saves them into
/// `out` (the thread this CPU is leaving, if it runs user code) and loads `inp` (the
/// thread it is entering, if that runs user code). Called with interrupts off on the
/// switch path; between here and the next thread's return to user mode the kernel
/// does not touch the registers (it is soft-float).
pub fn switch(out: Option<&FpuArea>, inp: Option<&FpuArea>) {
    if let Some(a) = out {
        let mut img = a.0.lock();
        // SAFETY: FXSAVE64 writes 512 bytes at a 16-byte-aligned address: `img` is an
        // exclusively borrowed, 16-byte-aligned 512-byte Image. It changes no register
        // (CR4.OSFXSR is set by `init_cpu`, so the XMM registers are included).
        unsafe {
            asm!("fxsave64 [{}]", in(reg) img.0.as_mut_ptr(), options(nostack, preserves_flags))
        }
    }
    if let Some(a) = inp {
        let img = a.0.lock();
        // SAFETY: FXRSTOR64 reads 512 bytes at a 16-byte-aligned address (`img`). The
        // image is either CLEAN or one FXSAVE64 wrote, so its MXCSR has no reserved
        // bit set (no #GP). It loads only x87/SSE state, which no kernel code uses.
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) img.0.as_ptr(), options(nostack, preserves_flags, readonly))
        }
    }
}

/// CR0 bits: MP (monitor coprocessor), EM (emulate: off), TS (task switched: off, no
/// lazy #NM scheme), NE (x87 errors as #MF, not the legacy FERR# line).
const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_NE: u64 = 1 << 5;
/// CR4 bits: OSFXSR (FXSAVE/FXRSTOR include SSE state, SSE instructions allowed),
/// OSXMMEXCPT (SIMD exceptions as #XM), OSXSAVE (XSAVE and AVX: kept off, see the
/// module documentation).
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;

/// Sets this CPU up for user x87/SSE: on every CPU, since the UEFI firmware, the BIOS
/// stub and the AP trampoline each leave CR0/CR4 differently (the trampoline sets
/// neither OSFXSR nor NE). Then starts the registers from the clean state.
pub fn init_cpu() {
    // SAFETY: only the FPU-related bits of CR0 and CR4 change; paging, protection and
    // caching bits are written back as read. The kernel uses no x87/SSE/AVX code, so
    // turning AVX off cannot break it. FNINIT and LDMXCSR with the default value load
    // a valid state.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 = (cr0 | CR0_MP | CR0_NE) & !(CR0_EM | CR0_TS);
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        let mut cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        cr4 = (cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT) & !CR4_OSXSAVE;
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        let mxcsr: u32 = 0x1f80;
        asm!(
            "fninit",
            "ldmxcsr [{}]",
            in(reg) &mxcsr,
            options(nostack, preserves_flags, readonly)
        );
    }
}
