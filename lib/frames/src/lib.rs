//! zen-frames: the kernel's physical frame allocator, as pure logic.
//!
//! One bit per 4 KiB frame of physical memory (1 = free), in storage the caller
//! provides: the kernel carves it out of the first usable region that fits, so the
//! allocator needs no heap and works before there is one. The bitmap costs 32 KiB per
//! GiB of physical memory. Allocation is next-fit from a word hint, so a run of
//! allocations is amortised O(1); freeing checks that the frame was allocated, so a
//! double free is an error, not silent corruption.
#![no_std]
#![deny(unsafe_code)]

/// Bytes per frame.
pub const FRAME_SIZE: u64 = 4096;

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Not 4 KiB aligned.
    Unaligned,
    /// Beyond the memory the bitmap covers.
    OutOfRange,
    /// The frame is already free (double free, or never allocatable).
    NotAllocated,
}

/// A bitmap frame allocator over physical frames `0 .. frames`.
pub struct FrameBitmap<'a> {
    bits: &'a mut [u64],
    frames: u64,
    free: u64,
    /// Word index where the next search starts (next-fit).
    hint: usize,
}

impl core::fmt::Debug for FrameBitmap<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameBitmap")
            .field("frames", &self.frames)
            .field("free", &self.free)
            .finish()
    }
}

impl<'a> FrameBitmap<'a> {
    /// Words of storage needed to cover physical memory up to `max_phys` (exclusive).
    pub const fn words_for(max_phys: u64) -> usize {
        let frames = max_phys.div_ceil(FRAME_SIZE);
        frames.div_ceil(64) as usize
    }

    /// An allocator with every frame in use; add memory with [`Self::add_free`].
    /// Covers `min(max_phys, 64 * bits.len() frames)`.
    pub fn new(bits: &'a mut [u64], max_phys: u64) -> Self {
        bits.fill(0);
        let frames = (max_phys / FRAME_SIZE).min(bits.len() as u64 * 64);
        Self {
            bits,
            frames,
            free: 0,
            hint: 0,
        }
    }

    /// Marks the whole frames inside `[base, base + len)` free. Partial frames at the
    /// edges are left alone: a region that does not cover a frame completely must not
    /// hand it out.
    pub fn add_free(&mut self, base: u64, len: u64) {
        let first = base.div_ceil(FRAME_SIZE);
        let end = (base.saturating_add(len) / FRAME_SIZE).min(self.frames);
        self.free += self.set_range(first, end, true);
    }

    /// Marks every frame touching `[base, base + len)` used (e.g. the bitmap itself).
    pub fn reserve(&mut self, base: u64, len: u64) {
        let first = base / FRAME_SIZE;
        let end = base
            .saturating_add(len)
            .div_ceil(FRAME_SIZE)
            .min(self.frames);
        self.free -= self.set_range(first, end, false);
    }

    /// Allocates one frame; returns its physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let words = self.bits.len();
        for i in 0..words {
            let w = (self.hint + i) % words;
            let word = self.bits[w];
            if word != 0 {
                let bit = word.trailing_zeros() as u64;
                let frame = w as u64 * 64 + bit;
                if frame >= self.frames {
                    continue;
                }
                self.set(frame, false);
                self.free -= 1;
                self.hint = w;
                return Some(frame * FRAME_SIZE);
            }
        }
        None
    }

    /// Allocates `n` physically contiguous frames (first fit); returns the first
    /// address. O(frames): for rare, boot-time requests such as the initial heap.
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut run = 0;
        for f in 0..self.frames {
            run = if self.is_free(f) { run + 1 } else { 0 };
            if run == n {
                let first = f + 1 - n;
                self.free -= self.set_range(first, f + 1, false);
                return Some(first * FRAME_SIZE);
            }
        }
        None
    }

    /// Returns a frame obtained from [`Self::alloc`] or [`Self::alloc_contiguous`].
    pub fn free(&mut self, addr: u64) -> Result<(), FreeError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Unaligned);
        }
        let frame = addr / FRAME_SIZE;
        if frame >= self.frames {
            return Err(FreeError::OutOfRange);
        }
        if self.is_free(frame) {
            return Err(FreeError::NotAllocated);
        }
        self.set(frame, true);
        self.free += 1;
        Ok(())
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames the bitmap covers (free or not).
    pub fn total_frames(&self) -> u64 {
        self.frames
    }

    fn is_free(&self, frame: u64) -> bool {
        self.bits[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    /// Marks frames `first..end` free or used a word at a time (the boot marks all of
    /// memory: frame by frame it cost the kernel a third of its boot); returns how many
    /// frames changed.
    fn set_range(&mut self, first: u64, end: u64, free: bool) -> u64 {
        let mut changed = 0;
        let mut f = first;
        while f < end {
            let (w, bit) = ((f / 64) as usize, f % 64);
            let n = (64 - bit).min(end - f);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            let word = &mut self.bits[w];
            if free {
                changed += (!*word & mask).count_ones() as u64;
                *word |= mask;
            } else {
                changed += (*word & mask).count_ones() as u64;
                *word &= !mask;
            }
            f += n;
        }
        changed
    }

    fn set(&mut self, frame: u64, free: bool) {
        let w = &mut self.bits[(frame / 64) as usize];
        if free {
            *w |= 1 << (frame % 64);
        } else {
            *w &= !(1 << (frame % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn edges_of_regions_are_respected() {
        let mut bits = vec![0u64; FrameBitmap::words_for(1 << 20)];
        let mut fa = FrameBitmap::new(&mut bits, 1 << 20);
        // 0x1800..0x5800 covers frames 2, 3, 4 completely, 1 and 5 partially.
        fa.add_free(0x1800, 0x4000);
        assert_eq!(fa.free_frames(), 3);
        let got: BTreeSet<u64> = (0..3).map(|_| fa.alloc().unwrap()).collect();
        assert_eq!(got, [0x2000, 0x3000, 0x4000].into_iter().collect());
        assert_eq!(fa.alloc(), None);
    }

    #[test]
    fn exhaustion_and_free_restore_everything() {
        let max = 64 << 20; // 64 MiB = 16384 frames
        let mut bits = vec![0u64; FrameBitmap::words_for(max)];
        let mut fa = FrameBitmap::new(&mut bits, max);
        fa.add_free(0x10_0000, max - 0x10_0000);
        fa.reserve(0x20_0000, 0x1001); // two frames, one partially covered
        let before = fa.free_frames();
        assert_eq!(before, 16384 - 256 - 2);
        let mut all = Vec::new();
        while let Some(f) = fa.alloc() {
            assert!(f >= 0x10_0000 && f < max && !(0x20_0000..0x20_2000).contains(&f));
            all.push(f);
        }
        assert_eq!(all.len() as u64, before);
        assert_eq!(
            all.iter().collect::<BTreeSet<_>>().len(),
            all.len(),
            "no frame twice"
        );
        assert_eq!(fa.free_frames(), 0);
        for f in all {
            fa.free(f).unwrap();
        }
        assert_eq!(fa.free_frames(), before);
    }

    #[test]
    fn contiguous_edges_and_the_figures() {
        let mut bits = vec![0u64; 4];
        let mut fa = FrameBitmap::new(&mut bits, 256 * FRAME_SIZE);
        fa.add_free(0, 256 * FRAME_SIZE);
        assert_eq!(fa.total_frames(), 256);
        // Every free frame at once, when they are all one run.
        assert_eq!(fa.alloc_contiguous(256), Some(0));
        assert_eq!(fa.free_frames(), 0);
        fa.free(0).unwrap();
        fa.free(5 * FRAME_SIZE).unwrap();
        // Nothing for zero frames, even next to a used frame; more than is free fails.
        assert_eq!(fa.alloc_contiguous(0), None);
        assert_eq!(fa.alloc_contiguous(3), None);
        assert_eq!(fa.free_frames(), 2);
        let shown = std::format!("{fa:?}");
        assert!(
            shown.contains("frames: 256") && shown.contains("free: 2"),
            "{shown}"
        );
    }

    #[test]
    fn bad_frees_are_refused() {
        let mut bits = vec![0u64; 4];
        let mut fa = FrameBitmap::new(&mut bits, 256 * FRAME_SIZE);
        fa.add_free(0, 256 * FRAME_SIZE);
        let f = fa.alloc().unwrap();
        assert_eq!(fa.free(f + 1), Err(FreeError::Unaligned));
        assert_eq!(fa.free(256 * FRAME_SIZE), Err(FreeError::OutOfRange));
        fa.free(f).unwrap();
        assert_eq!(fa.free(f), Err(FreeError::NotAllocated));
    }

    #[test]
    fn contiguous_runs_skip_holes() {
        let mut bits = vec![0u64; 2];
        let mut fa = FrameBitmap::new(&mut bits, 128 * FRAME_SIZE);
        fa.add_free(0, 128 * FRAME_SIZE);
        fa.reserve(5 * FRAME_SIZE, FRAME_SIZE);
        assert_eq!(fa.alloc_contiguous(8), Some(6 * FRAME_SIZE));
        assert_eq!(fa.alloc_contiguous(5), Some(0));
        assert_eq!(fa.alloc_contiguous(200), None);
        assert_eq!(fa.free_frames(), 128 - 1 - 8 - 5);
    }

    #[test]
    fn random_alloc_free_matches_model() {
        let mut bits = vec![0u64; 8];
        let mut fa = FrameBitmap::new(&mut bits, 500 * FRAME_SIZE);
        fa.add_free(0, 500 * FRAME_SIZE);
        let mut live = BTreeSet::new();
        let mut x = 0x9E37_79B9u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x % 3 != 0 {
                match fa.alloc() {
                    Some(f) => assert!(live.insert(f), "handed out twice"),
                    None => assert_eq!(live.len(), 500),
                }
            } else if let Some(&f) = live.iter().nth(x as usize % live.len().max(1)) {
                live.remove(&f);
                fa.free(f).unwrap();
            }
            assert_eq!(fa.free_frames(), 500 - live.len() as u64);
        }
    }

    #[test]
    fn ranges_marked_a_word_at_a_time_match_frame_by_frame() {
        // Random add_free/reserve over unaligned ranges (word edges, single frames,
        // whole words, past the end) against a model of one bool per frame.
        let frames = 700u64;
        let mut bits = vec![0u64; 12];
        let mut fa = FrameBitmap::new(&mut bits, frames * FRAME_SIZE);
        let mut model = vec![false; frames as usize];
        let mut x = 0x2545_F491u32;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let first = (x % 760) as u64;
            let len = ((x >> 10) % 200) as u64;
            let (base, bytes) = (first * FRAME_SIZE + (x >> 20) as u64 % 3, len * FRAME_SIZE);
            let free = x & 1 == 0;
            if free {
                fa.add_free(base, bytes);
                let (a, b) = (base.div_ceil(FRAME_SIZE), (base + bytes) / FRAME_SIZE);
                for f in a..b.min(frames) {
                    model[f as usize] = true;
                }
            } else {
                fa.reserve(base, bytes);
                let (a, b) = (base / FRAME_SIZE, (base + bytes).div_ceil(FRAME_SIZE));
                for f in a..b.min(frames) {
                    model[f as usize] = false;
                }
            }
            let want = model.iter().filter(|&&m| m).count() as u64;
            assert_eq!(fa.free_frames(), want);
        }
        for f in 0..frames {
            assert_eq!(fa.is_free(f), model[f as usize], "frame {f}");
        }
    }
}
