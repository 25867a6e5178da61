//! A TagFS block device backed by an image file (as in the tagfs tool).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use zen_tagfs::{BlockDevice, Error, Result, BLOCK_SIZE};

/// An image file; `flush` is `fdatasync`, which is what the engine's durability needs.
pub struct FileDevice {
    file: File,
    blocks: u64,
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

impl FileDevice {
    /// Creates (or truncates) an image of `bytes` bytes, sparse on disk.
    pub fn create(path: &Path, bytes: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(bytes)?;
        Ok(FileDevice {
            file,
            blocks: bytes / BLOCK_SIZE as u64,
        })
    }

    /// Opens an existing image.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let blocks = file.metadata()?.len() / BLOCK_SIZE as u64;
        Ok(FileDevice { file, blocks })
    }
}

impl BlockDevice for FileDevice {
    fn block_count(&self) -> u64 {
        self.blocks
    }
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        if lba >= self.blocks {
            return Err(Error::Io(format!(
                "block {lba} beyond the image's {} blocks",
                self.blocks
            )));
        }
        self.file
            .read_exact_at(buf, lba * BLOCK_SIZE as u64)
            .map_err(io)
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        if lba >= self.blocks {
            return Err(Error::Io(format!(
                "block {lba} beyond the image's {} blocks",
                self.blocks
            )));
        }
        self.file
            .write_all_at(buf, lba * BLOCK_SIZE as u64)
            .map_err(io)
    }
    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().map_err(io)
    }
}
