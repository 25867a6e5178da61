//! Reads into memory the engine does not own ([`Memory`]), with the device moving whole
//! blocks straight there where the content allows (zero copy): `Fs::read_into`.
//!
//! A chunk goes direct when the read wants all of it, it starts on a block on the disk
//! (the writer aligns content of 32 KiB or more, see `store`; smaller content at the
//! start of a record, or after whole blocks, is aligned too), it lands on a block of
//! the destination, it is on the disk (not in the open record), and the device can reach
//! the memory. Its whole blocks are read in place, runs of chunks that follow each other
//! on the disk and in the object in one request, all the runs of a read asked for at
//! once (so a device can keep them in flight together); the last partial block (if
//! any) comes through the engine and is copied. Every chunk is then checked against its checksum
//! over the bytes that arrived, exactly as the copy path checks it. Anything else (a
//! part of a chunk, an unaligned destination, a device that cannot) is the copy path.

use crate::device::{BlockDevice, Memory, Run, BLOCK_SIZE};
use crate::fs::Fs;
use crate::meta::ObjectId;
use crate::object::Extent;
use crate::{corrupt, Result};
use alloc::vec;
use alloc::vec::Vec;
use xxhash_rust::xxh3::Xxh3;

/// What a `read_into` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadInto {
    /// Bytes read (0 at or past the end).
    pub len: usize,
    /// Of those, bytes the device put straight into the memory.
    pub direct: usize,
}

const BS: usize = BLOCK_SIZE;

/// Zeros for holes, put a block at a time.
static ZEROS: [u8; BS] = [0; BS];

fn fill_zero(dst: &mut dyn Memory, mut at: usize, mut len: usize) {
    while len > 0 {
        let n = len.min(BS);
        dst.put(at, &ZEROS[..n]);
        (at, len) = (at + n, len - n);
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Reads from `off` into `dst` from its byte 0, at most `dst.len()` bytes (as
    /// [`Fs::read`] does into a slice), moving block-aligned chunks without a copy.
    /// On `Err` the memory may hold part of the content, never bytes that failed
    /// their check (what came direct is zeroed again).
    pub fn read_into(&mut self, id: ObjectId, off: u64, dst: &mut dyn Memory) -> Result<ReadInto> {
        let Some((n, hits)) = self.span(id, off, dst.len())? else {
            return Ok(ReadInto::default());
        };
        let end = off + n as u64;
        let mut done = ReadInto { len: n, direct: 0 };
        // Holes read as zeros: the gaps between extents, and after the last.
        let mut at = off;
        for e in &hits {
            if e.off > at {
                fill_zero(dst, (at - off) as usize, (e.off - at) as usize);
            }
            at = at.max(e.end());
        }
        if end > at {
            fill_zero(dst, (at - off) as usize, (end - at) as usize);
        }
        // The runs that can go direct: extents that follow each other on the disk
        // and in the object, each whole and block-aligned, as one device request.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < hits.len() {
            let mut j = i;
            while j < hits.len() && self.direct_ok(&hits[j], off, end) {
                j += 1;
                let (e, next) = (&hits[j - 1], hits.get(j));
                let joins = next.is_some_and(|x| {
                    (e.chunk_len as usize).is_multiple_of(BS)
                        && x.off == e.end()
                        && x.addr == e.addr + u64::from(e.chunk_len)
                });
                if !joins {
                    break;
                }
            }
            if j > i {
                runs.push((i, j));
                i = j;
            } else {
                i += 1;
            }
        }
        let asks: Vec<Run> = runs
            .iter()
            .map(|&(i, j)| Run {
                lba: hits[i].addr / BS as u64,
                count: hits[i..j]
                    .iter()
                    .map(|e| u64::from(e.chunk_len) / BS as u64)
                    .sum(),
                at: (hits[i].off - off) as usize,
            })
            .collect();
        // All at once (the device may keep them in flight together), then checked.
        let mut direct = vec![false; hits.len()];
        if !asks.is_empty() {
            let checked = self.dev.read_into(&asks, dst).and_then(|went| {
                if went {
                    for &(i, j) in &runs {
                        direct[i..j].iter_mut().for_each(|d| *d = true);
                        for e in &hits[i..j] {
                            self.check_direct(e, off, dst)?;
                            done.direct += e.chunk_len as usize / BS * BS;
                        }
                    }
                }
                Ok(())
            });
            if let Err(x) = checked {
                // Nothing unchecked stays behind in the reader's memory.
                for r in &asks {
                    fill_zero(dst, r.at, r.count as usize * BS);
                }
                return Err(x);
            }
        }
        // The copy path, for the rest.
        for (e, _) in hits.iter().zip(&direct).filter(|(_, d)| !**d) {
            let chunk = self.read_chunk(e)?;
            let (from, to) = (e.off.max(off), e.end().min(end));
            let src = (u64::from(e.skip) + from - e.off) as usize;
            dst.put(
                (from - off) as usize,
                &chunk[src..src + (to - from) as usize],
            );
        }
        Ok(done)
    }

    /// Whether extent `e` can go direct in a read of `off..end`.
    fn direct_ok(&self, e: &Extent, off: u64, end: u64) -> bool {
        // Not in the open record (its data area starts after the head's block).
        let open = (self.head + 1) * BS as u64;
        let pending = e.addr >= open && e.addr < open + self.pend_data.len() as u64;
        !pending
            && e.skip == 0
            && e.len == e.chunk_len
            && e.chunk_len as usize >= BS
            && e.off >= off
            && e.end() <= end
            && (e.off - off).is_multiple_of(BS as u64)
            && e.addr.is_multiple_of(BS as u64)
    }

    /// Checks a chunk the device put at its place in `dst` (a read from `off`), after
    /// bringing its last partial block (if any) through the engine.
    fn check_direct(&mut self, e: &Extent, off: u64, dst: &mut dyn Memory) -> Result<()> {
        let at = (e.off - off) as usize;
        let full = e.chunk_len as usize / BS * BS;
        let mut piece = vec![0u8; BS];
        let mut h = Xxh3::with_seed(5);
        for b in (0..full).step_by(BS) {
            dst.get(at + b, &mut piece);
            h.update(&piece);
        }
        let tail = e.chunk_len as usize - full;
        if tail > 0 {
            self.dev
                .read_block((e.addr + full as u64) / BS as u64, &mut piece)?;
            h.update(&piece[..tail]);
            dst.put(at + full, &piece[..tail]);
        }
        if h.digest() as u32 != e.sum {
            return Err(corrupt!(
                "content at log byte {} fails its checksum",
                e.addr
            ));
        }
        Ok(())
    }
}
