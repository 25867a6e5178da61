//! Taking page tables apart: freeing the tables of a range that became empty (when
//! a process unmaps), unlinking them for a later free (when another process takes
//! pages away and the other CPUs must flush first), and freeing a whole lower half
//! when an address space dies.

use ::x86_64::structures::paging::PageTableFlags;
use ::x86_64::VirtAddr;
use alloc::vec::Vec;

use super::user::{table, SHARED};

/// After the level-1 entry of `va` was cleared: frees the level-1, 2 and 3 tables on
/// its path that hold no entry any more, clearing their parents' entries; how many.
///
/// # Safety
/// `root` is a live address space's level-4 table, locked by the caller, and no CPU
/// other than the caller's may cache translations through it.
pub(super) unsafe fn free_empty_tables(root: u64, va: u64) -> u64 {
    let mut freed = 0;
    // SAFETY: the caller's promises, passed on; each table is freed right after it
    // was unlinked and this CPU's caches flushed.
    unsafe {
        unlink_empty_tables(root, va, &mut |f| {
            let _ = crate::mm::free_frame(crate::mm::frame_from_raw(f));
            freed += 1;
        })
    };
    freed
}

/// As [`free_empty_tables`], but hands each unlinked table frame to `unlinked`
/// instead of freeing it (the caller frees it once no CPU can cache it any more).
///
/// # Safety
/// `root` is a live address space's level-4 table, locked by the caller; if another
/// CPU may walk it, the frames handed out must not be reused before a TLB shootdown.
pub(super) unsafe fn unlink_empty_tables(root: u64, va: u64, unlinked: &mut dyn FnMut(u64)) {
    let idx = |level: u32| ((va >> (12 + 9 * (level - 1))) & 511) as usize;
    // The path: tables[i] is the level-(4 - i) table.
    let mut path = [root, 0, 0, 0];
    for i in 0..3 {
        // SAFETY: every table on the path is a frame of this space (the caller's).
        let t = unsafe { &*table(path[i]) };
        let e = &t[idx(4 - i as u32)];
        if !e.flags().contains(PageTableFlags::PRESENT)
            || e.flags().contains(PageTableFlags::HUGE_PAGE)
        {
            return;
        }
        path[i + 1] = e.addr().as_u64();
    }
    // From the level-1 table up; never the root (`i > 0`).
    for i in (1..4).rev() {
        // SAFETY: as above.
        let child = unsafe { &*table(path[i]) };
        if child.iter().any(|e| !e.is_unused()) {
            break;
        }
        // SAFETY: as above; the parent's entry for this table is cleared first, then
        // the page-structure caches of this CPU flushed, then the frame handed on.
        let parent = unsafe { &mut *table(path[i - 1]) };
        parent[idx(4 - (i as u32 - 1))].set_unused();
        ::x86_64::instructions::tlb::flush(VirtAddr::new(va));
        unlinked(path[i]);
    }
}

/// Page-table frames unlinked from an address space, not yet free: see
/// [`AddressSpace::unlink_tables_in`].
#[must_use]
pub struct UnlinkedTables(pub(super) Vec<u64>);

impl UnlinkedTables {
    /// Frees them: call only after every CPU dropped its cached translations
    /// (`tlb::shootdown_all`).
    pub fn free_after_shootdown(self) {
        for f in self.0 {
            let _ = crate::mm::free_frame(crate::mm::frame_from_raw(f));
        }
    }
}

/// Frees the lower half below a level-`level` table, then the table itself.
///
/// # Safety
/// `phys` must be a table owned by a dying address space that no CPU uses.
pub(super) unsafe fn free_tables(phys: u64, level: u8) {
    // SAFETY: the caller guarantees exclusive ownership of the table.
    let t = unsafe { &mut *table(phys) };
    let entries = if level == 4 { 0..256 } else { 0..512 };
    for i in entries {
        let e = &t[i];
        if !e.flags().contains(PageTableFlags::PRESENT) {
            continue;
        }
        let child = e.addr().as_u64();
        if level == 1 || e.flags().contains(PageTableFlags::HUGE_PAGE) {
            if !e.flags().contains(SHARED) {
                let _ = crate::mm::free_frame(crate::mm::frame_from_raw(child));
            }
        } else {
            // SAFETY: a present non-leaf entry of an owned table points at an owned table.
            unsafe { free_tables(child, level - 1) };
        }
    }
    let _ = crate::mm::free_frame(crate::mm::frame_from_raw(phys));
}
