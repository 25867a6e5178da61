//! The root partition as a TagFS [`BlockDevice`]: 4 KiB blocks over a block
//! connection to nvmed (confined to the partition by nvmed), through one buffer of
//! ours that nvmed's device reads and writes in place.
//!
//! A failed transfer is an `Io` error to the engine, which refuses the call; the disk
//! is never assumed to have done what it did not confirm.

use zen_std::block::{Client, Status};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_tagfs::{BlockDevice, Error, Result, BLOCK_SIZE};

pub struct Disk {
    client: Client,
    buf: Shared,
    /// Device blocks per 4 KiB block.
    per: u64,
    blocks: u64,
}

impl Disk {
    /// `None` (with the reason) if the connection's block size does not divide 4 KiB.
    pub fn new(client: Client) -> core::result::Result<Disk, String> {
        let g = client.geometry;
        let bs = u64::from(g.block_size);
        if bs == 0 || BLOCK_SIZE as u64 % bs != 0 {
            return Err(format!("block size {bs} does not divide 4096"));
        }
        let per = BLOCK_SIZE as u64 / bs;
        let buf = Shared::new(BLOCK_SIZE).map_err(|e| format!("buffer: {}", e.as_str()))?;
        Ok(Disk {
            blocks: g.blocks / per,
            client,
            buf,
            per,
        })
    }

    fn io(what: &str, lba: u64, r: zen_std::Result<Status>) -> Result<()> {
        match r {
            Ok(Status::Ok) => Ok(()),
            Ok(s) => Err(Error::Io(format!("{what} of block {lba}: {s:?}"))),
            Err(e) => Err(Error::Io(format!("{what} of block {lba}: {}", e.as_str()))),
        }
    }
}

impl BlockDevice for Disk {
    fn block_count(&self) -> u64 {
        self.blocks
    }
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        if lba >= self.blocks || buf.len() != BLOCK_SIZE {
            return Err(Error::Io(format!("read of block {lba}: out of range")));
        }
        let r = self.client.read(lba * self.per, self.per as u32, &self.buf);
        Self::io("read", lba, r)?;
        self.buf.read(0, buf);
        Ok(())
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        if lba >= self.blocks || buf.len() != BLOCK_SIZE {
            return Err(Error::Io(format!("write of block {lba}: out of range")));
        }
        self.buf
            .write(0, buf)
            .map_err(|e| Error::Io(format!("buffer: {}", e.as_str())))?;
        let r = self
            .client
            .write(lba * self.per, self.per as u32, &self.buf);
        Self::io("write", lba, r)
    }
    fn flush(&mut self) -> Result<()> {
        let r = self
            .client
            .submit(zen_block::Op::Flush, 0, 0, None)
            .and_then(|id| self.client.answer(id));
        Self::io("flush", 0, r)
    }
}

/// Whether the first two blocks (the superblocks) are all zeroes: a partition never
/// written, which tagfsd formats (anything else must mount or is refused).
pub fn blank(d: &mut Disk) -> Result<bool> {
    let mut b = vec![0u8; BLOCK_SIZE];
    for lba in 0..2 {
        d.read_block(lba, &mut b)?;
        if b.iter().any(|&x| x != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}
