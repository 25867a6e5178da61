//! The kernel heap: a linked-list allocator over a contiguous run of frames seen
//! through the direct map, wrapped to count live allocations so tests can check that
//! everything allocated was freed.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use linked_list_allocator::LockedHeap;
use zen_abi::layout::DIRECT_MAP;

struct CountingHeap {
    inner: LockedHeap,
    live: AtomicUsize,
    bytes: AtomicUsize,
}

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    inner: LockedHeap::empty(),
    live: AtomicUsize::new(0),
    bytes: AtomicUsize::new(0),
};

// SAFETY: delegates to linked_list_allocator, which upholds GlobalAlloc's contract;
// the counters are only statistics.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Interrupts off while the heap lock is held: a thread preempted inside the
        // allocator would otherwise stall any thread that allocates with interrupts
        // off on the same CPU (see crate::sync).
        // SAFETY: forwarded with the caller's layout.
        let p = ::x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            self.inner.alloc(layout)
        });
        if !p.is_null() {
            self.live.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded; the caller guarantees ptr came from `alloc` with `layout`.
        ::x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            self.inner.dealloc(ptr, layout)
        })
    }
}

static INIT: AtomicBool = AtomicBool::new(false);

/// Gives the heap `size` bytes at physical `phys`. Once only (panics otherwise).
pub fn init(phys: u64, size: usize) {
    assert!(!INIT.swap(true, Ordering::SeqCst), "heap initialised twice");
    // SAFETY: called once (checked above) with a contiguous run of frames that the
    // caller took out of the frame allocator and never frees, seen through the direct
    // map; the heap owns it from now on.
    unsafe { HEAP.inner.lock().init((DIRECT_MAP + phys) as *mut u8, size) };
}

/// Live allocations and the bytes they hold.
pub fn stats() -> (usize, usize) {
    (
        HEAP.live.load(Ordering::Relaxed),
        HEAP.bytes.load(Ordering::Relaxed),
    )
}
