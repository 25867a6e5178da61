//! Memory management: the physical frame allocator and the kernel heap.
//!
//! The frame allocator (zen-frames, a bitmap) is built from the boot memory map: its
//! storage is carved from the first usable region above 1 MiB that fits. Memory below
//! 1 MiB is kept out of it (real-mode trampolines for the other CPUs will need it),
//! and so is everything the stub marked as its own (kernel image, page tables,
//! BootInfo). The heap is a contiguous run of frames seen through the direct map.
//! `quota` accounts what each process makes the kernel allocate.

use zen_abi::boot::{BootInfo, MemoryKind};
use zen_frames::{FrameBitmap, FreeError, FRAME_SIZE};

use crate::arch;
use crate::sync::IrqMutex;

pub mod quota;

/// The kernel heap: a sixteenth of memory, between 4 and 64 MiB. Its size bounds what
/// processes can make the kernel allocate (thread stacks above all: `task::MAX_THREADS`
/// x 32 KiB is 8 MiB), so every allocation a process can cause in bulk is fallible or
/// capped below it; 256 MiB of memory gives 16 MiB.
const HEAP_MIN: u64 = 4 << 20;
const HEAP_MAX: u64 = 64 << 20;
static HEAP_BYTES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Bytes of the kernel heap.
pub fn heap_size() -> u64 {
    HEAP_BYTES.load(core::sync::atomic::Ordering::Relaxed)
}
const LOW_MEMORY: u64 = 1 << 20;

static FRAMES: IrqMutex<Option<FrameBitmap<'static>>> = IrqMutex::new(None);

/// An owned physical frame. Not `Clone`: holding one is the right to its memory.
#[derive(Debug)]
pub struct Frame(u64);

impl Frame {
    /// Physical address.
    pub fn addr(&self) -> u64 {
        self.0
    }

    /// Gives up ownership (the frame now belongs to, say, a page table).
    pub fn into_raw(self) -> u64 {
        self.0
    }
}

/// Allocates one frame, or `None` when memory is exhausted.
pub fn alloc_frame() -> Option<Frame> {
    let f = FRAMES.lock().as_mut()?.alloc().map(Frame);
    if f.is_none() {
        crate::edge::report(zen_edge::EdgeKind::AllocFailure, 0);
    }
    f
}

/// Returns a frame to the allocator.
pub fn free_frame(frame: Frame) -> Result<(), FreeError> {
    match FRAMES.lock().as_mut() {
        Some(fa) => fa.free(frame.0),
        None => Err(FreeError::OutOfRange),
    }
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |fa| fa.free_frames())
}

pub fn init(boot: &'static BootInfo) {
    let map = arch::memory_map(boot);
    let usable = |r: &&zen_abi::boot::MemoryRegion| r.kind == MemoryKind::Usable as u32;
    let max_phys = map
        .iter()
        .filter(usable)
        .map(|r| r.base + r.len)
        .max()
        .unwrap_or(0);
    let words = FrameBitmap::words_for(max_phys);
    let bytes = (words as u64 * 8).next_multiple_of(FRAME_SIZE);
    let home = map
        .iter()
        .filter(usable)
        .map(|r| {
            (
                r.base.max(LOW_MEMORY).next_multiple_of(FRAME_SIZE),
                r.base + r.len,
            )
        })
        .find(|&(start, end)| end > start && end - start >= bytes)
        .map(|(start, _)| start)
        .expect("no usable memory for the frame bitmap");

    let mut fa = FrameBitmap::new(arch::phys::claim_bitmap(home, words), max_phys);
    for r in map.iter().filter(usable) {
        fa.add_free(r.base, r.len);
    }
    fa.reserve(0, LOW_MEMORY);
    fa.reserve(home, bytes);
    fa.reserve(boot.kernel_phys, boot.kernel_size);
    let size = (fa.free_frames() * FRAME_SIZE / 16)
        .clamp(HEAP_MIN, HEAP_MAX)
        .next_multiple_of(FRAME_SIZE);
    let heap = fa
        .alloc_contiguous(size / FRAME_SIZE)
        .expect("no memory for the kernel heap");
    *FRAMES.lock() = Some(fa);
    HEAP_BYTES.store(size, core::sync::atomic::Ordering::Relaxed);
    arch::heap::init(heap, size as usize);
    arch::paging::init();
}

/// Makes a `Frame` out of thin air, to test that bad frees are refused.
#[cfg(feature = "ktest")]
pub fn forge_frame(addr: u64) -> Frame {
    Frame(addr)
}

/// Re-creates the `Frame` for a physical address that an owner (a page table, an
/// address space) held in raw form since `into_raw`.
pub fn frame_from_raw(addr: u64) -> Frame {
    Frame(addr)
}

/// Frames the allocator manages.
pub fn total_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |fa| fa.total_frames())
}
