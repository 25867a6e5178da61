//! 4-level paging over the direct map: map, unmap, translate.
//!
//! Page tables are reached through the direct map, so no recursive mapping is
//! needed. One lock serialises changes to the kernel's tables (they are shared by
//! every address space's upper half).

use ::x86_64::registers::control::{Cr3, Efer, EferFlags};
use ::x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use ::x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};
use ::x86_64::{PhysAddr, VirtAddr};
use zen_abi::layout::DIRECT_MAP;

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Access rights of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    pub writable: bool,
    pub user: bool,
    pub executable: bool,
}

impl Flags {
    pub const KERNEL_DATA: Self = Self {
        writable: true,
        user: false,
        executable: false,
    };

    pub(super) fn bits(self) -> PageTableFlags {
        let mut f = PageTableFlags::PRESENT;
        if self.writable {
            f |= PageTableFlags::WRITABLE;
        }
        if self.user {
            f |= PageTableFlags::USER_ACCESSIBLE;
        }
        if !self.executable {
            f |= PageTableFlags::NO_EXECUTE;
        }
        f
    }
}

/// Why a mapping change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned,
    NonCanonical,
    AlreadyMapped,
    NotMapped,
    /// The address lies inside a 2 MiB or 1 GiB page (the direct map).
    HugePage,
    OutOfFrames,
}

/// Hands page-table frames to the mapper from the kernel's frame allocator.
pub(super) struct TableFrames;

// SAFETY: every frame comes from the frame allocator, so it is unused and handed out
// once; the mapper zeroes new table frames itself.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let f = crate::mm::alloc_frame()?;
        PhysFrame::from_start_address(PhysAddr::new(f.into_raw())).ok()
    }
}

fn with_tables<R>(f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
    let _guard = LOCK.lock();
    let (l4, _) = Cr3::read();
    let l4 = (DIRECT_MAP + l4.start_address().as_u64()) as *mut PageTable;
    // SAFETY: CR3 holds the physical address of the active level-4 table, visible
    // through the direct map; LOCK makes this the only live reference to the tables,
    // and the direct map (physical offset DIRECT_MAP) covers every table frame.
    let mut mapper = unsafe { OffsetPageTable::new(&mut *l4, VirtAddr::new(DIRECT_MAP)) };
    f(&mut mapper)
}

fn page(virt: u64) -> Result<Page<Size4KiB>, MapError> {
    let v = VirtAddr::try_new(virt).map_err(|_| MapError::NonCanonical)?;
    Page::from_start_address(v).map_err(|_| MapError::Unaligned)
}

/// Maps the 4 KiB page at `virt` to the frame at `phys`.
pub fn map(virt: u64, phys: u64, flags: Flags) -> Result<(), MapError> {
    let page = page(virt)?;
    let frame =
        PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::Unaligned)?;
    let mut parent = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    if flags.user {
        parent |= PageTableFlags::USER_ACCESSIBLE;
    }
    with_tables(|m| {
        // SAFETY: the caller owns `phys` (it came from the frame allocator or is MMIO
        // the caller drives), and `virt` was unmapped (map_to refuses otherwise), so
        // no existing reference is invalidated.
        let r = unsafe {
            m.map_to_with_table_flags(page, frame, flags.bits(), parent, &mut TableFrames)
        };
        match r {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(MapToError::FrameAllocationFailed) => Err(MapError::OutOfFrames),
            Err(MapToError::ParentEntryHugePage) => Err(MapError::HugePage),
            Err(MapToError::PageAlreadyMapped(_)) => Err(MapError::AlreadyMapped),
        }
    })
}

/// Unmaps the 4 KiB page at `virt`, returning the frame it mapped.
pub fn unmap(virt: u64) -> Result<u64, MapError> {
    let page = page(virt)?;
    with_tables(|m| match m.unmap(page) {
        Ok((frame, flush)) => {
            flush.flush();
            Ok(frame.start_address().as_u64())
        }
        Err(UnmapError::PageNotMapped) => Err(MapError::NotMapped),
        Err(UnmapError::ParentEntryHugePage) => Err(MapError::HugePage),
        Err(UnmapError::InvalidFrameAddress(_)) => Err(MapError::NotMapped),
    })
}

/// The physical address `virt` maps to, if any (any page size).
pub fn translate(virt: u64) -> Option<u64> {
    let v = VirtAddr::try_new(virt).ok()?;
    with_tables(|m| match m.translate(v) {
        TranslateResult::Mapped { frame, offset, .. } => {
            Some(frame.start_address().as_u64() + offset)
        }
        _ => None,
    })
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot level-4 table, which kernel threads run on.
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Enables no-execute pages, removes the stub's identity map of low memory (so a null
/// or low pointer dereference faults) and gives every upper-half level-4 entry a table,
/// so address spaces that copy the upper half see every later kernel mapping.
pub fn init() {
    // SAFETY: setting EFER.NXE only makes the NO_EXECUTE bit meaningful; no existing
    // mapping sets it yet.
    unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    let _guard = LOCK.lock();
    let (l4, cr3_flags) = Cr3::read();
    let table = (DIRECT_MAP + l4.start_address().as_u64()) as *mut PageTable;
    // SAFETY: as in `with_tables`; the kernel runs from the higher half on its own
    // stack, so nothing uses the identity map any more. Reloading CR3 flushes it.
    unsafe {
        (&mut *table)[0].set_unused();
        for i in 256..512 {
            if (&*table)[i].is_unused() {
                let f = crate::mm::alloc_frame().expect("no memory for kernel page tables");
                let phys = f.into_raw();
                core::ptr::write_bytes((DIRECT_MAP + phys) as *mut u8, 0, 4096);
                (&mut *table)[i].set_addr(
                    PhysAddr::new(phys),
                    PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                );
            }
        }
        Cr3::write(l4, cr3_flags);
    }
    KERNEL_ROOT.store(
        l4.start_address().as_u64(),
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// Kernel addresses for device registers the kernel itself writes (MSI-X tables):
/// mapped uncached here rather than reached through the direct map, whose 2 MiB
/// write-back pages would leave the caching to the firmware's MTRRs and which ends
/// at the top of RAM (a 64-bit BAR may lie far above). A bump allocator: devices are
/// found once, at boot, and never go away.
const MMIO_WINDOW: u64 = 0xffff_e000_0000_0000;
const MMIO_WINDOW_END: u64 = MMIO_WINDOW + (1 << 30);
static MMIO_NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(MMIO_WINDOW);

/// Maps `len` bytes of device registers at `phys` for the kernel, uncached and never
/// executable; the kernel address of `phys`. `None` when the window is full or a page
/// table could not be had.
pub fn map_mmio(phys: u64, len: u64) -> Option<u64> {
    use core::sync::atomic::Ordering;
    let first = phys & !0xfff;
    let end = phys
        .checked_add(len.max(1))?
        .checked_next_multiple_of(4096)?;
    let bytes = end - first;
    let virt = MMIO_NEXT
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            v.checked_add(bytes).filter(|&e| e <= MMIO_WINDOW_END)
        })
        .ok()?;
    let flags =
        Flags::KERNEL_DATA.bits() | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    for off in (0..bytes).step_by(4096) {
        let page = page(virt + off).ok()?;
        let frame = PhysFrame::from_start_address(PhysAddr::new(first + off)).ok()?;
        let done = with_tables(|m| {
            // SAFETY: the window is the kernel's alone and each address in it is
            // handed out once (the bump above), so nothing else maps or uses it;
            // `phys` is device memory the caller found in a BAR, not RAM.
            unsafe {
                m.map_to_with_table_flags(
                    page,
                    frame,
                    flags,
                    PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                    &mut TableFrames,
                )
            }
            .map(|f| f.flush())
            .is_ok()
        });
        if !done {
            return None;
        }
    }
    Some(virt + (phys - first))
}
