//! Journal entries: the operations a record's payload carries, replayed at mount.
//!
//! Entries are logical (create, write, tag, ...), not block images, so a record is
//! small and LZ4 squeezes the repeated tag names. A `Write` entry points at bytes in its
//! own record's data area; applying it is pure bookkeeping, which is why replay never
//! has to read object content. Apply is deterministic, so replaying the same entries on
//! the same checkpoint always yields the same state.

use crate::codec::{put_str, put_u32, put_u64, put_u8, Reader};
use crate::meta::ObjectId;
use crate::{corrupt, Result};
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    Create(ObjectId),
    Delete(ObjectId),
    /// Content bytes `off..off+len` of `id` now live at log byte address `addr`.
    Write {
        id: ObjectId,
        off: u64,
        len: u32,
        addr: u64,
        sum: u32,
    },
    Truncate {
        id: ObjectId,
        size: u64,
    },
    AddTag {
        id: ObjectId,
        tag: &'a str,
    },
    RemoveTag {
        id: ObjectId,
        tag: &'a str,
    },
}

const CREATE: u8 = 1;
const DELETE: u8 = 2;
const WRITE: u8 = 3;
const TRUNCATE: u8 = 4;
const ADD_TAG: u8 = 5;
const REMOVE_TAG: u8 = 6;

impl<'a> Entry<'a> {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Entry::Create(id) => {
                put_u8(out, CREATE);
                put_u32(out, id);
            }
            Entry::Delete(id) => {
                put_u8(out, DELETE);
                put_u32(out, id);
            }
            Entry::Write {
                id,
                off,
                len,
                addr,
                sum,
            } => {
                put_u8(out, WRITE);
                put_u32(out, id);
                put_u64(out, off);
                put_u32(out, len);
                put_u64(out, addr);
                put_u32(out, sum);
            }
            Entry::Truncate { id, size } => {
                put_u8(out, TRUNCATE);
                put_u32(out, id);
                put_u64(out, size);
            }
            Entry::AddTag { id, tag } => {
                put_u8(out, ADD_TAG);
                put_u32(out, id);
                put_str(out, tag);
            }
            Entry::RemoveTag { id, tag } => {
                put_u8(out, REMOVE_TAG);
                put_u32(out, id);
                put_str(out, tag);
            }
        }
    }

    /// Upper bound of the encoded size, for record space planning.
    pub(crate) fn max_len(&self) -> usize {
        match self {
            Entry::AddTag { tag, .. } | Entry::RemoveTag { tag, .. } => 6 + tag.len(),
            _ => 29,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Entry<'a>> {
        let op = r.u8()?;
        let id = r.u32()?;
        Ok(match op {
            CREATE => Entry::Create(id),
            DELETE => Entry::Delete(id),
            WRITE => Entry::Write {
                id,
                off: r.u64()?,
                len: r.u32()?,
                addr: r.u64()?,
                sum: r.u32()?,
            },
            TRUNCATE => Entry::Truncate { id, size: r.u64()? },
            ADD_TAG => Entry::AddTag { id, tag: r.str()? },
            REMOVE_TAG => Entry::RemoveTag { id, tag: r.str()? },
            x => return Err(corrupt!("journal: unknown entry type {x}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let es = [
            Entry::Create(7),
            Entry::Write {
                id: 7,
                off: 1 << 33,
                len: 5,
                addr: 99,
                sum: 0xabcd,
            },
            Entry::AddTag {
                id: 7,
                tag: "path:/a/b",
            },
            Entry::RemoveTag { id: 7, tag: "x" },
            Entry::Truncate { id: 7, size: 3 },
            Entry::Delete(7),
        ];
        let mut buf = Vec::new();
        for e in &es {
            let before = buf.len();
            e.encode(&mut buf);
            assert!(buf.len() - before <= e.max_len());
        }
        let mut r = Reader::new(&buf, "journal");
        for e in &es {
            assert_eq!(Entry::decode(&mut r).unwrap(), *e);
        }
        assert_eq!(r.remaining(), 0);
        assert!(Entry::decode(&mut Reader::new(&[9, 0, 0, 0, 0], "j")).is_err());
    }
}
