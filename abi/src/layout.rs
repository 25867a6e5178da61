//! The kernel's virtual address space, as built by the boot stubs.
//!
//! ```text
//! 0x0000_0000_0000_0000 .. 0x0000_7fff_ffff_ffff  user space (empty at hand-off except
//!                                                  a temporary identity map of low memory
//!                                                  that the stub needs to switch CR3)
//! 0xffff_8000_0000_0000 ..                         direct map of all physical memory
//! 0xffff_ffff_8000_0000 ..                         the kernel image (flat, then .bss)
//! ```

/// Virtual base of the direct map: physical address `p` is visible at `DIRECT_MAP + p`.
pub const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// Virtual address the kernel's flat image is linked at (the top 2 GiB, so the kernel
/// can use the `kernel` code model).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// Page size used for the kernel image mapping.
pub const PAGE_SIZE: u64 = 4096;
/// The stub maps the direct map with 2 MiB pages up to the highest physical address in
/// the memory map, but at least this much, so MMIO below 4 GiB (the local APIC, the
/// framebuffer) is always reachable.
pub const DIRECT_MAP_MIN: u64 = 4 << 30;
