//! Storage management for `Fs`: format, mount with journal replay, the log writer,
//! checkpoints and the cleaner.
//!
//! Durability protocol. `sync` writes the open record and flushes: a record is durable
//! only after a flush, and replay stops at the first record that is missing or torn.
//! A checkpoint writes the full state as records, flushes, then writes the superblock
//! into the slot of the other generation and flushes again; only then are the segments
//! of the previous checkpoint and its journal released. Mount picks the newest valid
//! superblock, loads its checkpoint, replays the journal, then moves the epoch on
//! (durably) before writing anything, so records of a timeline cut short by a crash can
//! never be mistaken for new ones.
//!
//! Segment choice is round-robin from the last one allocated, which spreads writes over
//! the device (wear levelling); the cleaner copies the live data of the emptiest
//! segments forward and frees them at the next checkpoint.

use crate::checkpoint;
use crate::device::{BlockDevice, BLOCK_SIZE};
use crate::fs::{Config, Fs, FsStats, MAX_CHUNK};
use crate::index::TagIndex;
use crate::journal::Entry;
use crate::log::{
    self, record_blocks, seg_of, seg_start, Cursor, Superblock, KIND_CHECKPOINT, KIND_JOURNAL,
    MAX_RAW, MIN_SEGMENTS, SEG_BLOCKS,
};
use crate::object::{chunk_sum, Extent};
use crate::{corrupt, Error, Result};
use alloc::vec;
use alloc::vec::Vec;

/// Encoded length of a write entry (`Entry::max_len`).
const WRITE_ENTRY: usize = 29;

/// Smallest content placed on a block boundary (8 blocks).
pub(crate) const ALIGN_MIN: usize = 8 * BLOCK_SIZE;

/// Segments kept back from ordinary writes so a checkpoint and the cleaner can run.
const RESERVE: usize = 2;

/// Zero bytes to put before `len` bytes of content when `pending` are in the data area:
/// content of at least `ALIGN_MIN` starts on a block; smaller content packs densely.
/// The padding (under a block) is then at most an eighth of the content it precedes,
/// so a segment's live bytes stay a fair measure of what the cleaner gains by moving
/// them (moved, they cost at most 9/8 of themselves; victims are under 3/4 live).
fn align_pad(pending: usize, len: usize) -> usize {
    if len >= ALIGN_MIN {
        pending.next_multiple_of(BLOCK_SIZE) - pending
    } else {
        0
    }
}

fn max_payload(raw: usize) -> usize {
    lz4_flex::block::get_maximum_output_size(raw)
}

impl<D: BlockDevice> Fs<D> {
    fn empty(dev: D, cfg: Config, seg_count: u32) -> Self {
        let n = seg_count as usize;
        Fs {
            dev,
            cfg,
            seg_count,
            sb: Superblock {
                seg_count,
                generation: 0,
                epoch: 1,
                ckpt_epoch: 1,
                start_pos: SEG_BLOCKS,
                start_seq: 1,
                ckpt_chunks: 1,
            },
            epoch: 1,
            seq: 1,
            head: seg_start(1),
            head_seg: 1,
            next_seg: 2,
            alloc_cursor: 2,
            pend_data: Vec::new(),
            pend_raw: Vec::new(),
            live: vec![0; n],
            pinned: vec![false; n],
            held: vec![false; n],
            log_segs: vec![1],
            ckpt_blocks: 0,
            internal: false,
            next_id: 0,
            objects: Vec::new(),
            index: TagIndex::default(),
        }
    }

    /// Writes an empty file system over the whole device.
    pub fn format(mut dev: D, cfg: Config) -> Result<Self> {
        let segs = (dev.block_count() / SEG_BLOCKS).min(u64::from(u32::MAX));
        if segs < MIN_SEGMENTS {
            return Err(Error::DeviceTooSmall);
        }
        let zero = vec![0u8; BLOCK_SIZE];
        dev.write_block(0, &zero)?;
        dev.write_block(1, &zero)?;
        let mut fs = Self::empty(dev, cfg, segs as u32);
        fs.pinned[1] = true;
        fs.checkpoint()?;
        Ok(fs)
    }

    /// Mounts: newest valid superblock, its checkpoint, then the journal up to the first
    /// missing or torn record. A damaged image is refused with `Error::Corrupt`.
    pub fn mount(mut dev: D, cfg: Config) -> Result<Self> {
        let sb = log::read_superblock(&mut dev)?;
        let mut cur = Cursor {
            pos: sb.start_pos,
            seq: sb.start_seq,
            epoch: sb.ckpt_epoch,
            next_seg: None,
            seg_count: sb.seg_count,
        };
        let mut touched = Vec::new();
        let mut stream = Vec::new();
        let mut ckpt_blocks = 0;
        for i in 0..sb.ckpt_chunks {
            let rec = cur.next(&mut dev)?.ok_or_else(|| {
                corrupt!(
                    "checkpoint record {} of {} missing or damaged",
                    i + 1,
                    sb.ckpt_chunks
                )
            })?;
            if rec.kind != KIND_CHECKPOINT {
                return Err(corrupt!(
                    "record {} is not a checkpoint record",
                    cur.seq - 1
                ));
            }
            stream.extend_from_slice(&rec.payload);
            touched.push(seg_of(cur.pos - rec.blocks));
            ckpt_blocks += rec.blocks;
        }
        let loaded = checkpoint::decode(&stream, sb.seg_count)?;
        drop(stream);
        let mut fs = Self::empty(dev, cfg, sb.seg_count);
        fs.sb = sb;
        fs.next_id = loaded.next_id;
        fs.objects = loaded.objects;
        fs.index = loaded.index;
        fs.ckpt_blocks = ckpt_blocks;
        cur.epoch = sb.epoch;
        let mut replayed = 0u64;
        loop {
            let before = cur;
            let Some(rec) = cur.next(&mut fs.dev)? else {
                break;
            };
            if rec.kind != KIND_JOURNAL {
                // A newer checkpoint whose superblock never became durable (a crash in
                // `checkpoint`): nothing after it was acknowledged, so the log ends here.
                cur = before;
                break;
            }
            let mut r = crate::codec::Reader::new(&rec.payload, "journal record");
            while r.remaining() > 0 {
                fs.apply(Entry::decode(&mut r)?)?;
            }
            touched.push(seg_of(cur.pos - rec.blocks));
            replayed += 1;
            if replayed > fs.dev.block_count() {
                return Err(corrupt!("journal does not end"));
            }
        }
        // Recount live bytes from the extents; replay's running count is not trusted.
        fs.live.iter_mut().for_each(|l| *l = 0);
        for o in fs.objects.iter().flatten() {
            for e in &o.extents {
                let l = &mut fs.live[e.seg() as usize];
                *l = l.saturating_add(e.len);
            }
        }
        fs.held.iter_mut().for_each(|h| *h = false);
        touched.dedup();
        for &s in &touched {
            fs.pinned[s as usize] = true;
        }
        fs.log_segs = touched;
        fs.head = cur.pos;
        fs.head_seg = seg_of(cur.pos - 1);
        fs.seq = cur.seq;
        fs.next_seg = cur.next_seg.unwrap_or(0);
        fs.alloc_cursor = fs.next_seg;
        let n = fs.next_seg as usize;
        if n == 0 || fs.live[n] != 0 || fs.pinned[n] {
            return Err(corrupt!("log continues into segment {n}, which is in use"));
        }
        // Move the epoch on before anything new is written.
        fs.epoch = sb.epoch.max(sb.ckpt_epoch) + 1;
        if replayed > 0 {
            fs.checkpoint()?;
        } else {
            let nsb = Superblock {
                generation: sb.generation + 1,
                epoch: fs.epoch,
                ..sb
            };
            fs.write_superblock(nsb)?;
        }
        Ok(fs)
    }

    /// Unmounts cleanly (checkpoint, so the next mount replays nothing) and returns the
    /// device.
    pub fn unmount(mut self) -> Result<D> {
        self.checkpoint()?;
        Ok(self.dev)
    }

    /// Returns the device without writing anything (what a crash looks like).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// The device (tests inspect it).
    pub fn device(&self) -> &D {
        &self.dev
    }

    fn write_superblock(&mut self, sb: Superblock) -> Result<()> {
        self.dev.write_block(sb.generation % 2, &sb.encode())?;
        self.dev.flush()?;
        self.sb = sb;
        Ok(())
    }

    fn is_free(&self, s: u32) -> bool {
        let i = s as usize;
        s != 0
            && s != self.head_seg
            && s != self.next_seg
            && self.live[i] == 0
            && !self.pinned[i]
            && !self.held[i]
    }

    pub(crate) fn free_segments(&self) -> usize {
        (1..self.seg_count).filter(|&s| self.is_free(s)).count()
    }

    fn ckpt_segments(&self) -> usize {
        self.ckpt_blocks.div_ceil(SEG_BLOCKS) as usize
    }

    fn journal_segments(&self) -> usize {
        self.log_segs.len().saturating_sub(self.ckpt_segments())
    }

    fn reserve(&self) -> usize {
        RESERVE + self.ckpt_segments()
    }

    /// Moves the head into the reserved next segment and reserves another.
    fn jump(&mut self) -> Result<()> {
        if !self.internal && self.free_segments() <= self.reserve() {
            // Out of room for ordinary writes: reclaim before giving up.
            self.internal = true;
            let r = self.clean();
            self.internal = false;
            r?;
            if self.free_segments() <= self.reserve() {
                return Err(Error::NoSpace);
            }
        }
        let start = self.alloc_cursor;
        let found = (1..self.seg_count)
            .map(|k| 1 + (start - 1 + k) % (self.seg_count - 1))
            .find(|&s| self.is_free(s));
        let Some(next) = found else {
            return Err(Error::NoSpace);
        };
        self.head_seg = self.next_seg;
        self.head = seg_start(self.head_seg);
        self.next_seg = next;
        self.alloc_cursor = next;
        self.pinned[self.head_seg as usize] = true;
        self.log_segs.push(self.head_seg);
        Ok(())
    }

    fn fits(&self, data: usize, raw: usize) -> bool {
        raw <= MAX_RAW
            && self.head + record_blocks(data, max_payload(raw))
                <= seg_start(self.head_seg) + SEG_BLOCKS
    }

    /// Queues an entry (with its content, if any) in the open record, sealing it or
    /// moving to a new segment first if it would not fit. Returns the content's log byte
    /// address; the caller re-encodes a `Write` with it.
    pub(crate) fn queue(&mut self, e: Entry<'_>, data: &[u8]) -> Result<u64> {
        let (d, r) = (
            self.pend_data.len() + align_pad(self.pend_data.len(), data.len()) + data.len(),
            self.pend_raw.len() + e.max_len(),
        );
        if !self.fits(d, r) {
            self.seal()?;
            if !self.fits(data.len(), e.max_len()) {
                self.jump()?;
            }
        }
        // Content of `ALIGN_MIN` or more starts on a block (the record's data area
        // does), so a device can later read it straight into a reader's pages.
        let pad = align_pad(self.pend_data.len(), data.len());
        self.pend_data.resize(self.pend_data.len() + pad, 0);
        let addr = (self.head + 1) * BLOCK_SIZE as u64 + self.pend_data.len() as u64;
        self.pend_data.extend_from_slice(data);
        let e = match e {
            Entry::Write {
                id, off, len, sum, ..
            } => Entry::Write {
                id,
                off,
                len,
                addr,
                sum,
            },
            e => e,
        };
        e.encode(&mut self.pend_raw);
        Ok(addr)
    }

    /// Before a write of `len` bytes in `MAX_CHUNK` pieces: if the pieces would not
    /// all fit in the open record, seals it first (and moves to the next segment if a
    /// fresh record there holds them), so a write that fits in one record is replayed
    /// whole or not at all. One too large for any record (over about 190 KiB) spans
    /// several, and a crash may keep a prefix of its pieces.
    pub(crate) fn room_for_write(&mut self, len: usize) -> Result<()> {
        let n = len.div_ceil(MAX_CHUNK);
        let data = |pend: usize| {
            (0..n).fold(pend, |d, i| {
                let c = (len - i * MAX_CHUNK).min(MAX_CHUNK);
                d + align_pad(d, c) + c
            })
        };
        let raw = n * WRITE_ENTRY;
        if n <= 1 || self.fits(data(self.pend_data.len()), self.pend_raw.len() + raw) {
            return Ok(());
        }
        self.seal()?;
        if !self.fits(data(0), raw) && record_blocks(data(0), max_payload(raw)) <= SEG_BLOCKS {
            self.jump()?;
        }
        Ok(())
    }

    /// Writes the open record (without flushing).
    fn seal(&mut self) -> Result<()> {
        if self.pend_raw.is_empty() {
            return Ok(());
        }
        let n = log::write_record(
            &mut self.dev,
            self.head,
            KIND_JOURNAL,
            self.epoch,
            self.seq,
            self.next_seg,
            &self.pend_data,
            &self.pend_raw,
        )?;
        self.head += n;
        self.seq += 1;
        self.pend_data.clear();
        self.pend_raw.clear();
        Ok(())
    }

    /// Reads and verifies the chunk an extent views (from the open record if unwritten).
    pub(crate) fn read_chunk(&mut self, e: &Extent) -> Result<Vec<u8>> {
        let len = e.chunk_len as usize;
        let pend = (self.head + 1) * BLOCK_SIZE as u64;
        let data = if e.addr >= pend && e.addr + len as u64 <= pend + self.pend_data.len() as u64 {
            let s = (e.addr - pend) as usize;
            self.pend_data[s..s + len].to_vec()
        } else {
            let bs = BLOCK_SIZE as u64;
            let (first, skip) = (e.addr / bs, (e.addr % bs) as usize);
            let nblk = (skip + len).div_ceil(BLOCK_SIZE);
            let mut buf = vec![0u8; nblk * BLOCK_SIZE];
            for (i, b) in buf.chunks_mut(BLOCK_SIZE).enumerate() {
                self.dev.read_block(first + i as u64, b)?;
            }
            buf.drain(..skip);
            buf.truncate(len);
            buf
        };
        if chunk_sum(&data) != e.sum {
            return Err(corrupt!(
                "content at log byte {} fails its checksum",
                e.addr
            ));
        }
        Ok(data)
    }

    /// Makes everything done so far durable, then does any due maintenance.
    pub fn sync(&mut self) -> Result<()> {
        self.seal()?;
        self.dev.flush()?;
        self.held.iter_mut().for_each(|h| *h = false);
        if self.free_segments() < self.cfg.clean_below {
            self.clean()?;
        } else if self.journal_segments() > self.cfg.max_journal_segments.max(self.ckpt_segments())
        {
            // A checkpoint rewrites the whole state, so wait until the journal is at
            // least as large as the checkpoint: checkpoint writes then stay within a
            // constant factor of journal writes however large the state grows.
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes the whole state as a new checkpoint and makes it current.
    pub fn checkpoint(&mut self) -> Result<()> {
        let was = self.internal;
        self.internal = true;
        let old = core::mem::replace(&mut self.log_segs, vec![self.head_seg]);
        let r = self.write_checkpoint();
        self.internal = was;
        match r {
            Ok(()) => {
                for s in old {
                    if !self.log_segs.contains(&s) {
                        self.pinned[s as usize] = false;
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Keep every old segment pinned: the old checkpoint is still current.
                self.log_segs.extend(old);
                Err(e)
            }
        }
    }

    fn write_checkpoint(&mut self) -> Result<()> {
        self.seal()?;
        let stream = checkpoint::encode(self.next_id, &self.objects, &self.index);
        let (start_seq, mut start_pos) = (self.seq, None);
        let mut chunks = 0u32;
        let mut blocks = 0;
        for c in stream.chunks(MAX_RAW) {
            if !self.fits(0, c.len()) {
                self.jump()?;
            }
            start_pos.get_or_insert(self.head);
            let n = log::write_record(
                &mut self.dev,
                self.head,
                KIND_CHECKPOINT,
                self.epoch,
                self.seq,
                self.next_seg,
                &[],
                c,
            )?;
            self.head += n;
            self.seq += 1;
            chunks += 1;
            blocks += n;
        }
        self.dev.flush()?;
        let start_pos = start_pos.unwrap_or(self.head);
        self.ckpt_blocks = blocks;
        let sb = Superblock {
            seg_count: self.seg_count,
            generation: self.sb.generation + 1,
            epoch: self.epoch,
            ckpt_epoch: self.epoch,
            start_pos,
            start_seq,
            ckpt_chunks: chunks,
        };
        self.write_superblock(sb)?;
        self.held.iter_mut().for_each(|h| *h = false);
        Ok(())
    }

    /// One cleaner pass: copies the live content of the emptiest segments (at most
    /// `clean_batch`, each under three quarters full) to the head, then checkpoints so
    /// they are free. Returns how many segments it emptied.
    pub fn clean(&mut self) -> Result<usize> {
        let seg_bytes = (SEG_BLOCKS as usize * BLOCK_SIZE) as u32;
        let mut cands: Vec<(u32, u32)> = (1..self.seg_count)
            .filter(|&s| {
                let i = s as usize;
                s != self.head_seg
                    && s != self.next_seg
                    && !self.pinned[i]
                    && self.live[i] > 0
                    && self.live[i] < seg_bytes / 4 * 3
            })
            .map(|s| (self.live[s as usize], s))
            .collect();
        cands.sort_unstable();
        cands.truncate(self.cfg.clean_batch);
        let victims: Vec<u32> = cands.iter().map(|&(_, s)| s).collect();
        let mut moves = Vec::new();
        for (id, o) in self.objects.iter().enumerate() {
            for e in o.iter().flat_map(|o| o.extents.iter()) {
                if victims.contains(&e.seg()) {
                    moves.push((id as u32, e.off, e.len));
                }
            }
        }
        let was = self.internal;
        self.internal = true;
        let r = (|| {
            for &(id, off, len) in &moves {
                let mut buf = vec![0u8; len as usize];
                self.read(id, off, &mut buf)?;
                self.write_chunk(id, off, &buf)?;
            }
            Ok::<(), Error>(())
        })();
        self.internal = was;
        r?;
        self.checkpoint()?;
        Ok(victims.len())
    }

    /// Figures for `stat` and the benchmark.
    pub fn stats(&self) -> FsStats {
        FsStats {
            objects: self.objects.iter().flatten().count(),
            tags: self.index.len(),
            segments: self.seg_count as usize - 1,
            free_segments: self.free_segments(),
            log_segments: self.log_segs.len(),
            live_bytes: self.live.iter().map(|&l| u64::from(l)).sum(),
            checkpoint_bytes: self.ckpt_blocks * BLOCK_SIZE as u64,
            index_memory: self.index.memory_bytes(),
        }
    }
}
