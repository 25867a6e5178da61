//! `ObjectMeta`: the 12-byte packed record of one object, and the limits it sets.
//!
//! The same 12 bytes are the object's entry in the checkpoint's object table (followed by
//! its extents) and what `meta` returns. What fits where:
//!
//! | bytes | field          | limit that follows                                   |
//! |-------|----------------|------------------------------------------------------|
//! | 0..4  | `id`           | 2^32 - 1 object ids over the image's life (not reused) |
//! | 4..9  | `size` (40 bit)| an object holds at most 1 TiB - 1 bytes              |
//! | 9     | `tag_count`    | at most 255 tags per object                          |
//! | 10..12| `extent_count` | at most 65,535 extents; a write that would need more is refused with `Error::Limit` (rewrite the object to defragment it) |
//!
//! A tag is at most 255 bytes (its length is one byte on disk). Content lives in extents
//! in the log, tags in the tag index; neither is inside `ObjectMeta`.

/// An object's id.
pub type ObjectId = u32;

/// Largest object size representable in the 40-bit field.
pub const MAX_SIZE: u64 = (1 << 40) - 1;
/// Most tags one object may carry.
pub const MAX_TAGS: usize = u8::MAX as usize;
/// Most extents one object may have.
pub const MAX_EXTENTS: usize = u16::MAX as usize;
/// Longest tag in bytes.
pub const MAX_TAG_LEN: usize = 255;

/// The packed object record. Fields are byte arrays so the struct has alignment 1 and
/// reading a field never takes a reference to an unaligned integer.
#[repr(C, packed)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    id: [u8; 4],
    size: [u8; 5],
    tag_count: u8,
    extent_count: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<ObjectMeta>() == 12);

impl ObjectMeta {
    /// Size of the record on disk.
    pub const SIZE: usize = 12;

    /// Builds a record; the caller has checked the limits (values are truncated otherwise).
    pub fn new(id: ObjectId, size: u64, tag_count: usize, extent_count: usize) -> Self {
        let s = size.to_le_bytes();
        ObjectMeta {
            id: id.to_le_bytes(),
            size: [s[0], s[1], s[2], s[3], s[4]],
            tag_count: tag_count.min(MAX_TAGS) as u8,
            extent_count: (extent_count.min(MAX_EXTENTS) as u16).to_le_bytes(),
        }
    }
    /// The object's id.
    pub fn id(&self) -> ObjectId {
        u32::from_le_bytes(self.id)
    }
    /// Content length in bytes.
    pub fn size(&self) -> u64 {
        let s = self.size;
        u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], 0, 0, 0])
    }
    /// Number of tags.
    pub fn tag_count(&self) -> usize {
        usize::from(self.tag_count)
    }
    /// Number of extents holding the content.
    pub fn extent_count(&self) -> usize {
        usize::from(u16::from_le_bytes(self.extent_count))
    }
    /// The 12 bytes as stored.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.id);
        b[4..9].copy_from_slice(&self.size);
        b[9] = self.tag_count;
        b[10..12].copy_from_slice(&self.extent_count);
        b
    }
    /// Parses the 12 stored bytes.
    pub fn from_bytes(b: &[u8; 12]) -> Self {
        ObjectMeta {
            id: [b[0], b[1], b[2], b[3]],
            size: [b[4], b[5], b[6], b[7], b[8]],
            tag_count: b[9],
            extent_count: [b[10], b[11]],
        }
    }
}

impl core::fmt::Debug for ObjectMeta {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ObjectMeta")
            .field("id", &self.id())
            .field("size", &self.size())
            .field("tag_count", &self.tag_count())
            .field("extent_count", &self.extent_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_limits() {
        let m = ObjectMeta::new(0xdead_beef, MAX_SIZE, 255, 65_535);
        assert_eq!(m.id(), 0xdead_beef);
        assert_eq!(m.size(), MAX_SIZE);
        assert_eq!(m.tag_count(), 255);
        assert_eq!(m.extent_count(), 65_535);
        assert_eq!(ObjectMeta::from_bytes(&m.to_bytes()), m);
        assert_eq!(core::mem::align_of::<ObjectMeta>(), 1);
    }
}
