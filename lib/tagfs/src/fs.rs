//! `Fs`: the object API over the log — create, read, write, truncate, tag, query, delete,
//! sync — and the in-memory state it keeps.
//!
//! Every mutating call first queues its journal entry in the open record (so a failure
//! to find space leaves the state untouched), then applies the same entry to the
//! in-memory state with the very function replay uses. Nothing is durable until `sync`
//! returns: it seals the open record, writes it and flushes the device. Storage
//! management (record framing, checkpoints, the cleaner, mount) is in `store`.
//!
//! Just over 500 lines: the API and `apply` (the one function both the calls and
//! replay use) belong together; reads into outside memory are in `direct`, storage in
//! `store`, and what is left would split only by cutting `apply` from its callers.

use crate::device::BlockDevice;
use crate::index::TagIndex;
use crate::journal::Entry;
use crate::log::Superblock;
use crate::meta::{ObjectId, ObjectMeta, MAX_EXTENTS, MAX_SIZE, MAX_TAGS};
use crate::object::{chunk_sum, extent_ok, Extent, Object};
use crate::query;
use crate::{corrupt, Error, Result};
use alloc::string::String;
use alloc::vec::Vec;

/// Largest piece of content one journal entry carries; bigger writes are split.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;

/// Largest object `read_all` returns in one piece.
pub const MAX_READ_ALL: usize = 256 << 20;

/// Tuning knobs; the defaults suit both the host tool and the server.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Checkpoint once the journal spans more segments than this (bounds replay time).
    pub max_journal_segments: usize,
    /// Run the cleaner at `sync` when fewer segments than this are free.
    pub clean_below: usize,
    /// Most segments one cleaner pass reclaims.
    pub clean_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_journal_segments: 64,
            clean_below: 8,
            clean_batch: 16,
        }
    }
}

/// Figures for `stat` and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub objects: usize,
    pub tags: usize,
    pub segments: usize,
    pub free_segments: usize,
    /// Segments holding the checkpoint and journal since it.
    pub log_segments: usize,
    /// Bytes of live object content.
    pub live_bytes: u64,
    /// Bytes the last checkpoint occupies on disk.
    pub checkpoint_bytes: u64,
    /// Bytes of memory the tag index uses.
    pub index_memory: usize,
}

/// What `check` verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    pub objects: usize,
    pub extents: usize,
    pub bytes: u64,
    pub tag_pairs: usize,
}

/// A mounted TagFS.
pub struct Fs<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) cfg: Config,
    pub(crate) seg_count: u32,
    /// The last superblock made durable.
    pub(crate) sb: Superblock,
    // Log writer position.
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) head: u64,
    pub(crate) head_seg: u32,
    pub(crate) next_seg: u32,
    pub(crate) alloc_cursor: u32,
    // The open record: its data area and its uncompressed entries; it will be written
    // at `head`, so data addresses are known while it fills.
    pub(crate) pend_data: Vec<u8>,
    pub(crate) pend_raw: Vec<u8>,
    // Segment accounting. A segment is reusable only when it holds no live extent, no
    // record since the durable checkpoint (`pinned`), and no extent killed since the last
    // flush (`held`): until that flush, a crash could replay back to a state that still
    // references it.
    pub(crate) live: Vec<u32>,
    pub(crate) pinned: Vec<bool>,
    pub(crate) held: Vec<bool>,
    pub(crate) log_segs: Vec<u32>,
    pub(crate) ckpt_blocks: u64,
    /// Set while checkpointing or cleaning: they may use the reserved segments.
    pub(crate) internal: bool,
    // Objects and index.
    pub(crate) next_id: ObjectId,
    pub(crate) objects: Vec<Option<Object>>,
    pub(crate) index: TagIndex,
}

impl<D: BlockDevice> core::fmt::Debug for Fs<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fs")
            .field("segments", &self.seg_count)
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl<D: BlockDevice> Fs<D> {
    fn obj(&self, id: ObjectId) -> Result<&Object> {
        self.objects
            .get(id as usize)
            .and_then(|o| o.as_ref())
            .ok_or(Error::NotFound(id))
    }

    /// Creates an empty, untagged object.
    pub fn create(&mut self) -> Result<ObjectId> {
        let id = self.next_id;
        if id == ObjectId::MAX {
            return Err(Error::Limit("object ids exhausted"));
        }
        self.queue(Entry::Create(id), &[])?;
        self.apply(Entry::Create(id))?;
        Ok(id)
    }

    /// What a read of up to `want` bytes from `off` covers: how many bytes there are
    /// (`None` at or past the end) and the extents holding any of them, in order.
    pub(crate) fn span(
        &self,
        id: ObjectId,
        off: u64,
        want: usize,
    ) -> Result<Option<(usize, Vec<Extent>)>> {
        let o = self.obj(id)?;
        if off >= o.size {
            return Ok(None);
        }
        let n = (want as u64).min(o.size - off) as usize;
        let end = off + n as u64;
        let hits = o
            .extents
            .iter()
            .filter(|e| e.off < end && e.end() > off)
            .copied()
            .collect();
        Ok(Some((n, hits)))
    }

    /// Reads from `off` into `buf`; returns the bytes read (0 at or past the end).
    pub fn read(&mut self, id: ObjectId, off: u64, buf: &mut [u8]) -> Result<usize> {
        let Some((n, hits)) = self.span(id, off, buf.len())? else {
            return Ok(0);
        };
        let end = off + n as u64;
        buf[..n].fill(0);
        for e in hits {
            let chunk = self.read_chunk(&e)?;
            let (from, to) = (e.off.max(off), e.end().min(end));
            let src = (u64::from(e.skip) + from - e.off) as usize;
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&chunk[src..src + (to - from) as usize]);
        }
        Ok(n)
    }

    /// The whole content of an object (at most `MAX_READ_ALL` bytes; use `read` beyond).
    pub fn read_all(&mut self, id: ObjectId) -> Result<Vec<u8>> {
        let size = self.obj(id)?.size;
        // A sparse object can be far larger than memory: refuse rather than abort.
        let too_big = Error::Limit("object too large to read into memory");
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l <= MAX_READ_ALL)
            .ok_or(too_big.clone())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| too_big)?;
        buf.resize(len, 0);
        self.read(id, 0, &mut buf)?;
        Ok(buf)
    }

    /// Writes `data` at `off`, extending the object if needed (a gap reads as zeros).
    pub fn write(&mut self, id: ObjectId, off: u64, data: &[u8]) -> Result<()> {
        let o = self.obj(id)?;
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_SIZE);
        if end.is_none() {
            return Err(Error::Limit("object size above 1 TiB"));
        }
        let pieces = data.len().div_ceil(MAX_CHUNK);
        if o.extents.len() + 2 * pieces > MAX_EXTENTS {
            return Err(Error::Limit("65,535 extents per object (rewrite it whole)"));
        }
        self.room_for_write(data.len())?;
        for (i, c) in data.chunks(MAX_CHUNK).enumerate() {
            self.write_chunk(id, off + (i * MAX_CHUNK) as u64, c)?;
        }
        Ok(())
    }

    pub(crate) fn write_chunk(&mut self, id: ObjectId, off: u64, c: &[u8]) -> Result<()> {
        let sum = chunk_sum(c);
        let len = c.len() as u32;
        let e = |addr| Entry::Write {
            id,
            off,
            len,
            addr,
            sum,
        };
        let addr = self.queue(e(0), c)?;
        self.apply(e(addr))
    }

    /// Sets the size: shrinking drops content, growing adds zeros.
    pub fn truncate(&mut self, id: ObjectId, size: u64) -> Result<()> {
        self.obj(id)?;
        if size > MAX_SIZE {
            return Err(Error::Limit("object size above 1 TiB"));
        }
        self.queue(Entry::Truncate { id, size }, &[])?;
        self.apply(Entry::Truncate { id, size })
    }

    /// Adds a tag; returns false if the object already had it.
    pub fn add_tag(&mut self, id: ObjectId, tag: &str) -> Result<bool> {
        if let Some(p) = query::tag_problem(tag) {
            return Err(Error::InvalidTag(alloc::format!("{tag}: {p}")));
        }
        let o = self.obj(id)?;
        if self.index.id_of(tag).is_some_and(|t| o.tags.contains(&t)) {
            return Ok(false);
        }
        if o.tags.len() >= MAX_TAGS {
            return Err(Error::Limit("255 tags per object"));
        }
        self.queue(Entry::AddTag { id, tag }, &[])?;
        self.apply(Entry::AddTag { id, tag })?;
        Ok(true)
    }

    /// Removes a tag; returns false if the object did not have it.
    pub fn remove_tag(&mut self, id: ObjectId, tag: &str) -> Result<bool> {
        let o = self.obj(id)?;
        if !self.index.id_of(tag).is_some_and(|t| o.tags.contains(&t)) {
            return Ok(false);
        }
        self.queue(Entry::RemoveTag { id, tag }, &[])?;
        self.apply(Entry::RemoveTag { id, tag })?;
        Ok(true)
    }

    /// Deletes an object, its content and its tags.
    pub fn delete(&mut self, id: ObjectId) -> Result<()> {
        self.obj(id)?;
        self.queue(Entry::Delete(id), &[])?;
        self.apply(Entry::Delete(id))
    }

    /// The ids matching a query (see [`crate::query`]), ascending.
    pub fn query(&self, q: &str) -> Result<Vec<ObjectId>> {
        let e = query::parse(q)?;
        Ok(query::eval(&e, &self.index, || self.ids().collect()))
    }

    /// The packed record of an object.
    pub fn meta(&self, id: ObjectId) -> Result<ObjectMeta> {
        Ok(self.obj(id)?.meta(id))
    }

    /// An object's tags, sorted.
    pub fn tags(&self, id: ObjectId) -> Result<Vec<String>> {
        let o = self.obj(id)?;
        let mut v: Vec<String> = o
            .tags
            .iter()
            .filter_map(|&t| self.index.name(t))
            .map(String::from)
            .collect();
        v.sort();
        Ok(v)
    }

    /// Every live object id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_some())
            .map(|(i, _)| i as ObjectId)
    }

    /// Every tag in use with its object count.
    pub fn all_tags(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .index
            .iter()
            .map(|(n, s)| (String::from(n), s.len()))
            .collect();
        v.sort();
        v
    }

    /// Applies one entry to the in-memory state: the single code path for live calls and
    /// for replay, so both always agree. Entries from disk are checked, not trusted.
    pub(crate) fn apply(&mut self, e: Entry<'_>) -> Result<()> {
        let seg_count = self.seg_count;
        match e {
            Entry::Create(id) => {
                if id != self.next_id || id == ObjectId::MAX {
                    return Err(corrupt!(
                        "journal: create of id {id}, expected {}",
                        self.next_id
                    ));
                }
                if self.objects.len() > id as usize {
                    return Err(corrupt!("journal: create of id {id}, which exists"));
                }
                let gap = id as usize + 1 - self.objects.len();
                self.objects
                    .try_reserve(gap)
                    .map_err(|_| Error::Limit("object table does not fit in memory"))?;
                self.objects.resize_with(id as usize, || None);
                self.objects.push(Some(Object {
                    size: 0,
                    tags: Vec::new(),
                    extents: Vec::new(),
                }));
                self.next_id += 1;
            }
            Entry::Delete(id) => {
                let o = self.take_obj(id)?;
                for t in &o.tags {
                    if let Some(name) = self.index.name(*t).map(String::from) {
                        self.index.remove(&name, id);
                    }
                }
                for x in &o.extents {
                    self.kill(x.seg(), x.len);
                }
            }
            Entry::Write {
                id,
                off,
                len,
                addr,
                sum,
            } => {
                let new = Extent {
                    off,
                    len,
                    addr,
                    skip: 0,
                    chunk_len: len,
                    sum,
                };
                let end = off.checked_add(u64::from(len)).filter(|&e| e <= MAX_SIZE);
                let Some(end) = end.filter(|_| extent_ok(&new, u64::MAX, seg_count)) else {
                    return Err(corrupt!("journal: bad write extent for object {id}"));
                };
                let o = self.obj_mut(id)?;
                let mut out = Vec::with_capacity(o.extents.len() + 2);
                let mut killed = Vec::new();
                for x in o.extents.drain(..) {
                    if x.end() <= off || x.off >= end {
                        out.push(x);
                        continue;
                    }
                    if x.off < off {
                        out.push(Extent {
                            len: (off - x.off) as u32,
                            ..x
                        });
                    }
                    if x.end() > end {
                        let cut = (end - x.off) as u32;
                        out.push(Extent {
                            off: end,
                            len: x.len - cut,
                            skip: x.skip + cut,
                            ..x
                        });
                    }
                    killed.push((x.seg(), (x.end().min(end) - x.off.max(off)) as u32));
                }
                let at = out.partition_point(|x| x.off < off);
                out.insert(at, new);
                if out.len() > MAX_EXTENTS {
                    return Err(corrupt!("journal: object {id} over the extent limit"));
                }
                o.extents = out;
                o.size = o.size.max(end);
                for (s, n) in killed {
                    self.kill(s, n);
                }
                let l = &mut self.live[new.seg() as usize];
                *l = l.saturating_add(len);
            }
            Entry::Truncate { id, size } => {
                if size > MAX_SIZE {
                    return Err(corrupt!("journal: truncate of {id} beyond the size limit"));
                }
                let o = self.obj_mut(id)?;
                let mut killed = Vec::new();
                o.extents.retain_mut(|x| {
                    if x.off >= size {
                        killed.push((x.seg(), x.len));
                        false
                    } else {
                        if x.end() > size {
                            let keep = (size - x.off) as u32;
                            killed.push((x.seg(), x.len - keep));
                            x.len = keep;
                        }
                        true
                    }
                });
                o.size = size;
                for (s, n) in killed {
                    self.kill(s, n);
                }
            }
            Entry::AddTag { id, tag } => {
                if query::tag_problem(tag).is_some() {
                    return Err(corrupt!("journal: invalid tag {tag:?}"));
                }
                self.obj(id)?;
                let (t, added) = self.index.insert(tag, id);
                let o = self.obj_mut(id)?;
                if added {
                    if o.tags.len() >= MAX_TAGS {
                        return Err(corrupt!("journal: object {id} over the tag limit"));
                    }
                    o.tags.push(t);
                }
            }
            Entry::RemoveTag { id, tag } => {
                let t = self.index.id_of(tag);
                let o = self.obj_mut(id)?;
                if let Some(t) = t {
                    o.tags.retain(|&x| x != t);
                }
                self.index.remove(tag, id);
            }
        }
        Ok(())
    }

    fn obj_mut(&mut self, id: ObjectId) -> Result<&mut Object> {
        self.objects
            .get_mut(id as usize)
            .and_then(|o| o.as_mut())
            .ok_or_else(|| corrupt!("journal: no object {id}"))
    }

    fn take_obj(&mut self, id: ObjectId) -> Result<Object> {
        self.objects
            .get_mut(id as usize)
            .and_then(|o| o.take())
            .ok_or_else(|| corrupt!("journal: no object {id}"))
    }

    fn kill(&mut self, seg: u32, bytes: u32) {
        let l = &mut self.live[seg as usize];
        *l = l.saturating_sub(bytes);
        self.held[seg as usize] = true;
    }

    /// Verifies every extent's checksum and that objects and index agree (fsck).
    pub fn check(&mut self) -> Result<CheckReport> {
        let mut rep = CheckReport {
            objects: 0,
            extents: 0,
            bytes: 0,
            tag_pairs: 0,
        };
        let ids: Vec<ObjectId> = self.ids().collect();
        for id in ids {
            let o = self.obj(id)?.clone();
            rep.objects += 1;
            for e in &o.extents {
                self.read_chunk(e)?;
                rep.extents += 1;
                rep.bytes += u64::from(e.len);
            }
            for &t in &o.tags {
                let name = self
                    .index
                    .name(t)
                    .ok_or_else(|| corrupt!("object {id}: tag {t} has no name"))?;
                if self.index.get(name).binary_search(&id).is_err() {
                    return Err(corrupt!("object {id}: tag {name:?} missing from the index"));
                }
                rep.tag_pairs += 1;
            }
        }
        let indexed: usize = self.index.iter().map(|(_, s)| s.len()).sum();
        if indexed != rep.tag_pairs {
            return Err(corrupt!(
                "index holds {indexed} object-tag pairs, objects hold {}",
                rep.tag_pairs
            ));
        }
        Ok(rep)
    }
}
