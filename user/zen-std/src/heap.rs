//! The global allocator: a linked-list heap that grows by `map` (the kernel hands out
//! mappings at increasing addresses, so a new mapping usually extends the heap in
//! place; if not, it becomes a fresh region and the old tail is left in use).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use zen_abi::syscall::Syscall;

const GROW: u64 = 256 * 1024;

struct ZenHeap(spin::Mutex<(Heap, bool)>);

#[global_allocator]
static HEAP: ZenHeap = ZenHeap(spin::Mutex::new((Heap::empty(), false)));

fn map(len: u64) -> Option<u64> {
    crate::sys::call_reading(Syscall::Map, [len, 0, 0, 0, 0, 0]).ok()
}

// SAFETY: the heap hands out disjoint blocks from memory the kernel mapped for this
// process and that nothing else uses; the lock serialises it.
unsafe impl GlobalAlloc for ZenHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut g = self.0.lock();
        let (heap, init) = &mut *g;
        if let Ok(p) = heap.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        // Grow by at least what was asked (plus room for alignment and bookkeeping).
        let want = (layout.size() as u64 + layout.align() as u64 + 64)
            .max(GROW)
            .next_multiple_of(4096);
        let Some(addr) = map(want) else {
            return core::ptr::null_mut();
        };
        if *init && heap.top() as u64 == addr {
            // SAFETY: [addr, addr + want) was just mapped for us and directly follows
            // the heap's top.
            unsafe { heap.extend(want as usize) };
        } else if !*init {
            // SAFETY: fresh, exclusively ours, mapped read-write.
            unsafe { heap.init(addr as *mut u8, want as usize) };
            *init = true;
        } else {
            // Not contiguous: start over in the new region. The old one keeps its live
            // blocks (freed ones there are lost; the kernel maps upward, so this is rare).
            // SAFETY: as above.
            *heap = unsafe { Heap::new(addr as *mut u8, want as usize) };
        }
        heap.allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut g = self.0.lock();
        let heap = &mut g.0;
        let inside =
            (ptr as usize) >= heap.bottom() as usize && (ptr as usize) < heap.top() as usize;
        if inside {
            // SAFETY: `ptr` came from this heap with this layout (GlobalAlloc contract).
            unsafe { heap.deallocate(NonNull::new_unchecked(ptr), layout) };
        }
    }
}
