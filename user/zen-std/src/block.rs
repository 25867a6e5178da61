//! The client side of the block protocol (zen-block): a [`Client`] speaks to a block
//! driver (nvmed) over a channel. Data moves in page grants of the caller's
//! [`Shared`] memory, which the driver's device reads or writes in place; many
//! requests may be in flight, each answered by id.

use crate::chan::{self, Channel};
use crate::mem::Shared;
use crate::{Error, Result};
use zen_abi::cap::Rights;
pub use zen_block::{Geometry, Op, Reply, Request, Status};

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
        let mut buf = [0u8; 128];
        loop {
            if let Some(n) = self.chan.try_recv(&mut buf)? {
                return Reply::from_bytes(&buf[..n]).ok_or(Error::InvalidArgument);
            }
            chan::poll(&mut [&mut self.chan], timeout_ms)?;
        }
    }

    /// Reads `blocks` blocks at `lba` into `mem` and waits for the answer.
    pub fn read(&mut self, lba: u64, blocks: u32, mem: &Shared) -> Result<Status> {
        let id = self.submit(Op::Read, lba, blocks, Some((mem, Rights::READ | Rights::WRITE)))?;
        self.answer(id)
    }
    /// Writes `blocks` blocks at `lba` from `mem` and waits for the answer.
    pub fn write(&mut self, lba: u64, blocks: u32, mem: &Shared) -> Result<Status> {
        let id = self.submit(Op::Write, lba, blocks, Some((mem, Rights::READ)))?;
        self.answer(id)
    }
    /// Waits for the reply to `id` (replies to others in between are an error: use
    /// `submit` and `wait` to have many in flight).
    pub fn answer(&mut self, id: u64) -> Result<Status> {
        let r = self.wait(10_000)?;
        if r.id != id {
            return Err(Error::InvalidArgument);
        }
        Ok(r.status)
    }
    pub fn channel(&mut self) -> &mut Channel {
        &mut self.chan
    }
}
