//! User address spaces and copies across the user/kernel boundary.
//!
//! Each process has its own level-4 table. Its upper half (entries 256..512) is the
//! kernel's: the same PDPT frames in every address space, all allocated at boot
//! (`paging::init`), so a kernel mapping made later is seen everywhere. The lower half
//! is the process's; its table and data frames belong to the address space and are
//! freed with it.
//!
//! Copies never dereference a user pointer: each page is translated in the process's
//! own tables, checked to be present, user-accessible (and writable for copy-out),
//! and accessed through the direct map. A bad pointer is an error, not a fault.
//!
//! Over 500 lines: every kind of user mapping (own, shared, device) and the copies
//! through the page tables belong to one address-space type.

use ::x86_64::registers::control::{Cr3, Cr3Flags};
use ::x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use ::x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};
use ::x86_64::{PhysAddr, VirtAddr};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::layout::DIRECT_MAP;
use zen_abi::syscall::{page_piece, user_range_end, USER_END};

use super::paging::{Flags, MapError, TableFrames};
pub use super::tables::UnlinkedTables;
use super::tables::{free_empty_tables, free_tables, unlink_empty_tables};

/// PTE bit (available to software) marking a frame the address space maps but does
/// not own.
pub(super) const SHARED: PageTableFlags = PageTableFlags::BIT_9;
/// A page of device registers (always `SHARED` too): see [`AddressSpace::map_device`].
pub(super) const DEVICE: PageTableFlags = PageTableFlags::BIT_10;

/// A process's page tables.
pub struct AddressSpace {
    root: u64,
    lock: spin::Mutex<()>,
    /// Page-table frames of the lower half this space owns now (the root included):
    /// what its process is charged for them.
    tables: AtomicU64,
}

/// Allocates page-table frames for one address space and counts them.
struct CountingFrames<'a>(&'a AtomicU64);

// SAFETY: every frame comes from the frame allocator (through `TableFrames`), so it
// is unused and handed out once; the mapper zeroes new table frames itself.
unsafe impl FrameAllocator<Size4KiB> for CountingFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let f = TableFrames.allocate_frame()?;
        self.0.fetch_add(1, Ordering::Relaxed);
        Some(f)
    }
}

/// Most table frames one mapping of a 4 KiB page can add (level 3, 2 and 1).
pub const TABLES_PER_MAP: u64 = 3;

impl core::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AddressSpace({:#x})", self.root)
    }
}

pub(super) fn table(phys: u64) -> *mut PageTable {
    (DIRECT_MAP + phys) as *mut PageTable
}

impl AddressSpace {
    /// A new address space with the kernel's upper half and an empty lower half.
    pub fn new() -> Option<Self> {
        let mut frame = crate::mm::alloc_frame()?;
        let bytes = super::phys::frame_bytes(&mut frame);
        bytes.fill(0);
        let root = frame.into_raw();
        let (kernel, _) = Cr3::read();
        // SAFETY: both are level-4 tables seen through the direct map: `root` is a
        // frame we own, the kernel's is only read; the upper-half entries never change
        // after boot (paging::init fills them all).
        unsafe {
            let (dst, src) = (&mut *table(root), &*table(kernel.start_address().as_u64()));
            for i in 256..512 {
                dst[i] = src[i].clone();
            }
        }
        Some(Self {
            root,
            lock: spin::Mutex::new(()),
            tables: AtomicU64::new(1),
        })
    }

    /// Physical address of the level-4 table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Page-table frames this address space holds now.
    pub fn table_frames(&self) -> u64 {
        self.tables.load(Ordering::Relaxed)
    }

    fn with<R>(&self, f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
        let _g = self.lock.lock();
        // SAFETY: `root` is this address space's level-4 table, reached through the
        // direct map; the lock makes this the only mutable view of its lower half, and
        // the shared upper half is never modified through it (user addresses only).
        let mut m =
            unsafe { OffsetPageTable::new(&mut *table(self.root), VirtAddr::new(DIRECT_MAP)) };
        f(&mut m)
    }

    /// Maps a user page at `va` to a frame the address space takes ownership of.
    pub fn map(&self, va: u64, frame: crate::mm::Frame, flags: Flags) -> Result<(), MapError> {
        if va >= USER_END {
            return Err(MapError::NonCanonical);
        }
        let page = Page::<Size4KiB>::from_start_address(VirtAddr::new(va))
            .map_err(|_| MapError::Unaligned)?;
        let phys = frame.into_raw();
        let pf =
            PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::Unaligned)?;
        let flags = Flags {
            user: true,
            ..flags
        };
        let parent =
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE;
        let r = self.with(|m| {
            // SAFETY: the frame was just taken from the allocator (owned, unaliased) and
            // `va` is a user address in this address space only.
            unsafe {
                m.map_to_with_table_flags(
                    page,
                    pf,
                    flags.bits(),
                    parent,
                    &mut CountingFrames(&self.tables),
                )
            }
            .map(|flush| flush.ignore())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = crate::mm::free_frame(crate::mm::frame_from_raw(phys));
                Err(match e {
                    MapToError::FrameAllocationFailed => MapError::OutOfFrames,
                    MapToError::ParentEntryHugePage => MapError::HugePage,
                    MapToError::PageAlreadyMapped(_) => MapError::AlreadyMapped,
                })
            }
        }
    }

    /// Maps a frame the address space does not own (a channel page, the token page):
    /// unmapping or dropping the address space leaves it allocated. Marked with an
    /// available PTE bit so `unmap` and `Drop` know.
    pub fn map_shared(&self, va: u64, phys: u64, flags: Flags) -> Result<(), MapError> {
        if va >= USER_END {
            return Err(MapError::NonCanonical);
        }
        #[cfg(feature = "ktest")]
        if inject::should_fail() {
            return Err(MapError::OutOfFrames);
        }
        let page = Page::<Size4KiB>::from_start_address(VirtAddr::new(va))
            .map_err(|_| MapError::Unaligned)?;
        let pf =
            PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::Unaligned)?;
        let flags = Flags {
            user: true,
            ..flags
        }
        .bits()
            | SHARED;
        self.map_foreign(page, pf, flags)
    }

    /// Maps device registers at `va`: shared (never freed, never granted on, never
    /// unmapped but with the space), uncached, never executable, and marked
    /// [`DEVICE`] so the kernel never copies through it (a system call's buffer
    /// there is `BadAddress`: reads of registers have side effects, and a device
    /// above the direct map has no kernel address).
    pub fn map_device(&self, va: u64, phys: u64, writable: bool) -> Result<(), MapError> {
        if va >= USER_END {
            return Err(MapError::NonCanonical);
        }
        let page = Page::<Size4KiB>::from_start_address(VirtAddr::new(va))
            .map_err(|_| MapError::Unaligned)?;
        let pf =
            PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::Unaligned)?;
        let flags = Flags {
            writable,
            user: true,
            executable: false,
        }
        .bits()
            | SHARED
            | DEVICE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH;
        self.map_foreign(page, pf, flags)
    }

    /// Maps a frame this space does not own (`SHARED` is in `flags`).
    fn map_foreign(
        &self,
        page: Page<Size4KiB>,
        pf: PhysFrame<Size4KiB>,
        flags: PageTableFlags,
    ) -> Result<(), MapError> {
        let parent =
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE;
        self.with(|m| {
            // SAFETY: the frame stays allocated while mapped (its owner outlives the
            // mapping, see `SHARED`), and `va` is a user address of this space only.
            unsafe {
                m.map_to_with_table_flags(
                    page,
                    pf,
                    flags,
                    parent,
                    &mut CountingFrames(&self.tables),
                )
            }
            .map(|flush| flush.ignore())
            .map_err(|e| match e {
                MapToError::FrameAllocationFailed => MapError::OutOfFrames,
                MapToError::ParentEntryHugePage => MapError::HugePage,
                MapToError::PageAlreadyMapped(_) => MapError::AlreadyMapped,
            })
        })
    }

    /// Unmaps a user page, frees its frame (unless shared) and the page tables that
    /// became empty. Only while this space is live on the calling CPU alone (its own
    /// threads are pinned to one CPU): a table freed here may be reused at once, so
    /// no other CPU may hold it in its paging-structure caches.
    pub fn unmap(&self, va: u64) -> Result<(), MapError> {
        self.unmap_page(va, true)
    }

    /// Unmaps a user page (as [`unmap`](Self::unmap)) but keeps empty page tables
    /// (freed with the space): for pages taken from a process that may be running on
    /// another CPU, whose caches a TLB shootdown clears only afterwards.
    pub fn unmap_keep_tables(&self, va: u64) -> Result<(), MapError> {
        self.unmap_page(va, false)
    }

    /// After pages of `[va, va + pages * 4096)` were unmapped (`unmap_keep_tables`):
    /// frees the page tables of the range that became empty, looking at each level-1
    /// table once (not once per page: a table is 512 entries to scan). Same rule as
    /// [`unmap`](Self::unmap): only while this space is live on this CPU alone.
    pub fn free_tables_in(&self, va: u64, pages: u64) {
        const SPAN: u64 = 512 * 4096;
        let end = va.saturating_add(pages.saturating_mul(4096)).min(USER_END);
        let mut at = va & !(SPAN - 1);
        while at < end {
            let probe = at.max(va);
            let _g = self.lock.lock();
            // SAFETY: as in `unmap_page`: under the space's lock, after the range's
            // entries were cleared and flushed by the unmaps, on the only CPU that
            // may cache these tables.
            let freed = unsafe { free_empty_tables(self.root, probe) };
            self.tables.fetch_sub(freed, Ordering::Relaxed);
            at += SPAN;
        }
    }

    /// For pages taken from a process that may run on another CPU (revoke): unlinks
    /// the page tables of the range that became empty and returns them, for
    /// [`free_unlinked`] once every CPU's TLB was shot down (until then a CPU may
    /// still hold them in its paging-structure caches).
    pub fn unlink_tables_in(&self, va: u64, pages: u64) -> UnlinkedTables {
        const SPAN: u64 = 512 * 4096;
        let mut frames = UnlinkedTables(Vec::new());
        let end = va.saturating_add(pages.saturating_mul(4096)).min(USER_END);
        let mut at = va & !(SPAN - 1);
        while at < end {
            let probe = at.max(va);
            let _g = self.lock.lock();
            let mut n = 0;
            // SAFETY: under the space's lock, after the range's entries were cleared;
            // the frames are not reused before the caller's shootdown (`UnlinkedTables`
            // frees them only when told to).
            unsafe {
                unlink_empty_tables(self.root, probe, &mut |f| {
                    n += 1;
                    if frames.0.try_reserve(1).is_ok() {
                        frames.0.push(f);
                    }
                    // No room to remember it: the table leaks (it is unlinked, so
                    // nothing reaches it); better than freeing it too early.
                })
            };
            self.tables.fetch_sub(n, Ordering::Relaxed);
            at += SPAN;
        }
        frames
    }

    fn unmap_page(&self, va: u64, free_tables: bool) -> Result<(), MapError> {
        if va >= USER_END {
            return Err(MapError::NonCanonical);
        }
        let page = Page::<Size4KiB>::from_start_address(VirtAddr::new(va))
            .map_err(|_| MapError::Unaligned)?;
        let shared = self.with(|m| match m.translate(VirtAddr::new(va)) {
            TranslateResult::Mapped { flags, .. } => flags.contains(SHARED),
            _ => false,
        });
        let frame = self.with(|m| match m.unmap(page) {
            Ok((f, flush)) => {
                flush.flush();
                Ok(f.start_address().as_u64())
            }
            Err(UnmapError::PageNotMapped) | Err(UnmapError::InvalidFrameAddress(_)) => {
                Err(MapError::NotMapped)
            }
            Err(UnmapError::ParentEntryHugePage) => Err(MapError::HugePage),
        })?;
        // Other CPUs running this address space would still hold the old translation;
        // a process's threads share one CPU, so flushing here is enough.
        if !shared {
            let _ = crate::mm::free_frame(crate::mm::frame_from_raw(frame));
        }
        if free_tables {
            let _g = self.lock.lock();
            // SAFETY: under the space's lock (the only mutable view of its tables),
            // after the page's entry was cleared and flushed above (INVLPG drops the
            // paging-structure caches too); the caller guarantees no other CPU runs on
            // these tables.
            let freed = unsafe { free_empty_tables(self.root, va) };
            self.tables.fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hands the frame of an owned user page at `va` to the caller (for a page grant):
    /// the page stays mapped, now marked shared, so `unmap` and `Drop` leave the frame
    /// to its new owner. `None` if `va` is not an owned, user-mapped page.
    pub fn make_shared(&self, va: u64) -> Option<crate::mm::Frame> {
        if va >= USER_END || !va.is_multiple_of(4096) {
            return None;
        }
        let page = Page::<Size4KiB>::from_start_address(VirtAddr::new(va)).ok()?;
        self.with(|m| {
            let TranslateResult::Mapped { frame, flags, .. } = m.translate(VirtAddr::new(va))
            else {
                return None;
            };
            if flags.contains(SHARED) || !flags.contains(PageTableFlags::USER_ACCESSIBLE) {
                return None;
            }
            // SAFETY: only the software-available bit changes; the MMU ignores it, so
            // no translation changes and no TLB entry goes stale.
            unsafe { m.update_flags(page, flags | SHARED) }
                .ok()?
                .ignore();
            Some(crate::mm::frame_from_raw(frame.start_address().as_u64()))
        })
    }

    /// What is mapped for the user at page `va`: (physical address, writable, shared).
    pub fn page_info(&self, va: u64) -> Option<(u64, bool, bool)> {
        if va >= USER_END {
            return None;
        }
        self.with(|m| match m.translate(VirtAddr::new(va)) {
            TranslateResult::Mapped { frame, flags, .. }
                if flags.contains(PageTableFlags::USER_ACCESSIBLE) =>
            {
                Some((
                    frame.start_address().as_u64(),
                    flags.contains(PageTableFlags::WRITABLE),
                    flags.contains(SHARED),
                ))
            }
            _ => None,
        })
    }

    /// The physical address behind user address `va`, if mapped for the user (and
    /// writable, if `write`).
    fn user_phys(&self, va: u64, write: bool) -> Option<u64> {
        if va >= USER_END {
            return None;
        }
        self.with(|m| match m.translate(VirtAddr::new(va)) {
            TranslateResult::Mapped {
                frame,
                offset,
                flags,
            } => {
                let ok = flags.contains(PageTableFlags::USER_ACCESSIBLE)
                    && !flags.contains(DEVICE)
                    && (!write || flags.contains(PageTableFlags::WRITABLE));
                ok.then(|| frame.start_address().as_u64() + offset)
            }
            _ => None,
        })
    }

    /// Copies `len` bytes from user address `va`. `None` if any byte is not readable
    /// user memory.
    pub fn copy_from(&self, va: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(len).ok()?;
        out.resize(len, 0);
        self.read_into(va, &mut out)?;
        Some(out)
    }

    /// Fills `out` from user address `va`. `None` if any byte is not readable user
    /// memory (`out` may then be partly written).
    pub fn read_into(&self, va: u64, out: &mut [u8]) -> Option<()> {
        let end = user_range_end(va, out.len() as u64)?;
        let mut at = va;
        let mut done = 0;
        while at < end {
            let chunk = page_piece(at, end) as usize;
            let phys = self.user_phys(at, false)?;
            // SAFETY: `phys .. phys + chunk` lies within one frame mapped for this user
            // (checked above), read through the direct map. The process may change it
            // concurrently; we copy bytes, never trust them as Rust values.
            let src =
                unsafe { core::slice::from_raw_parts((DIRECT_MAP + phys) as *const u8, chunk) };
            out[done..done + chunk].copy_from_slice(src);
            done += chunk;
            at += chunk as u64;
        }
        Some(())
    }

    /// Copies `data` to user address `va`. `None` (and nothing written) if any byte is
    /// not writable user memory.
    pub fn copy_to(&self, va: u64, data: &[u8]) -> Option<()> {
        self.copy_to_checked(va, data, true)
    }

    /// Writes into the process's image regardless of page protection (the loader's
    /// relocations land in read-only pages). The pages must be mapped for the user.
    pub fn write_image(&self, va: u64, data: &[u8]) -> Option<()> {
        self.copy_to_checked(va, data, false)
    }

    /// Whether `va` is mapped writable for the user.
    pub fn is_writable(&self, va: u64) -> bool {
        self.user_phys(va, true).is_some()
    }

    fn copy_to_checked(&self, va: u64, data: &[u8], need_write: bool) -> Option<()> {
        let end = user_range_end(va, data.len() as u64)?;
        // Check every page first, so a bad tail leaves nothing half-written.
        let mut pages = Vec::new();
        let mut at = va;
        while at < end {
            let chunk = page_piece(at, end);
            pages.push((self.user_phys(at, need_write)?, chunk as usize));
            at += chunk;
        }
        let mut off = 0;
        for (phys, chunk) in pages {
            // SAFETY: as in `copy_from`, for a frame mapped writable for this user.
            let dst =
                unsafe { core::slice::from_raw_parts_mut((DIRECT_MAP + phys) as *mut u8, chunk) };
            dst.copy_from_slice(&data[off..off + chunk]);
            off += chunk;
        }
        Some(())
    }
}

/// Test-mode failure injection: make the `n`-th next `map_shared` fail as if no
/// frame were left for a page table, to drive every partial-failure path.
#[cfg(feature = "ktest")]
pub mod inject {
    use core::sync::atomic::{AtomicI64, Ordering};

    /// Calls to let through before one fails; negative: off.
    static FAIL_AFTER: AtomicI64 = AtomicI64::new(-1);

    /// The call after `n` successful ones fails (once); `None`: off.
    pub fn fail_map_shared_after(n: Option<u32>) {
        FAIL_AFTER.store(n.map_or(-1, i64::from), Ordering::SeqCst);
    }

    pub(super) fn should_fail() -> bool {
        FAIL_AFTER
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n >= 0).then(|| n - 1)
            })
            .is_ok_and(|n| n == 0)
    }
}

/// Switches CR3 to `root` if it is not already current.
pub fn activate_root(root: u64) {
    let (cur, _) = Cr3::read();
    if cur.start_address().as_u64() != root {
        // SAFETY: `root` is a level-4 table whose upper half is the kernel's (every
        // address space copies it), so the kernel keeps running across the switch.
        unsafe {
            Cr3::write(
                PhysFrame::containing_address(PhysAddr::new(root)),
                Cr3Flags::empty(),
            )
        };
    }
}

impl Drop for AddressSpace {
    /// Frees every user page and page-table frame of the lower half, and the root.
    fn drop(&mut self) {
        let (cur, _) = Cr3::read();
        if cur.start_address().as_u64() == self.root {
            activate_root(super::paging::kernel_root());
        }
        // SAFETY: no CPU runs on these tables any more (the owner's threads have exited,
        // and the check above moved this CPU off them); everything below the root's
        // lower half belongs to this address space alone.
        unsafe { free_tables(self.root, 4) };
    }
}
