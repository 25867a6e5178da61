//! zen-block: the block protocol, spoken by block drivers (nvmed) and their clients.
//!
//! One definition for both sides (STYLE 6): a [`Request`] and a [`Reply`] are fixed
//! little-endian layouts that fit a channel slot; the data of a read or write moves in
//! a page grant sent with the request (the driver's device reads or writes the
//! client's own pages), never through a copy. Every request carries an id the reply
//! repeats, so a client may have many in flight and match answers as they come.
//!
//! A server checks each request with [`check`] before it touches the device: an
//! unknown operation, a range past the end of the disk (or of the client's partition),
//! a transfer larger than the server's largest, a grant too small for the data or
//! without WRITE for a read, a write on a read-only connection: each has its own
//! [`Status`], and nothing reaches the device.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

/// Operations.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The geometry: block size, block count, largest transfer ([`Geometry`]).
    Open = 0,
    Read = 1,
    Write = 2,
    /// Everything acknowledged so far is on stable storage.
    Flush = 3,
    /// The blocks' contents are no longer needed (NVMe deallocate).
    Trim = 4,
    /// The blocks read as zeroes.
    WriteZeroes = 5,
    /// On the server's first connection only: serve one more connection, the channel
    /// end whose token the server got in slot `lba` (passed just before). `blocks`:
    /// [`connect`] bits (read-only; which partition it may reach).
    Connect = 6,
    /// Partition `lba` (0-based, in table order) of the disk: a [`PartInfo`] after
    /// the reply, `OutOfRange` past the last.
    Describe = 7,
}

/// Bits of a `Connect` request's `blocks`.
pub mod connect {
    pub const READ_ONLY: u32 = 1;
    /// Bits 8..16: the partition (1-based index of `Describe`'s) the connection is
    /// confined to; 0 for the whole disk.
    pub const fn partition(blocks: u32) -> u32 {
        (blocks >> 8) & 0xff
    }
    pub const fn with_partition(index: u32) -> u32 {
        (index & 0xff) << 8
    }
}

/// A partition, as `Describe` tells it (after the 32-byte [`Reply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartInfo {
    pub first: u64,
    pub blocks: u64,
    /// The GPT type GUID, in on-disk byte order.
    pub type_guid: [u8; 16],
    /// The name, UTF-8, 0-padded (cut at 24 bytes).
    pub name: [u8; 24],
}

impl PartInfo {
    pub const SIZE: usize = 56;
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..8].copy_from_slice(&self.first.to_le_bytes());
        b[8..16].copy_from_slice(&self.blocks.to_le_bytes());
        b[16..32].copy_from_slice(&self.type_guid);
        b[32..56].copy_from_slice(&self.name);
        b
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            first: u64::from_le_bytes(b[0..8].try_into().ok()?),
            blocks: u64::from_le_bytes(b[8..16].try_into().ok()?),
            type_guid: b[16..32].try_into().ok()?,
            name: b[32..56].try_into().ok()?,
        })
    }
    pub fn name(&self) -> &str {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(24);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            0 => Op::Open,
            1 => Op::Read,
            2 => Op::Write,
            3 => Op::Flush,
            4 => Op::Trim,
            5 => Op::WriteZeroes,
            6 => Op::Connect,
            7 => Op::Describe,
            _ => return None,
        })
    }
    /// Whether the operation moves data in a grant.
    pub const fn has_data(self) -> bool {
        matches!(self, Op::Read | Op::Write)
    }
    /// Whether it changes the disk.
    pub const fn writes(self) -> bool {
        matches!(self, Op::Write | Op::Trim | Op::WriteZeroes)
    }
}

/// A request: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub op: u8,
    /// First block (relative to the connection's partition).
    pub lba: u64,
    pub blocks: u32,
}

impl Request {
    pub const SIZE: usize = 32;

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8] = self.op;
        b[16..24].copy_from_slice(&self.lba.to_le_bytes());
        b[24..28].copy_from_slice(&self.blocks.to_le_bytes());
        b
    }
    /// `None` if `b` is not a whole request.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::SIZE {
            return None;
        }
        Some(Self {
            id: u64::from_le_bytes(b[0..8].try_into().ok()?),
            op: b[8],
            lba: u64::from_le_bytes(b[16..24].try_into().ok()?),
            blocks: u32::from_le_bytes(b[24..28].try_into().ok()?),
        })
    }
}

/// How a request ended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// Not a request, or an unknown operation.
    BadRequest = 1,
    /// Blocks past the end of the disk or partition (or none at all).
    OutOfRange = 2,
    /// More blocks than the largest transfer.
    TooLarge = 3,
    /// A read or write without a grant, or with one too small (or read-only for a read).
    BadGrant = 4,
    /// A change on a read-only connection.
    ReadOnly = 5,
    /// The device failed the command (or was reset while it was in flight).
    DeviceError = 6,
    /// The device did not answer in time; the command was aborted.
    TimedOut = 7,
    /// The device has no such operation (trim or write-zeroes).
    Unsupported = 8,
}

impl Status {
    pub fn from_u32(v: u32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::BadRequest,
            2 => Status::OutOfRange,
            3 => Status::TooLarge,
            4 => Status::BadGrant,
            5 => Status::ReadOnly,
            7 => Status::TimedOut,
            8 => Status::Unsupported,
            _ => Status::DeviceError,
        }
    }
}

/// A reply: 32 bytes. For `Open`, `geometry` is set; otherwise zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: u64,
    pub status: Status,
    pub geometry: Geometry,
}

/// What `Open` tells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block (a power of two, 512 or more).
    pub block_size: u32,
    pub blocks: u64,
    /// Most blocks one request may move.
    pub max_blocks: u32,
    /// [`features`] bits.
    pub features: u32,
}

/// Bits of [`Geometry::features`].
pub mod features {
    pub const TRIM: u32 = 1 << 0;
    pub const WRITE_ZEROES: u32 = 1 << 1;
    /// Writes may sit in a volatile cache until a flush.
    pub const VOLATILE_CACHE: u32 = 1 << 2;
    pub const READ_ONLY: u32 = 1 << 3;
}

impl Reply {
    pub const SIZE: usize = 32;

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&(self.status as u32).to_le_bytes());
        b[12..16].copy_from_slice(&self.geometry.block_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.geometry.blocks.to_le_bytes());
        b[24..28].copy_from_slice(&self.geometry.max_blocks.to_le_bytes());
        b[28..32].copy_from_slice(&self.geometry.features.to_le_bytes());
        b
    }
    /// The reply at the start of `b` (a `Describe` reply has its `PartInfo` after).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Self {
            id: u64::from_le_bytes(b[0..8].try_into().ok()?),
            status: Status::from_u32(u32_at(8)),
            geometry: Geometry {
                block_size: u32_at(12),
                blocks: u64::from_le_bytes(b[16..24].try_into().ok()?),
                max_blocks: u32_at(24),
                features: u32_at(28),
            },
        })
    }
}

/// Most blocks one trim or write-zeroes covers.
pub const MAX_RANGE_BLOCKS: u32 = 1 << 16;

/// The grant a request came with: its length and whether the server may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    pub len: u64,
    pub writable: bool,
}

/// What a connection may reach: `blocks` blocks from `first` of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub blocks: u64,
    pub read_only: bool,
}

/// A request that passed [`check`]: the operation and the disk's blocks it covers
/// (partition offset applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    pub op: Op,
    pub lba: u64,
    pub blocks: u32,
    /// Bytes of data in the grant (0 without data).
    pub bytes: u64,
}

/// Checks `req` against the connection's extent, the geometry and its grant.
pub fn check(
    req: &Request,
    extent: &Extent,
    geometry: &Geometry,
    grant: Option<GrantInfo>,
) -> Result<Checked, Status> {
    let op = Op::from_u8(req.op).ok_or(Status::BadRequest)?;
    if op.writes() && extent.read_only {
        return Err(Status::ReadOnly);
    }
    match op {
        Op::Open | Op::Flush | Op::Connect | Op::Describe => {
            return Ok(Checked {
                op,
                lba: 0,
                blocks: 0,
                bytes: 0,
            })
        }
        Op::Trim if geometry.features & features::TRIM == 0 => return Err(Status::Unsupported),
        Op::WriteZeroes if geometry.features & features::WRITE_ZEROES == 0 => {
            return Err(Status::Unsupported)
        }
        _ => {}
    }
    let end = req
        .lba
        .checked_add(req.blocks as u64)
        .ok_or(Status::OutOfRange)?;
    if req.blocks == 0 || end > extent.blocks {
        return Err(Status::OutOfRange);
    }
    if op.has_data() && req.blocks > geometry.max_blocks {
        return Err(Status::TooLarge);
    }
    // Trim and write-zeroes name their blocks in 16 bits (NVMe's NLB, 0-based).
    if !op.has_data() && req.blocks > MAX_RANGE_BLOCKS {
        return Err(Status::TooLarge);
    }
    let bytes = if op.has_data() {
        let bytes = req.blocks as u64 * geometry.block_size as u64;
        match grant {
            Some(g) if g.len >= bytes && (op != Op::Read || g.writable) => bytes,
            _ => return Err(Status::BadGrant),
        }
    } else {
        0
    };
    Ok(Checked {
        op,
        lba: extent.first + req.lba,
        blocks: req.blocks,
        bytes,
    })
}

#[cfg(test)]
mod tests;
