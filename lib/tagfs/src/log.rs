//! The segment log: superblocks, record framing, and reading the record chain.
//!
//! The device is cut into 256 KiB segments of 64 blocks. Segment 0 holds the two
//! superblocks (blocks 0 and 1, written alternately by generation); every other segment
//! belongs to the log. The log is a chain of *records*, each framed as
//!
//! ```text
//! block 0      header (fixed fields, 72 bytes) + the first bytes of the payload
//! blocks 1..   data area (raw object content, byte-packed; extents point into it)
//! then         the rest of the payload, if it did not fit in block 0
//! ```
//!
//! The payload is LZ4-compressed journal entries or a checkpoint chunk. Header, payload
//! and data each carry a checksum; a record is valid only if all three match *and* its
//! epoch and sequence number are the ones expected next. That rule is what detects a
//! torn tail: a half-written record fails a checksum, an old record left in a reused
//! segment has a smaller sequence number, and a record from a timeline abandoned by a
//! crash has an older epoch (mount moves the epoch on before writing anything).
//!
//! A record never crosses a segment. Each header names the segment the log continues in
//! once the current one is full (`next_seg`, reserved when the current segment was
//! opened), so a reader that finds no valid record at the end of one segment tries the
//! start of the next before concluding the log has ended.

use crate::codec::{checksum, put_u32, put_u64, put_u8, Reader};
use crate::device::{BlockDevice, BLOCK_SIZE};
use crate::{corrupt, Error, Result};
use alloc::vec;
use alloc::vec::Vec;

/// Blocks per segment (256 KiB).
pub(crate) const SEG_BLOCKS: u64 = 64;
/// Segments a device needs at the least: the superblock segment plus room to work.
pub(crate) const MIN_SEGMENTS: u64 = 8;
const SB_MAGIC: u64 = u64::from_le_bytes(*b"ZENTAGSB");
const REC_MAGIC: u64 = u64::from_le_bytes(*b"ZENTAGRC");
const VERSION: u32 = 1;
const HEADER_LEN: usize = 72;
/// Payload bytes that ride in the header block.
pub(crate) const INLINE_PAYLOAD: usize = BLOCK_SIZE - HEADER_LEN;
/// Largest uncompressed payload a record may carry.
pub(crate) const MAX_RAW: usize = 128 * 1024;
const SEED_SB: u64 = 1;
const SEED_HDR: u64 = 2;
const SEED_PAYLOAD: u64 = 3;
const SEED_DATA: u64 = 4;

/// Record kinds.
pub(crate) const KIND_JOURNAL: u8 = 1;
pub(crate) const KIND_CHECKPOINT: u8 = 2;

pub(crate) fn seg_start(seg: u32) -> u64 {
    u64::from(seg) * SEG_BLOCKS
}
pub(crate) fn seg_of(lba: u64) -> u32 {
    (lba / SEG_BLOCKS) as u32
}
pub(crate) fn blocks_for(bytes: usize) -> u64 {
    bytes.div_ceil(BLOCK_SIZE) as u64
}

/// Blocks a record occupies.
pub(crate) fn record_blocks(data_len: usize, payload_len: usize) -> u64 {
    1 + blocks_for(data_len) + blocks_for(payload_len.saturating_sub(INLINE_PAYLOAD))
}

/// The newest consistent state: where its checkpoint starts and which epoch is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub seg_count: u32,
    pub generation: u64,
    /// Epoch of the records after the checkpoint (the journal).
    pub epoch: u64,
    /// Epoch the checkpoint chunks were written in.
    pub ckpt_epoch: u64,
    /// Block of the first checkpoint chunk and its sequence number.
    pub start_pos: u64,
    pub start_seq: u64,
    pub ckpt_chunks: u32,
}

impl Superblock {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK_SIZE);
        put_u64(&mut b, SB_MAGIC);
        put_u32(&mut b, VERSION);
        put_u32(&mut b, self.seg_count);
        put_u64(&mut b, self.generation);
        put_u64(&mut b, self.epoch);
        put_u64(&mut b, self.ckpt_epoch);
        put_u64(&mut b, self.start_pos);
        put_u64(&mut b, self.start_seq);
        put_u32(&mut b, self.ckpt_chunks);
        let sum = checksum(SEED_SB, &b);
        put_u64(&mut b, sum);
        b.resize(BLOCK_SIZE, 0);
        b
    }

    pub(crate) fn decode(b: &[u8], dev_blocks: u64) -> Result<Superblock> {
        let mut r = Reader::new(b, "superblock");
        if r.u64()? != SB_MAGIC {
            return Err(corrupt!("superblock: bad magic (not a TagFS image?)"));
        }
        let version = r.u32()?;
        let sb = Superblock {
            seg_count: r.u32()?,
            generation: r.u64()?,
            epoch: r.u64()?,
            ckpt_epoch: r.u64()?,
            start_pos: r.u64()?,
            start_seq: r.u64()?,
            ckpt_chunks: r.u32()?,
        };
        let body = b.len() - r.remaining();
        if r.u64()? != checksum(SEED_SB, &b[..body]) {
            return Err(corrupt!("superblock: checksum mismatch"));
        }
        if version != VERSION {
            return Err(corrupt!(
                "superblock: format version {version}, this engine reads {VERSION}"
            ));
        }
        if u64::from(sb.seg_count) < MIN_SEGMENTS
            || u64::from(sb.seg_count) * SEG_BLOCKS > dev_blocks
        {
            return Err(corrupt!(
                "superblock: {} segments do not fit the device",
                sb.seg_count
            ));
        }
        if sb.start_pos < SEG_BLOCKS || seg_of(sb.start_pos) >= sb.seg_count {
            return Err(corrupt!(
                "superblock: checkpoint position {} outside the log",
                sb.start_pos
            ));
        }
        if sb.ckpt_chunks == 0 || u64::from(sb.ckpt_chunks) > dev_blocks {
            return Err(corrupt!(
                "superblock: bad checkpoint chunk count {}",
                sb.ckpt_chunks
            ));
        }
        Ok(sb)
    }
}

/// Reads both superblocks and returns the valid one with the highest generation.
pub(crate) fn read_superblock<D: BlockDevice>(dev: &mut D) -> Result<Superblock> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut best: Option<Superblock> = None;
    let mut why = None;
    for lba in 0..2 {
        dev.read_block(lba, &mut buf)?;
        match Superblock::decode(&buf, dev.block_count()) {
            Ok(sb) if sb.generation % 2 == lba => {
                if best.is_none_or(|b| sb.generation > b.generation) {
                    best = Some(sb);
                }
            }
            Ok(_) => why = Some(corrupt!("superblock {lba}: generation in the wrong slot")),
            Err(Error::Io(e)) => return Err(Error::Io(e)),
            Err(e) => why = Some(e),
        }
    }
    best.ok_or_else(|| why.unwrap_or_else(|| corrupt!("no valid superblock")))
}

/// A decoded, verified record.
pub(crate) struct Record {
    pub kind: u8,
    pub next_seg: u32,
    /// Uncompressed payload.
    pub payload: Vec<u8>,
    /// Blocks the record occupies.
    pub blocks: u64,
}

/// Writes a record at `pos`; the caller has checked it fits in the segment.
#[allow(clippy::too_many_arguments)] // reason: one flat frame, every field needed
pub(crate) fn write_record<D: BlockDevice>(
    dev: &mut D,
    pos: u64,
    kind: u8,
    epoch: u64,
    seq: u64,
    next_seg: u32,
    data: &[u8],
    raw: &[u8],
) -> Result<u64> {
    let payload = lz4_flex::block::compress(raw);
    let mut h = Vec::with_capacity(BLOCK_SIZE);
    put_u64(&mut h, REC_MAGIC);
    put_u8(&mut h, kind);
    h.extend_from_slice(&[0; 3]);
    put_u32(&mut h, next_seg);
    put_u64(&mut h, epoch);
    put_u64(&mut h, seq);
    put_u32(&mut h, data.len() as u32);
    put_u32(&mut h, payload.len() as u32);
    put_u32(&mut h, raw.len() as u32);
    put_u32(&mut h, 0);
    put_u64(&mut h, checksum(SEED_DATA, data));
    put_u64(&mut h, checksum(SEED_PAYLOAD, &payload));
    let hs = checksum(SEED_HDR, &h);
    put_u64(&mut h, hs);
    debug_assert_eq!(h.len(), HEADER_LEN);
    let first = payload.len().min(INLINE_PAYLOAD);
    h.extend_from_slice(&payload[..first]);
    h.resize(BLOCK_SIZE, 0);
    dev.write_block(pos, &h)?;
    let mut at = pos + 1;
    let mut blk = vec![0u8; BLOCK_SIZE];
    for part in [data, &payload[first..]] {
        for c in part.chunks(BLOCK_SIZE) {
            // Whole blocks go as they are; only a last partial one is padded.
            if c.len() == BLOCK_SIZE {
                dev.write_block(at, c)?;
            } else {
                blk[..c.len()].copy_from_slice(c);
                blk[c.len()..].fill(0);
                dev.write_block(at, &blk)?;
            }
            at += 1;
        }
    }
    Ok(at - pos)
}

/// Reads the record at `pos` if it is valid with this epoch and sequence number; `Ok(None)`
/// means "no valid record here" (the end of the log or a torn write), `Err` only a device
/// error.
pub(crate) fn read_record<D: BlockDevice>(
    dev: &mut D,
    pos: u64,
    seg_count: u32,
    epoch: u64,
    seq: u64,
) -> Result<Option<Record>> {
    let seg = seg_of(pos);
    if seg == 0 || seg >= seg_count {
        return Ok(None);
    }
    let room = seg_start(seg) + SEG_BLOCKS - pos;
    let mut h = vec![0u8; BLOCK_SIZE];
    dev.read_block(pos, &mut h)?;
    let Ok(f) = parse_header(&h) else {
        return Ok(None);
    };
    if f.epoch != epoch || f.seq != seq || f.next_seg == 0 || f.next_seg >= seg_count {
        return Ok(None);
    }
    if f.data_len > SEG_BLOCKS as usize * BLOCK_SIZE
        || f.payload_len > lz4_flex::block::get_maximum_output_size(MAX_RAW)
        || f.raw_len > MAX_RAW
    {
        return Ok(None);
    }
    let blocks = record_blocks(f.data_len, f.payload_len);
    if blocks > room {
        return Ok(None);
    }
    let mut data = vec![0u8; f.data_len];
    let mut at = pos + 1;
    let mut blk = vec![0u8; BLOCK_SIZE];
    for c in data.chunks_mut(BLOCK_SIZE) {
        dev.read_block(at, &mut blk)?;
        c.copy_from_slice(&blk[..c.len()]);
        at += 1;
    }
    if checksum(SEED_DATA, &data) != f.data_sum {
        return Ok(None);
    }
    let mut payload = vec![0u8; f.payload_len];
    let first = f.payload_len.min(INLINE_PAYLOAD);
    payload[..first].copy_from_slice(&h[HEADER_LEN..HEADER_LEN + first]);
    for c in payload[first..].chunks_mut(BLOCK_SIZE) {
        dev.read_block(at, &mut blk)?;
        c.copy_from_slice(&blk[..c.len()]);
        at += 1;
    }
    if checksum(SEED_PAYLOAD, &payload) != f.payload_sum {
        return Ok(None);
    }
    let mut raw = vec![0u8; f.raw_len];
    match lz4_flex::block::decompress_into(&payload, &mut raw) {
        Ok(n) if n == f.raw_len => {}
        _ => return Ok(None),
    }
    Ok(Some(Record {
        kind: f.kind,
        next_seg: f.next_seg,
        payload: raw,
        blocks,
    }))
}

struct Header {
    kind: u8,
    next_seg: u32,
    epoch: u64,
    seq: u64,
    data_len: usize,
    payload_len: usize,
    raw_len: usize,
    data_sum: u64,
    payload_sum: u64,
}

fn parse_header(h: &[u8]) -> Result<Header> {
    let mut r = Reader::new(&h[..HEADER_LEN], "record header");
    if r.u64()? != REC_MAGIC {
        return Err(corrupt!("record: bad magic"));
    }
    let kind = r.u8()?;
    r.bytes(3)?;
    let f = Header {
        kind,
        next_seg: r.u32()?,
        epoch: r.u64()?,
        seq: r.u64()?,
        data_len: r.u32()? as usize,
        payload_len: r.u32()? as usize,
        raw_len: r.u32()? as usize,
        data_sum: {
            r.u32()?;
            r.u64()?
        },
        payload_sum: r.u64()?,
    };
    if r.u64()? != checksum(SEED_HDR, &h[..HEADER_LEN - 8]) {
        return Err(corrupt!("record: header checksum"));
    }
    Ok(f)
}

/// Walks the record chain from a superblock's start position.
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    pub pos: u64,
    pub seq: u64,
    pub epoch: u64,
    /// Where the log continues after the current segment (from the last valid header).
    pub next_seg: Option<u32>,
    pub seg_count: u32,
}

impl Cursor {
    /// The next valid record, following a segment jump if needed; `None` at the end.
    pub(crate) fn next<D: BlockDevice>(&mut self, dev: &mut D) -> Result<Option<Record>> {
        let mut rec = read_record(dev, self.pos, self.seg_count, self.epoch, self.seq)?;
        if rec.is_none() {
            if let Some(n) = self.next_seg.filter(|&n| seg_start(n) != self.pos) {
                rec = read_record(dev, seg_start(n), self.seg_count, self.epoch, self.seq)?;
                if rec.is_some() {
                    self.pos = seg_start(n);
                }
            }
        }
        if let Some(r) = &rec {
            self.pos += r.blocks;
            self.seq += 1;
            self.next_seg = Some(r.next_seg);
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    #[test]
    fn record_round_trip_and_torn_detection() {
        let mut dev = MemDevice::new(SEG_BLOCKS * 8);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let raw: Vec<u8> = (0..9_000u32).map(|i| (i % 13) as u8).collect();
        let n = write_record(&mut dev, 64, KIND_JOURNAL, 5, 9, 3, &data, &raw).unwrap();
        assert_eq!(
            n,
            record_blocks(data.len(), lz4_flex::block::compress(&raw).len())
        );
        let r = read_record(&mut dev, 64, 8, 5, 9).unwrap().unwrap();
        assert_eq!((r.kind, r.next_seg, r.blocks), (KIND_JOURNAL, 3, n));
        assert_eq!(r.payload, raw);
        // Wrong epoch or sequence: not this record.
        assert!(read_record(&mut dev, 64, 8, 4, 9).unwrap().is_none());
        assert!(read_record(&mut dev, 64, 8, 5, 10).unwrap().is_none());
        // A torn data block is detected.
        dev.poke(66, &[1, 2, 3]);
        assert!(read_record(&mut dev, 64, 8, 5, 9).unwrap().is_none());
    }

    #[test]
    fn superblock_round_trip_and_checks() {
        let sb = Superblock {
            seg_count: 8,
            generation: 3,
            epoch: 2,
            ckpt_epoch: 1,
            start_pos: 64,
            start_seq: 1,
            ckpt_chunks: 1,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b, 512).unwrap(), sb);
        assert!(Superblock::decode(&b, 100).is_err());
        let mut bad = b.clone();
        bad[20] ^= 1;
        assert!(matches!(
            Superblock::decode(&bad, 512),
            Err(Error::Corrupt(_))
        ));
    }
}
