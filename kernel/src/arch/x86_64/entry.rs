//! The kernel entry point, called by a boot stub.
//!
//! Contract (see zen_abi::boot): long mode, interrupts off, CR3 = the stub's tables
//! (kernel image at KERNEL_BASE, direct map at DIRECT_MAP, low memory identity
//! mapped), `rdi` = direct-map address of the BootInfo. We read the TSC first, move to
//! our own stack in .bss and never return.

use zen_abi::boot::{BootInfo, MemoryRegion, BOOTINFO_MAGIC, BOOTINFO_VERSION};
use zen_abi::layout::DIRECT_MAP;

const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    cli
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov rsi, rax
    lea rsp, [rip + {stack} + {size}]
    xor ebp, ebp
    call {kentry}
    ud2
    "#,
    stack = sym BOOT_STACK,
    size = const BOOT_STACK_SIZE,
    kentry = sym kentry,
);

/// Validates the BootInfo pointer before anything trusts it, then enters the kernel.
extern "C" fn kentry(boot_info: u64, entry_tsc: u64) -> ! {
    super::serial::init();
    match validate(boot_info) {
        Ok(boot) => crate::kmain(boot, entry_tsc),
        Err(why) => {
            for b in b"zen: bad BootInfo from the stub: "
                .iter()
                .chain(why.as_bytes())
                .chain(b"\n")
            {
                super::serial::write_byte(*b);
            }
            super::cpu::halt_forever()
        }
    }
}

fn validate(addr: u64) -> Result<&'static BootInfo, &'static str> {
    if addr < DIRECT_MAP || !addr.is_multiple_of(8) {
        return Err("pointer outside the direct map");
    }
    // SAFETY: the stub passes the direct-map address of a BootInfo it allocated as
    // loader data, which nothing reuses; the pointer is aligned (checked above) and
    // the direct map covers all memory the stub could have allocated.
    let boot = unsafe { &*(addr as *const BootInfo) };
    if boot.magic != BOOTINFO_MAGIC {
        return Err("bad magic");
    }
    if boot.version != BOOTINFO_VERSION {
        return Err("unsupported version");
    }
    if boot.memory_map_len == 0 || boot.memory_map_len > 4096 || boot.memory_map % 8 != 0 {
        return Err("bad memory map");
    }
    Ok(boot)
}

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The boot archive (the first user programs), which xtask appends to the kernel in
/// `zenos.bin`: the bytes from the end of the kernel (`__kernel_end`, page aligned) to
/// the end of what the stub loaded. Empty if the stub loaded nothing past the kernel.
/// One kernel build serves a default image (init, shell) and a test image (also
/// usertests, ipcbench), differing only in what follows the kernel.
pub fn boot_archive(boot: &'static BootInfo) -> &'static [u8] {
    let kernel = (&raw const __kernel_end) as u64 - (&raw const __kernel_start) as u64;
    let len = boot
        .kernel_size
        .saturating_sub(kernel)
        .min(zen_abi::image::IMAGE_MAX_SIZE);
    // SAFETY: the stub loaded `kernel_size` bytes at `kernel_phys` (the checked image's
    // mem_size, at most IMAGE_MAX_SIZE); mm::init reserves that range, so its frames
    // are never handed out, and nothing writes past `__kernel_end`. A read-only view
    // through the direct map.
    unsafe {
        core::slice::from_raw_parts(
            (DIRECT_MAP + boot.kernel_phys + kernel) as *const u8,
            len as usize,
        )
    }
}

/// The boot memory map, read through the direct map.
pub fn memory_map(boot: &'static BootInfo) -> &'static [MemoryRegion] {
    // SAFETY: `validate` checked the length and alignment; the stub stores the array
    // in loader data that stays reserved (MemoryKind::Bootloader) for the kernel's
    // lifetime, so the slice is valid and never written.
    unsafe {
        core::slice::from_raw_parts(
            (DIRECT_MAP + boot.memory_map) as *const MemoryRegion,
            boot.memory_map_len as usize,
        )
    }
}
