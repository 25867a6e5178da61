//! The in-memory records of an object, shared by the modules that keep, persist and
//! check them: [`Object`] (size, tags, extents), [`Extent`] (a view of a written chunk)
//! and the checks on them.
//!
//! Its own module so that `fs` (the API, which applies entries), `checkpoint` (which
//! encodes and decodes them) and `store` (which reads chunks and cleans segments) all
//! depend on it and not on each other: `checkpoint` needs the types, `fs` needs the
//! extent check `checkpoint` applies on decode.

use crate::device::BLOCK_SIZE;
use crate::index::TagId;
use crate::log::{seg_of, SEG_BLOCKS};
use crate::meta::{ObjectId, ObjectMeta};
use alloc::vec::Vec;

/// A view of part of a written chunk: object bytes `off..off+len` are chunk bytes
/// `skip..skip+len`; the chunk (`chunk_len` bytes at log byte address `addr`) has
/// checksum `sum`, verified on every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub off: u64,
    pub len: u32,
    pub addr: u64,
    pub skip: u32,
    pub chunk_len: u32,
    pub sum: u32,
}

impl Extent {
    pub(crate) fn seg(&self) -> u32 {
        seg_of(self.addr / BLOCK_SIZE as u64)
    }
    pub(crate) fn end(&self) -> u64 {
        self.off + u64::from(self.len)
    }
}

/// One object's in-memory state: its size, its tags, and where its bytes are.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub size: u64,
    pub tags: Vec<TagId>,
    /// Sorted by offset, non-overlapping; holes read as zeros.
    pub extents: Vec<Extent>,
}

impl Object {
    pub(crate) fn meta(&self, id: ObjectId) -> ObjectMeta {
        ObjectMeta::new(id, self.size, self.tags.len(), self.extents.len())
    }
}

/// The checksum an [`Extent`]'s `sum` holds for its whole chunk.
pub(crate) fn chunk_sum(data: &[u8]) -> u32 {
    crate::codec::checksum(5, data) as u32
}

/// An extent is sane if it is non-empty, inside its object, within its original chunk,
/// and the chunk lies inside one log segment.
pub(crate) fn extent_ok(e: &Extent, size: u64, seg_count: u32) -> bool {
    let bs = BLOCK_SIZE as u64;
    let seg_bytes = SEG_BLOCKS * bs;
    let in_obj = e.len > 0
        && e.off
            .checked_add(u64::from(e.len))
            .is_some_and(|end| end <= size);
    let in_chunk = u64::from(e.skip) + u64::from(e.len) <= u64::from(e.chunk_len);
    let seg = e.addr / seg_bytes;
    let in_seg = seg >= 1
        && seg < u64::from(seg_count)
        && (e.addr % seg_bytes) + u64::from(e.chunk_len) <= seg_bytes;
    in_obj && in_chunk && in_seg
}
