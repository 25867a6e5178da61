//! Typed access to physical memory through the direct map.
//!
//! Each function hands out a reference to memory that the caller provably owns (a
//! `Frame` value, or a region claimed once at boot), which is what keeps the callers
//! outside this layer free of `unsafe`.

use core::sync::atomic::{AtomicBool, Ordering};
use zen_abi::boot::{Framebuffer, PixelFormat};
use zen_abi::layout::DIRECT_MAP;

use crate::mm::Frame;

/// The 4 KiB of memory behind a frame the caller owns.
pub fn frame_bytes(frame: &mut Frame) -> &mut [u8; 4096] {
    // SAFETY: `Frame` values are unique (not Clone, minted only by the frame
    // allocator), so the `&mut Frame` borrow guarantees exclusive access; the direct
    // map covers all physical memory.
    unsafe { &mut *((DIRECT_MAP + frame.addr()) as *mut [u8; 4096]) }
}

static BITMAP_CLAIMED: AtomicBool = AtomicBool::new(false);

/// The frame allocator's bitmap storage: `words` u64s at `phys`, taken once at boot
/// from a usable region before the allocator exists. Panics if called twice.
pub fn claim_bitmap(phys: u64, words: usize) -> &'static mut [u64] {
    assert!(
        !BITMAP_CLAIMED.swap(true, Ordering::SeqCst),
        "bitmap claimed twice"
    );
    assert!(phys.is_multiple_of(8));
    // SAFETY: claimed once (checked above); the caller takes the range from a usable
    // region of the memory map and reserves it in the allocator it builds, so nothing
    // else ever refers to it.
    unsafe { core::slice::from_raw_parts_mut((DIRECT_MAP + phys) as *mut u64, words) }
}

static FB_CLAIMED: AtomicBool = AtomicBool::new(false);

/// The linear framebuffer as 32-bit pixels, once; `None` if there is none or it was
/// already claimed.
pub fn claim_framebuffer(fb: &Framebuffer) -> Option<&'static mut [u32]> {
    let usable = fb.format == PixelFormat::Rgb as u32 || fb.format == PixelFormat::Bgr as u32;
    let pixels = fb.stride as u64 * fb.height as u64;
    if !usable || fb.base == 0 || pixels == 0 || pixels * 4 > fb.size || !fb.base.is_multiple_of(4)
    {
        return None;
    }
    if FB_CLAIMED.swap(true, Ordering::SeqCst) {
        return None;
    }
    // SAFETY: the firmware reported this range as the framebuffer (device memory, not
    // in the usable map); it is claimed once and lies within the direct map, which the
    // stub extends to at least 4 GiB.
    Some(unsafe {
        core::slice::from_raw_parts_mut((DIRECT_MAP + fb.base) as *mut u32, pixels as usize)
    })
}

/// Sets every pixel of `px` to `c`: one `rep stosq` for all but an unaligned edge, two
/// pixels per store where a loop of `u32` stores (the kernel has no SIMD) took 1.5
/// million instructions for a 1280x800 screen, half the boot. CPUs with fast strings
/// (ERMSB, every x86_64 CPU of the last decade) run it at cache-line speed.
pub fn fill_pixels(px: &mut [u32], c: u32) {
    // SAFETY: any bit pattern is a valid u64; `align_to_mut` splits only at alignment.
    let (head, mid, tail) = unsafe { px.align_to_mut::<u64>() };
    head.fill(c);
    tail.fill(c);
    let pair = (c as u64) << 32 | c as u64;
    // SAFETY: stores `mid.len()` u64s from `mid`'s start: exactly the slice. The
    // direction flag is clear (the ABI requires it at every call).
    unsafe {
        core::arch::asm!(
            "rep stosq",
            inout("rcx") mid.len() => _,
            inout("rdi") mid.as_mut_ptr() => _,
            in("rax") pair,
            options(nostack, preserves_flags)
        );
    }
}

/// A frame shared with user space (a channel's pages, a token page): zeroed when
/// created, freed when dropped. It hands out only what is sound to share with a process
/// that may write the memory at any time: references to all-atomic ring headers, and a
/// mutable view of a token page, which processes map read-only.
#[derive(Debug)]
pub struct SharedFrame(Option<Frame>);

impl SharedFrame {
    pub fn new() -> Option<Self> {
        let mut f = crate::mm::alloc_frame()?;
        frame_bytes(&mut f).fill(0);
        Some(SharedFrame(Some(f)))
    }

    /// Takes ownership of a frame as it is (a granted user page: its contents stay).
    pub fn adopt(f: Frame) -> Self {
        SharedFrame(Some(f))
    }

    pub fn addr(&self) -> u64 {
        self.0.as_ref().map_or(0, |f| f.addr())
    }

    fn ptr(&self) -> *mut u8 {
        (DIRECT_MAP + self.addr()) as *mut u8
    }

    /// The frame as a ring's producer-words page (`zen_abi::ipc::PRODUCER_PAGE`).
    pub fn producer_words(&self) -> &zen_abi::ipc::ProducerWords {
        // SAFETY: the frame is owned by `self` and stays allocated while the borrow
        // lives; ProducerWords is a 64-byte, 64-aligned struct of atomics at offset 0
        // of a page-aligned frame, so the reference is aligned and every access
        // through it is atomic, whatever the process does to the page meanwhile.
        unsafe { &*(self.ptr() as *const zen_abi::ipc::ProducerWords) }
    }

    /// The frame as a ring's consumer-words page (`zen_abi::ipc::CONSUMER_PAGE`).
    pub fn consumer_words(&self) -> &zen_abi::ipc::ConsumerWords {
        // SAFETY: as for `producer_words`, for the consumer's 64-byte struct.
        unsafe { &*(self.ptr() as *const zen_abi::ipc::ConsumerWords) }
    }

    /// The frame as a token page (the kernel is its only writer: processes map it
    /// read-only).
    pub fn token_page(&mut self) -> &mut zen_abi::cap::TokenPage {
        // SAFETY: exclusive through `&mut self`; TokenPage is 4096 bytes, align 4096,
        // plain integers for which any bit pattern is valid; user space only reads it.
        unsafe { &mut *(self.ptr() as *mut zen_abi::cap::TokenPage) }
    }
}

impl Drop for SharedFrame {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = crate::mm::free_frame(f);
        }
    }
}
