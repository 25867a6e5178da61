//! Tests of the frame allocator, paging and the heap.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{check, TestResult};
use crate::arch::interrupts::{probe_read, FIXED_FAULTS};
use crate::arch::paging::{self, Flags, MapError};
use crate::arch::phys::frame_bytes;
use crate::mm;
use zen_frames::FreeError;

/// A virtual address nothing else maps (PML4 slot 384).
const TEST_VA: u64 = 0xffff_c000_0000_0000;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn frame_alloc_free() -> TestResult {
    let before = mm::free_frames();
    let a = mm::alloc_frame().ok_or("no frame")?;
    let b = mm::alloc_frame().ok_or("no second frame")?;
    check(a.addr() != b.addr(), "same frame twice")?;
    check(
        a.addr() % 4096 == 0 && a.addr() >= 1 << 20,
        "frame misaligned or in low memory",
    )?;
    check(
        mm::free_frames() == before - 2,
        "free count not decremented",
    )?;
    let a_addr = a.addr();
    mm::free_frame(a).map_err(|_| "free failed")?;
    mm::free_frame(b).map_err(|_| "free failed")?;
    check(mm::free_frames() == before, "free count not restored")?;
    check(
        mm::free_frame(mm::forge_frame(a_addr)) == Err(FreeError::NotAllocated),
        "double free accepted",
    )?;
    check(
        mm::free_frame(mm::forge_frame(a_addr + 1)) == Err(FreeError::Unaligned),
        "unaligned free accepted",
    )
}

pub fn frame_exhaustion() -> TestResult {
    let before = mm::free_frames();
    let mut all = Vec::with_capacity(before as usize);
    while let Some(f) = mm::alloc_frame() {
        all.push(f);
    }
    check(all.len() as u64 == before, "did not get every free frame")?;
    check(
        mm::free_frames() == 0,
        "allocator claims free frames while exhausted",
    )?;
    check(
        mm::alloc_frame().is_none(),
        "allocation succeeded while exhausted",
    )?;
    for f in all {
        mm::free_frame(f).map_err(|_| "free failed")?;
    }
    check(mm::free_frames() == before, "free count not restored")?;
    // Exactly the two failed allocations above, and nothing else, were recorded.
    let reg = &crate::edge::EDGE_REGISTRY;
    check(
        reg.len() == 2 && reg.count(zen_edge::EdgeKind::AllocFailure) == 2,
        "EDGE_REGISTRY does not hold exactly the two allocation failures",
    )?;
    reg.clear();
    Ok(())
}

pub fn map_unmap_translate() -> TestResult {
    let mut frame = mm::alloc_frame().ok_or("no frame")?;
    for (i, b) in frame_bytes(&mut frame).iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let phys = frame.into_raw();
    paging::map(TEST_VA, phys, Flags::KERNEL_DATA).map_err(|_| "map failed")?;
    check(
        paging::translate(TEST_VA + 5) == Some(phys + 5),
        "translate gave the wrong frame",
    )?;
    check(
        probe_read(TEST_VA + 123) == Some((123 * 7) as u8),
        "mapped page reads wrong data",
    )?;
    check(
        paging::map(TEST_VA, phys, Flags::KERNEL_DATA) == Err(MapError::AlreadyMapped),
        "double map",
    )?;
    check(
        paging::map(TEST_VA + 1, phys, Flags::KERNEL_DATA) == Err(MapError::Unaligned),
        "unaligned map",
    )?;
    check(
        paging::map(0x0000_8000_0000_0000, phys, Flags::KERNEL_DATA) == Err(MapError::NonCanonical),
        "non-canonical map",
    )?;
    check(
        paging::unmap(TEST_VA) == Ok(phys),
        "unmap returned the wrong frame",
    )?;
    check(
        paging::translate(TEST_VA).is_none(),
        "still mapped after unmap",
    )?;
    check(
        paging::unmap(TEST_VA) == Err(MapError::NotMapped),
        "unmapped twice",
    )?;
    mm::free_frame(mm::forge_frame(phys)).map_err(|_| "free failed")
}

pub fn page_fault_caught() -> TestResult {
    let before = FIXED_FAULTS.load(core::sync::atomic::Ordering::Relaxed);
    check(
        probe_read(TEST_VA).is_none(),
        "unmapped higher-half read did not fault",
    )?;
    check(
        probe_read(0).is_none(),
        "null read did not fault (identity map left?)",
    )?;
    check(
        probe_read(page_fault_caught as fn() -> TestResult as usize as u64).is_some(),
        "kernel text unreadable",
    )?;
    let after = FIXED_FAULTS.load(core::sync::atomic::Ordering::Relaxed);
    check(after == before + 2, "page faults not counted")
}

#[repr(align(4096))]
struct Page([u8; 4096]);

pub fn heap_stress() -> TestResult {
    let (live0, bytes0) = crate::arch::heap::stats();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut pages: Vec<Box<Page>> = Vec::new();
    // About 1,300 blocks stay live at the peak, ~1 MiB of the 4 MiB heap.
    for round in 0..2000u32 {
        let size = match rng.next() % 20 {
            0 => (rng.next() % 16_384) as usize,
            1..=6 => (rng.next() % 1024) as usize,
            _ => (rng.next() % 64) as usize + 1,
        };
        blocks.push(alloc::vec![round as u8; size]);
        if round % 97 == 0 {
            pages.push(Box::new(Page([round as u8; 4096])));
        }
        // Free a random block now and then, so frees interleave with allocations.
        if rng.next() % 3 == 0 && !blocks.is_empty() {
            let i = (rng.next() % blocks.len() as u64) as usize;
            let b = blocks.swap_remove(i);
            check(
                b.iter().all(|&x| x == b.first().copied().unwrap_or(0)),
                "block corrupted",
            )?;
        }
    }
    check(
        pages.iter().all(|p| (p.0.as_ptr() as usize) % 4096 == 0),
        "page-aligned box misaligned",
    )?;
    while !blocks.is_empty() {
        let i = (rng.next() % blocks.len() as u64) as usize;
        let b = blocks.swap_remove(i);
        check(
            b.iter().all(|&x| x == b.first().copied().unwrap_or(0)),
            "block corrupted",
        )?;
    }
    drop(blocks);
    drop(pages);
    check(
        crate::arch::heap::stats() == (live0, bytes0),
        "heap counters not back to their start",
    )
}
