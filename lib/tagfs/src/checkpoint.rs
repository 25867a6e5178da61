//! The checkpoint: the whole state as one byte stream, cut into LZ4 records.
//!
//! ```text
//! "CKPT" next_id:u32 objects:u32
//!   per object: ObjectMeta (12 bytes) then extent_count extents:
//!               off:u64 len:u32 addr:u64 skip:u32 chunk_len:u32 sum:u32
//! tags:u32
//!   per tag: name (len:u8 + bytes) count:varint then
//!            count <= INLINE: count ids, delta varints
//!            else: posting blocks of up to 512 ids, each  n:u16 bytes:u32 deltas
//! ```
//!
//! Object tag lists are not stored: mount rebuilds them from the posting sets, so each
//! (object, tag) pair costs one delta varint on disk, usually one byte. `decode`
//! validates everything it reads (ids, ordering, extent bounds, tag counts), so a
//! corrupt but checksum-valid checkpoint is still refused rather than trusted.

use crate::codec::{put_u16, put_u32, put_u64, put_var, Reader};
use crate::index::{TagIndex, INLINE};
use crate::meta::{ObjectId, ObjectMeta};
use crate::object::{extent_ok, Extent, Object};
use crate::{corrupt, Result};
use alloc::vec::Vec;

const MAGIC: u32 = u32::from_le_bytes(*b"CKPT");
const POSTING_BLOCK: usize = 512;
const EXTENT_BYTES: usize = 32;

pub(crate) fn encode(next_id: ObjectId, objects: &[Option<Object>], index: &TagIndex) -> Vec<u8> {
    let mut b = Vec::new();
    put_u32(&mut b, MAGIC);
    put_u32(&mut b, next_id);
    let live = objects.iter().flatten().count();
    put_u32(&mut b, live as u32);
    for (id, o) in objects.iter().enumerate() {
        let Some(o) = o else { continue };
        b.extend_from_slice(&o.meta(id as ObjectId).to_bytes());
        for e in &o.extents {
            put_u64(&mut b, e.off);
            put_u32(&mut b, e.len);
            put_u64(&mut b, e.addr);
            put_u32(&mut b, e.skip);
            put_u32(&mut b, e.chunk_len);
            put_u32(&mut b, e.sum);
        }
    }
    put_u32(&mut b, index.len() as u32);
    for (name, ids) in index.iter() {
        crate::codec::put_str(&mut b, name);
        put_var(&mut b, ids.len() as u64);
        let mut prev = 0u64;
        if ids.len() <= INLINE {
            for &id in ids {
                put_var(&mut b, u64::from(id) - prev);
                prev = u64::from(id);
            }
            continue;
        }
        for blk in ids.chunks(POSTING_BLOCK) {
            let mut body = Vec::with_capacity(blk.len() * 2);
            for &id in blk {
                put_var(&mut body, u64::from(id) - prev);
                prev = u64::from(id);
            }
            put_u16(&mut b, blk.len() as u16);
            put_u32(&mut b, body.len() as u32);
            b.extend_from_slice(&body);
        }
    }
    b
}

/// The state a checkpoint restores.
pub(crate) struct Loaded {
    pub next_id: ObjectId,
    pub objects: Vec<Option<Object>>,
    pub index: TagIndex,
}

pub(crate) fn decode(stream: &[u8], seg_count: u32) -> Result<Loaded> {
    let mut r = Reader::new(stream, "checkpoint");
    if r.u32()? != MAGIC {
        return Err(corrupt!("checkpoint: bad magic"));
    }
    let next_id = r.u32()?;
    let count = r.u32()?;
    r.check_count(u64::from(count), ObjectMeta::SIZE)?;
    if count > next_id {
        return Err(corrupt!(
            "checkpoint: {count} objects but next id {next_id}"
        ));
    }
    let mut objects: Vec<Option<Object>> = Vec::new();
    let mut want_tags = Vec::new();
    let mut last: Option<ObjectId> = None;
    for _ in 0..count {
        let mut mb = [0u8; 12];
        mb.copy_from_slice(r.bytes(12)?);
        let m = ObjectMeta::from_bytes(&mb);
        let id = m.id();
        if id >= next_id || last.is_some_and(|l| id <= l) {
            return Err(corrupt!("checkpoint: object id {id} out of order or range"));
        }
        last = Some(id);
        let n = r.check_count(m.extent_count() as u64, EXTENT_BYTES)?;
        let mut extents = Vec::with_capacity(n);
        let mut end = 0u64;
        for _ in 0..n {
            let e = Extent {
                off: r.u64()?,
                len: r.u32()?,
                addr: r.u64()?,
                skip: r.u32()?,
                chunk_len: r.u32()?,
                sum: r.u32()?,
            };
            if e.off < end || !extent_ok(&e, m.size(), seg_count) {
                return Err(corrupt!(
                    "checkpoint: object {id} has a bad extent at offset {}",
                    e.off
                ));
            }
            end = e.off + u64::from(e.len);
            extents.push(e);
        }
        if objects.len() <= id as usize {
            objects.resize_with(id as usize + 1, || None);
        }
        objects[id as usize] = Some(Object {
            size: m.size(),
            tags: Vec::new(),
            extents,
        });
        want_tags.push((id, m.tag_count()));
    }
    // Deleted ids at the end are not stored; `Fs::apply` fills the gap on the next
    // create. (A hand-crafted image with a huge `next_id` and valid checksums could make
    // that gap large; random corruption cannot get past the checksums.)
    let tags = r.u32()?;
    r.check_count(u64::from(tags), 2)?;
    let mut index = TagIndex::default();
    for _ in 0..tags {
        let name = r.str()?;
        if let Some(p) = crate::query::tag_problem(name) {
            return Err(corrupt!("checkpoint: tag {name:?}: {p}"));
        }
        if index.id_of(name).is_some() {
            return Err(corrupt!("checkpoint: tag {name:?} twice"));
        }
        let n = r.var()?;
        let n = r.check_count(n, 1)?;
        if n == 0 {
            return Err(corrupt!("checkpoint: tag {name:?} with no objects"));
        }
        let mut ids = Vec::with_capacity(n);
        let mut prev: Option<u64> = None;
        let mut push = |delta: u64, ids: &mut Vec<ObjectId>| -> Result<()> {
            let id = match prev {
                None => delta,
                Some(p) if delta > 0 => p.saturating_add(delta),
                Some(_) => u64::MAX,
            };
            let ok = objects.get(id as usize).is_some_and(|o| o.is_some());
            if !ok {
                return Err(corrupt!(
                    "checkpoint: tag {name:?} lists a missing or repeated object"
                ));
            }
            prev = Some(id);
            ids.push(id as ObjectId);
            Ok(())
        };
        if n <= INLINE {
            for _ in 0..n {
                let d = r.var()?;
                push(d, &mut ids)?;
            }
        } else {
            while ids.len() < n {
                let k = usize::from(r.u16()?);
                let bytes = r.u32()? as usize;
                if k == 0 || k > POSTING_BLOCK || ids.len() + k > n {
                    return Err(corrupt!("checkpoint: tag {name:?} has a bad posting block"));
                }
                let mut br = Reader::new(r.bytes(bytes)?, "posting block");
                for _ in 0..k {
                    let d = br.var()?;
                    push(d, &mut ids)?;
                }
                if br.remaining() != 0 {
                    return Err(corrupt!(
                        "checkpoint: tag {name:?}: posting block has trailing bytes"
                    ));
                }
            }
        }
        let tag = index.insert_set(name, ids.clone());
        for id in ids {
            if let Some(o) = objects[id as usize].as_mut() {
                o.tags.push(tag);
            }
        }
    }
    if r.remaining() != 0 {
        return Err(corrupt!("checkpoint: {} trailing bytes", r.remaining()));
    }
    for (id, n) in want_tags {
        let have = objects[id as usize].as_ref().map_or(0, |o| o.tags.len());
        if have != n {
            return Err(corrupt!(
                "checkpoint: object {id} should have {n} tags, index has {have}"
            ));
        }
    }
    Ok(Loaded {
        next_id,
        objects,
        index,
    })
}
