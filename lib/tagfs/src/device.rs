//! Block devices: the one trait the engine needs, and a sparse in-memory device.
//!
//! The engine's crash-safety argument rests on exactly two promises of a device: a
//! block written is read back as written, and after `flush` returns every earlier write
//! survives a power cut. Writes not yet flushed may be lost or land in any order; the
//! crash tests simulate exactly that.

use crate::{Error, Result};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;

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
}

/// A sparse in-memory device: unwritten blocks read as zeros. Used by tests and tools.
#[derive(Debug, Clone, Default)]
pub struct MemDevice {
    blocks: BTreeMap<u64, Box<[u8]>>,
    count: u64,
}

impl MemDevice {
    /// A device of `count` zeroed blocks.
    pub fn new(count: u64) -> Self {
        MemDevice {
            blocks: BTreeMap::new(),
            count,
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
}
