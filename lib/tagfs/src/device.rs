//! Block devices: the one trait the engine needs, and a sparse in-memory device.
//!
//! The engine's crash-safety argument rests on exactly two promises of a device: a
//! block written is read back as written, and after `flush` returns every earlier write
//! survives a power cut. Writes not yet flushed may be lost or land in any order; the
//! crash tests simulate exactly that.
//!
//! A device may also move whole blocks straight into memory outside the engine (the
//! caller's [`Memory`]: in tagfsd, a client's pages), so a read of block-aligned content
//! is not copied through the engine's buffers ([`BlockDevice::read_into`]); the engine
//! still checks every byte against its checksum.

use crate::{Error, Result};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::any::Any;

/// Size of a block in bytes. Every device address is in these units.
pub const BLOCK_SIZE: usize = 4096;

/// A device of fixed-size blocks.
pub trait BlockDevice {
    /// Number of blocks on the device.
    fn block_count(&self) -> u64;
    /// Reads block `lba` into `buf` (`BLOCK_SIZE` bytes).
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf` (`BLOCK_SIZE` bytes) to block `lba`; durable only after `flush`.
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()>;
    /// Makes every earlier write durable.
    fn flush(&mut self) -> Result<()>;
    /// Reads each of `runs` straight into `dst` (all of them, in any order: a device
    /// may keep several in flight), if this device can reach that memory; `Ok(false)`
    /// if not, having read nothing (the engine then reads through its own buffers). A
    /// device that returns `Err` may have written part of the ranges.
    fn read_into(&mut self, runs: &[Run], dst: &mut dyn Memory) -> Result<bool> {
        let _ = (runs, dst);
        Ok(false)
    }
}

/// `count` blocks from `lba`, to land at byte `at` of a [`Memory`] (a multiple of
/// `BLOCK_SIZE`; the engine keeps the range inside the memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub lba: u64,
    pub count: u64,
    pub at: usize,
}

/// Memory a read lands in that the engine does not own: it only copies bytes in and
/// out (the memory may be shared with another program, so never lent as a slice).
pub trait Memory: Any {
    /// Its size in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `data` in at `at` (the range is inside).
    fn put(&mut self, at: usize, data: &[u8]);
    /// Copies bytes from `at` into `out` (the range is inside).
    fn get(&self, at: usize, out: &mut [u8]);
    /// For a device to recognise memory it can reach.
    fn as_any(&mut self) -> &mut dyn Any;
}

/// Plain memory: a [`Memory`] over a vector (tests, tools, and [`MemDevice`]'s direct
/// reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffer(pub Vec<u8>);

impl Memory for Buffer {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn put(&mut self, at: usize, data: &[u8]) {
        self.0[at..at + data.len()].copy_from_slice(data);
    }
    fn get(&self, at: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0[at..at + out.len()]);
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// A sparse in-memory device: unwritten blocks read as zeros. Used by tests and tools.
#[derive(Debug, Clone, Default)]
pub struct MemDevice {
    blocks: BTreeMap<u64, Box<[u8]>>,
    count: u64,
    /// Blocks moved straight into a [`Buffer`] by `read_into` (tests count them).
    pub direct_blocks: u64,
}

impl MemDevice {
    /// A device of `count` zeroed blocks.
    pub fn new(count: u64) -> Self {
        MemDevice {
            blocks: BTreeMap::new(),
            count,
            direct_blocks: 0,
        }
    }
    /// Blocks ever written (for tests and the benchmark's bytes-on-disk figure).
    pub fn written_blocks(&self) -> usize {
        self.blocks.len()
    }
    /// Read-only access to a block, if it was ever written.
    pub fn block(&self, lba: u64) -> Option<&[u8]> {
        self.blocks.get(&lba).map(|b| &b[..])
    }
    /// Overwrites a block directly (tests use this to corrupt images).
    pub fn poke(&mut self, lba: u64, data: &[u8]) {
        let mut b = alloc::vec![0u8; BLOCK_SIZE].into_boxed_slice();
        let n = data.len().min(BLOCK_SIZE);
        b[..n].copy_from_slice(&data[..n]);
        self.blocks.insert(lba, b);
    }
    /// Lbas of all written blocks.
    pub fn written(&self) -> impl Iterator<Item = u64> + '_ {
        self.blocks.keys().copied()
    }
}

fn check(lba: u64, count: u64, len: usize) -> Result<()> {
    if lba >= count {
        return Err(Error::Io(alloc::format!("block {lba} beyond end {count}")));
    }
    if len != BLOCK_SIZE {
        return Err(Error::Io(alloc::format!(
            "buffer of {len} bytes, not one block"
        )));
    }
    Ok(())
}

impl BlockDevice for MemDevice {
    fn block_count(&self) -> u64 {
        self.count
    }
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        check(lba, self.count, buf.len())?;
        match self.blocks.get(&lba) {
            Some(b) => buf.copy_from_slice(b),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        check(lba, self.count, buf.len())?;
        self.blocks.insert(lba, buf.into());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Reaches a [`Buffer`] (as a DMA-capable device reaches pages it was given).
    fn read_into(&mut self, runs: &[Run], dst: &mut dyn Memory) -> Result<bool> {
        let Some(buf) = dst.as_any().downcast_mut::<Buffer>() else {
            return Ok(false);
        };
        for r in runs {
            let end = r.lba.checked_add(r.count).filter(|&e| e <= self.count);
            let room = (r.count as usize)
                .checked_mul(BLOCK_SIZE)
                .and_then(|n| n.checked_add(r.at))
                .filter(|&e| e <= buf.0.len() && r.at.is_multiple_of(BLOCK_SIZE));
            if end.is_none() || room.is_none() {
                return Err(Error::Io(alloc::format!(
                    "direct read of {} blocks at {}: out of range",
                    r.count,
                    r.lba
                )));
            }
            for i in 0..r.count {
                let to = &mut buf.0[r.at + i as usize * BLOCK_SIZE..][..BLOCK_SIZE];
                match self.blocks.get(&(r.lba + i)) {
                    Some(b) => to.copy_from_slice(b),
                    None => to.fill(0),
                }
            }
            self.direct_blocks += r.count;
        }
        Ok(true)
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_block(lba, buf)
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        (**self).write_block(lba, buf)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn read_into(&mut self, runs: &[Run], dst: &mut dyn Memory) -> Result<bool> {
        (**self).read_into(runs, dst)
    }
}
