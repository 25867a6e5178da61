//! The root partition as a TagFS [`BlockDevice`]: 4 KiB blocks over a block
//! connection to nvmed (confined to the partition by nvmed), through buffers of ours
//! that nvmed's device reads and writes in place.
//!
//! The engine asks for one block at a time; the disk is driven in runs instead:
//! - writes are gathered while they are consecutive (the log writes segments in
//!   order) and sent as one request when a run breaks, fills (`RUN` blocks), or at
//!   `flush` — which the engine's promise allows: a write is durable only after
//!   `flush`, and a read of a gathered block is answered from the gathered run;
//! - a read that misses fetches `RUN` blocks from there on (read-ahead), kept until
//!   the next miss; writes into that range update it, so it never goes stale.
//!
//! A failed transfer is an `Io` error to the engine, which refuses the call; the disk
//! is never assumed to have done what it did not confirm.
//!
//! A client's read buffer ([`ClientBuf`]) is reachable too: for a read of block-aligned
//! content the engine asks `read_into`, and the blocks go from the disk straight into
//! the client's pages (granted on to nvmed, whose device writes them in place). Gathered
//! writes in that range are sent first, so the disk has them.

use zen_std::block::{Client, Status};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_tagfs::{BlockDevice, Error, Memory, Result, Run, BLOCK_SIZE};

/// Blocks in a run (256 KiB): the most one request moves.
const RUN: u64 = 64;
/// Direct reads in flight at once (as Linux's read-ahead keeps several).
const DEPTH: usize = 8;
/// How long a direct read waits for an answer, as `Client::answer` does.
const ANSWER_MS: u64 = 10_000;

pub struct Disk {
    client: Client,
    /// Device blocks per 4 KiB block.
    per: u64,
    blocks: u64,
    /// Blocks per request, at most `RUN` and what the connection takes.
    run: u64,
    /// Gathered writes: `pending` blocks from `pending_at`, in `wbuf`.
    wbuf: Shared,
    pending_at: u64,
    pending: u64,
    /// Read-ahead: `cached` blocks from `cached_at`, in `rbuf`.
    rbuf: Shared,
    cached_at: u64,
    cached: u64,
    /// The driver left direct reads unanswered: nothing more is asked of it.
    stuck: bool,
}

impl Disk {
    /// `Err` (with the reason) if the connection's block size does not divide 4 KiB.
    pub fn new(client: Client) -> core::result::Result<Disk, String> {
        let g = client.geometry;
        let bs = u64::from(g.block_size);
        if bs == 0 || BLOCK_SIZE as u64 % bs != 0 {
            return Err(format!("block size {bs} does not divide 4096"));
        }
        let per = BLOCK_SIZE as u64 / bs;
        let run = (u64::from(g.max_blocks) / per).clamp(1, RUN);
        let buf = || {
            Shared::new(RUN as usize * BLOCK_SIZE).map_err(|e| format!("buffer: {}", e.as_str()))
        };
        Ok(Disk {
            blocks: g.blocks / per,
            client,
            per,
            run,
            wbuf: buf()?,
            pending_at: 0,
            pending: 0,
            rbuf: buf()?,
            cached_at: 0,
            cached: 0,
            stuck: false,
        })
    }

    fn alive(&self) -> Result<()> {
        if self.stuck {
            return Err(Error::Io(String::from("the disk stopped answering")));
        }
        Ok(())
    }

    fn io(what: &str, lba: u64, r: zen_std::Result<Status>) -> Result<()> {
        match r {
            Ok(Status::Ok) => Ok(()),
            Ok(s) => Err(Error::Io(format!("{what} of block {lba}: {s:?}"))),
            Err(e) => Err(Error::Io(format!("{what} of block {lba}: {}", e.as_str()))),
        }
    }

    /// Sends the gathered writes.
    fn write_pending(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.alive()?;
        let (at, n) = (self.pending_at, self.pending);
        let r = self
            .client
            .write(at * self.per, (n * self.per) as u32, &self.wbuf);
        Self::io("write", at, r)?;
        // Dropped only once on the disk: after a failure, reads still see them.
        self.pending = 0;
        Ok(())
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
        if (self.pending_at..self.pending_at + self.pending).contains(&lba) {
            self.wbuf
                .read((lba - self.pending_at) as usize * BLOCK_SIZE, buf);
            return Ok(());
        }
        if !(self.cached_at..self.cached_at + self.cached).contains(&lba) {
            self.alive()?;
            let n = self.run.min(self.blocks - lba);
            self.cached = 0;
            let r = self
                .client
                .read(lba * self.per, (n * self.per) as u32, &self.rbuf);
            Self::io("read", lba, r)?;
            (self.cached_at, self.cached) = (lba, n);
            // Gathered writes in the range are newer than the disk: they go over what
            // was read, or the cache would hold old bytes once they are sent.
            let lo = lba.max(self.pending_at);
            let hi = (lba + n).min(self.pending_at + self.pending);
            let mut block = vec![0u8; BLOCK_SIZE];
            for b in lo..hi {
                self.wbuf
                    .read((b - self.pending_at) as usize * BLOCK_SIZE, &mut block);
                self.rbuf
                    .write((b - lba) as usize * BLOCK_SIZE, &block)
                    .map_err(|x| Error::Io(format!("buffer: {}", x.as_str())))?;
            }
        }
        self.rbuf
            .read((lba - self.cached_at) as usize * BLOCK_SIZE, buf);
        Ok(())
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        if lba >= self.blocks || buf.len() != BLOCK_SIZE {
            return Err(Error::Io(format!("write of block {lba}: out of range")));
        }
        let at = |base: u64, i: u64| (i - base) as usize * BLOCK_SIZE;
        let e = |x: zen_std::Error| Error::Io(format!("buffer: {}", x.as_str()));
        let end = self.pending_at + self.pending;
        let again = self.pending > 0 && (self.pending_at..end).contains(&lba);
        if !again {
            if self.pending == 0 || lba != end || self.pending == self.run {
                // A refusal here leaves everything as it was: the block is not taken.
                self.write_pending()?;
                self.pending_at = lba;
            }
            self.pending += 1;
        }
        // Written again before it went out: the newer bytes go.
        self.wbuf.write(at(self.pending_at, lba), buf).map_err(e)?;
        if (self.cached_at..self.cached_at + self.cached).contains(&lba) {
            self.rbuf.write(at(self.cached_at, lba), buf).map_err(e)?;
        }
        Ok(())
    }
    fn read_into(&mut self, runs: &[Run], dst: &mut dyn Memory) -> Result<bool> {
        let Some(buf) = dst.as_any().downcast_mut::<ClientBuf>() else {
            return Ok(false);
        };
        let room = buf.len.min(buf.mem.len());
        let fits = |r: &Run| {
            let bytes = (r.count as usize).checked_mul(BLOCK_SIZE);
            r.at.is_multiple_of(BLOCK_SIZE)
                && bytes
                    .and_then(|b| b.checked_add(r.at))
                    .is_some_and(|e| e <= room)
                && r.lba.checked_add(r.count).is_some_and(|e| e <= self.blocks)
        };
        if !buf.mem.writable() || !runs.iter().all(fits) {
            return Ok(false);
        }
        self.alive()?;
        let gathered = self.pending_at..self.pending_at + self.pending;
        if runs
            .iter()
            .any(|r| r.lba < gathered.end && gathered.start < r.lba + r.count)
        {
            self.write_pending()?;
        }
        // Requests of at most `run` blocks, `DEPTH` in flight; every one is waited
        // for (the first failure is the answer), so none is left behind for later.
        let step = self.run;
        let mut asks = runs.iter().flat_map(|r| {
            (0..r.count).step_by(step as usize).map(move |d| {
                let n = (r.count - d).min(step);
                (r.lba + d, n, r.at + d as usize * BLOCK_SIZE)
            })
        });
        let mut flying: Vec<(u64, u64)> = Vec::new();
        let mut failed: Option<Error> = None;
        loop {
            while flying.len() < DEPTH && failed.is_none() {
                let Some((lba, n, at)) = asks.next() else {
                    break;
                };
                let per = self.per;
                match self
                    .client
                    .submit_read_part(lba * per, (n * per) as u32, &buf.mem, at)
                {
                    Ok(id) => flying.push((id, lba)),
                    Err(x) => {
                        failed = Some(Error::Io(format!("read of block {lba}: {}", x.as_str())))
                    }
                }
            }
            if flying.is_empty() {
                break;
            }
            match self.client.wait(ANSWER_MS) {
                Ok(r) => {
                    if let Some(i) = flying.iter().position(|&(id, _)| id == r.id) {
                        let (_, lba) = flying.swap_remove(i);
                        if let Err(x) = Self::io("read", lba, Ok(r.status)) {
                            failed.get_or_insert(x);
                        }
                    }
                }
                Err(x) => {
                    // No answer: nvmed is gone, or stuck with requests of ours that
                    // may still complete. Nothing more goes to it (every later call
                    // is an error): none of them could tell a late answer from its own.
                    if !self.stuck {
                        println!("tagfsd: the disk stopped answering; the store stops");
                    }
                    self.stuck = true;
                    let lba = flying[0].1;
                    return Err(Error::Io(format!("read of block {lba}: {}", x.as_str())));
                }
            }
        }
        failed.map_or(Ok(true), Err)
    }
    fn flush(&mut self) -> Result<()> {
        self.alive()?;
        self.write_pending()?;
        let r = self
            .client
            .submit(zen_block::Op::Flush, 0, 0, None)
            .and_then(|id| self.client.answer(id));
        Self::io("flush", 0, r)
    }
}

/// A client's buffer (the page grant its request brought) as memory a read lands in:
/// the first `len` bytes (what the client asked for).
pub struct ClientBuf {
    pub mem: Shared,
    pub len: usize,
}

impl Memory for ClientBuf {
    fn len(&self) -> usize {
        self.len
    }
    fn put(&mut self, at: usize, data: &[u8]) {
        // Writable and large enough: checked before a read is served into it.
        let _ = self.mem.write(at, data);
    }
    fn get(&self, at: usize, out: &mut [u8]) {
        self.mem.read(at, out);
    }
    fn as_any(&mut self) -> &mut dyn core::any::Any {
        self
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
