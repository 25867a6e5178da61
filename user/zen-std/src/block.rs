//! The client side of the block protocol (zen-block): a [`Client`] speaks to a block
//! driver (nvmed) over a channel. Data moves in page grants of the caller's
//! [`Shared`] memory, which the driver's device reads or writes in place; many
//! requests may be in flight, each answered by id.

use crate::chan::{self, Channel};
use crate::mem::Shared;
use crate::{Error, Result};
use zen_abi::cap::Rights;
pub use zen_block::{connect, Geometry, Op, PartInfo, Reply, Request, Status};

/// GPT partition types a client looks partitions up by (zen-gpt's).
pub const ESP_TYPE: [u8; 16] = zen_gpt::ESP_TYPE;
pub const ZEN_ROOT_TYPE: [u8; 16] = zen_gpt::ZEN_ROOT_TYPE;

/// A short name for a partition type (zen-gpt's).
pub fn type_name(t: &[u8; 16]) -> &'static str {
    zen_gpt::type_name(t)
}

/// `Geometry::features`' read-only bit.
pub const fn features_read_only() -> u32 {
    zen_block::features::READ_ONLY
}

/// Starts block driver `program` (`arg` its argument) on the device `device` as
/// init does (zen-std `boot`: the device token, then `end`), and opens its first
/// connection; (pid, the connection). `device` stays ours.
pub fn spawn_driver(program: &str, arg: &str, device: crate::chan::Cap) -> Result<(u32, Client)> {
    let (a, b) = chan::create()?;
    let pid = chan::spawn_with_cap(program, arg, b, Rights::SEND | Rights::RECV);
    let _ = b.drop_token();
    let mut ch = match pid.and_then(|_| Channel::attach(a)) {
        Ok(ch) => ch,
        Err(e) => {
            let _ = a.drop_token();
            if let Ok(p) = pid {
                let _ = crate::process::kill(p);
                let _ = crate::process::wait(p);
            }
            return Err(e);
        }
    };
    let _ = a.drop_token();
    let pid = pid?;
    let r = crate::boot::give(&mut ch, "device", device, Rights::DEVICE_ALL)
        .and_then(|()| crate::boot::end(&mut ch))
        .and_then(|()| Client::new(ch, 10_000));
    match r {
        Ok(c) => Ok((pid, c)),
        Err(e) => {
            let _ = crate::process::kill(pid);
            let _ = crate::process::wait(pid);
            Err(e)
        }
    }
}

pub struct Client {
    chan: Channel,
    next_id: u64,
    pub geometry: Geometry,
}

impl Client {
    /// Opens the connection: asks for the geometry (waits at most `timeout_ms`).
    pub fn new(chan: Channel, timeout_ms: u64) -> Result<Client> {
        let mut c = Client {
            chan,
            next_id: 1,
            geometry: Geometry::default(),
        };
        let id = c.submit(Op::Open, 0, 0, None)?;
        let r = c.wait(timeout_ms)?;
        if r.id != id || r.status != Status::Ok {
            return Err(Error::InvalidArgument);
        }
        c.geometry = r.geometry;
        Ok(c)
    }

    /// Sends one request; its id. `data`: the memory and the rights the driver gets
    /// (READ for a write, READ | WRITE for a read).
    pub fn submit(
        &mut self,
        op: Op,
        lba: u64,
        blocks: u32,
        data: Option<(&Shared, Rights)>,
    ) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let req = Request {
            id,
            op: op as u8,
            lba,
            blocks,
        };
        match data {
            Some((mem, rights)) => self.chan.send_grant(mem, rights, &req.to_bytes())?,
            None => self.chan.send(&req.to_bytes())?,
        }
        Ok(id)
    }

    /// A raw request as given (tests send malformed ones).
    pub fn submit_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.chan.send(bytes)
    }

    /// The next reply; `TimedOut` after `timeout_ms`.
    pub fn wait(&mut self, timeout_ms: u64) -> Result<Reply> {
        self.wait_with(timeout_ms, &mut [0u8; 128]).map(|(r, _)| r)
    }

    /// The next reply and the message's whole length (its bytes stay in `buf`).
    fn wait_with(&mut self, timeout_ms: u64, buf: &mut [u8; 128]) -> Result<(Reply, usize)> {
        loop {
            if let Some(n) = self.chan.try_recv(buf)? {
                let r = Reply::from_bytes(&buf[..n]).ok_or(Error::InvalidArgument)?;
                return Ok((r, n));
            }
            chan::poll(&mut [&mut self.chan], timeout_ms)?;
        }
    }

    /// Partition `index` (0-based) of the disk; `None` past the last.
    pub fn describe(&mut self, index: u64) -> Result<Option<PartInfo>> {
        let id = self.submit(Op::Describe, index, 0, None)?;
        let mut buf = [0u8; 128];
        let (r, n) = self.wait_with(10_000, &mut buf)?;
        if r.id != id {
            return Err(Error::InvalidArgument);
        }
        match r.status {
            Status::Ok => PartInfo::from_bytes(&buf[Reply::SIZE..n])
                .map(Some)
                .ok_or(Error::InvalidArgument),
            _ => Ok(None),
        }
    }

    /// Every partition of the disk, in table order.
    pub fn partitions(&mut self) -> Result<alloc::vec::Vec<PartInfo>> {
        let mut out = alloc::vec::Vec::new();
        while let Some(p) = self.describe(out.len() as u64)? {
            out.push(p);
        }
        Ok(out)
    }

    /// Reads `blocks` blocks at `lba` into `mem` and waits for the answer.
    pub fn read(&mut self, lba: u64, blocks: u32, mem: &Shared) -> Result<Status> {
        let id = self.submit(
            Op::Read,
            lba,
            blocks,
            Some((mem, Rights::READ | Rights::WRITE)),
        )?;
        self.answer(id)
    }
    /// Reads `blocks` blocks at `lba` into `mem` from byte `off` (a multiple of 4096),
    /// granting the driver only those pages, and waits for the answer.
    pub fn read_part(&mut self, lba: u64, blocks: u32, mem: &Shared, off: usize) -> Result<Status> {
        let id = self.submit_read_part(lba, blocks, mem, off)?;
        self.answer(id)
    }
    /// As [`Client::read_part`] without waiting: its id, whose reply [`Client::wait`]
    /// brings (many may be in flight).
    pub fn submit_read_part(
        &mut self,
        lba: u64,
        blocks: u32,
        mem: &Shared,
        off: usize,
    ) -> Result<u64> {
        let id = self.next_id;
        let req = Request {
            id,
            op: Op::Read as u8,
            lba,
            blocks,
        };
        let len = (blocks as usize)
            .checked_mul(self.geometry.block_size as usize)
            .ok_or(Error::InvalidArgument)?;
        let rights = Rights::READ | Rights::WRITE;
        self.chan
            .send_grant_part(mem, off, len, rights, &req.to_bytes())?;
        self.next_id += 1;
        Ok(id)
    }
    /// Writes `blocks` blocks at `lba` from `mem` and waits for the answer.
    pub fn write(&mut self, lba: u64, blocks: u32, mem: &Shared) -> Result<Status> {
        let id = self.submit(Op::Write, lba, blocks, Some((mem, Rights::READ)))?;
        self.answer(id)
    }
    /// Waits for the reply to `id`; replies to earlier requests (answered late,
    /// after their waiter gave up) are skipped, so one slow answer does not throw
    /// every later one off by one.
    pub fn answer(&mut self, id: u64) -> Result<Status> {
        loop {
            let r = self.wait(10_000)?;
            if r.id == id {
                return Ok(r.status);
            }
            if r.id > id {
                return Err(Error::InvalidArgument);
            }
        }
    }
    /// Asks the server for another connection (allowed on its first connection
    /// only): `bits` are `connect` bits (read-only, a partition). The end to give
    /// the new client (its token is in our token page; drop it once passed on).
    pub fn connect(&mut self, bits: u32) -> Result<crate::chan::Cap> {
        let (a, b) = chan::create()?;
        let passed = b.send_over(&self.chan, Rights::SEND | Rights::RECV);
        let _ = b.drop_token();
        let slot = match passed {
            Ok(s) => s,
            Err(e) => {
                let _ = a.drop_token();
                return Err(e);
            }
        };
        let answer = self
            .submit(Op::Connect, slot.0 as u64, bits, None)
            .and_then(|id| self.answer(id));
        match answer {
            Ok(Status::Ok) => Ok(a),
            other => {
                let _ = a.drop_token();
                Err(other.err().unwrap_or(Error::InvalidArgument))
            }
        }
    }

    pub fn channel(&mut self) -> &mut Channel {
        &mut self.chan
    }
}
