//! zen-storeproto: the store protocol, spoken by tagfsd and its clients (zen-std's
//! `tagfs`).
//!
//! One definition for both sides (STYLE 6). A [`Request`] and a [`Reply`] are fixed
//! little-endian layouts that fit a channel slot. Everything of variable size moves
//! in one page grant the client sends with the request, its buffer: the input (a
//! tag, a query, the bytes to write) in its first `input` bytes, and the output (the
//! bytes read, the ids a query found, an object's tags) written over it from byte 0,
//! `Reply::len` bytes of it. So a request never carries more than a slot, and
//! nothing the server sends back is copied through the kernel.
//!
//! A server checks each request with [`Request::from_bytes`] and
//! [`Request::check`] before it acts; a client that lies (an input longer than its
//! buffer, an unknown op, a write on a read-only connection) gets its own
//! [`Status`] and changes nothing.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

/// Largest buffer a request may come with (1 MiB: a read or write moves at most this
/// much per request; zen-std splits larger ones).
pub const MAX_BUFFER: u64 = 1 << 20;

/// Operations.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The connection's rights, in `Reply::value` ([`rights`] bits).
    Hello = 0,
    /// A new, empty object tagged with the input's tags (one per line); its id.
    Create = 1,
    /// `len` bytes of `object` from `offset` into the buffer.
    Read = 2,
    /// The input written to `object` at `offset`.
    Write = 3,
    /// `object` cut (or zero-extended) to `offset` bytes.
    Truncate = 4,
    /// The input (one tag) added to `object`; value 1 if it was new.
    AddTag = 5,
    /// The input (one tag) taken from `object`; value 1 if it was there.
    RemoveTag = 6,
    /// The ids matching the input query (every object's if it is empty), as u64s;
    /// value: how many matched (more than fit the buffer: `Status::TooSmall`, value
    /// the bytes needed).
    Query = 7,
    /// `object`'s size in value, its tags in the buffer (one per line).
    Meta = 8,
    Delete = 9,
    /// Everything acknowledged so far is durable when this returns.
    Sync = 10,
    /// Every tag starting with the input, as `tag count` lines.
    Tags = 11,
    /// Figures of the store as `key value` lines ([`Stat`] keys).
    Stat = 12,
    /// Serve one more connection, the channel end whose token came in slot `object`
    /// just before, to pass to another program: its rights are `offset`'s [`rights`]
    /// bits and this connection's together, its scope the input query (if any) and
    /// this connection's (`(ours) AND (input)`): never wider than ours.
    Connect = 13,
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        use Op::*;
        const ALL: [Op; 14] = [
            Hello, Create, Read, Write, Truncate, AddTag, RemoveTag, Query, Meta, Delete, Sync,
            Tags, Stat, Connect,
        ];
        ALL.get(usize::from(v)).copied()
    }
    /// The right a request of this op needs.
    pub const fn needs(self) -> u32 {
        use Op::*;
        match self {
            Hello | Sync => 0,
            Read | Query | Meta | Tags | Stat => rights::READ,
            Create | Write | Truncate | Delete => rights::WRITE,
            AddTag | RemoveTag => rights::TAG,
            Connect => 0,
        }
    }
}

/// A connection's rights.
pub mod rights {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const TAG: u32 = 4;
    pub const ALL: u32 = READ | WRITE | TAG;
}

/// Outcomes.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// Not a request: wrong size, unknown op, input longer than the buffer.
    BadRequest = 1,
    /// The connection lacks the right the op needs, or the change would take an
    /// object out of its scope.
    Denied = 2,
    NotFound = 3,
    /// A tag that is empty, too long or has a forbidden character.
    InvalidTag = 4,
    /// A query that does not parse; value: the byte where it failed.
    BadQuery = 5,
    /// The buffer is too small for the answer; value: the bytes needed.
    TooSmall = 6,
    /// A limit of the format (tags per object, object size).
    Limit = 7,
    /// The store is full.
    Full = 8,
    /// The disk failed or holds something damaged; the store stops writing.
    Io = 9,
    /// A grant the request names could not be mapped, or none came with it.
    BadGrant = 10,
    /// There is no store: the root partition is not TagFS or is damaged (tagfsd said
    /// why on the console when it started).
    Unavailable = 11,
}

impl Status {
    pub fn from_u8(v: u8) -> Option<Status> {
        use Status::*;
        const ALL: [Status; 12] = [
            Ok,
            BadRequest,
            Denied,
            NotFound,
            InvalidTag,
            BadQuery,
            TooSmall,
            Limit,
            Full,
            Io,
            BadGrant,
            Unavailable,
        ];
        ALL.get(usize::from(v)).copied()
    }
    pub const fn as_str(self) -> &'static str {
        use Status::*;
        match self {
            Ok => "ok",
            BadRequest => "bad request",
            Denied => "not allowed on this connection",
            NotFound => "no such object",
            InvalidTag => "invalid tag",
            BadQuery => "query does not parse",
            TooSmall => "answer larger than the buffer",
            Limit => "a limit of the store was reached",
            Full => "the store is full",
            Io => "disk error",
            BadGrant => "bad buffer grant",
            Unavailable => "the store is unavailable",
        }
    }
}

/// A request: 40 bytes (a grant may follow it in the slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Repeated in the reply.
    pub id: u64,
    pub op: u8,
    /// Bytes of input at the start of the buffer.
    pub input: u32,
    pub object: u64,
    pub offset: u64,
    /// Bytes wanted (Read).
    pub len: u64,
}

impl Request {
    pub const SIZE: usize = 40;

    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8] = self.op;
        b[12..16].copy_from_slice(&self.input.to_le_bytes());
        b[16..24].copy_from_slice(&self.object.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.len.to_le_bytes());
        b
    }
    /// `None` if `b` is not a whole request.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::SIZE || b[9..12] != [0; 3] {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(Request {
            id: u64_at(0),
            op: b[8],
            input: u32::from_le_bytes(b[12..16].try_into().ok()?),
            object: u64_at(16),
            offset: u64_at(24),
            len: u64_at(32),
        })
    }

    /// The op, if the request is well formed for a connection with `rights` and a
    /// buffer of `buffer` bytes (0: none came).
    pub fn check(&self, rights: u32, buffer: u64) -> Result<Op, Status> {
        let op = Op::from_u8(self.op).ok_or(Status::BadRequest)?;
        if rights & op.needs() != op.needs() {
            return Err(Status::Denied);
        }
        if u64::from(self.input) > buffer || buffer > MAX_BUFFER {
            return Err(Status::BadRequest);
        }
        let needs_buffer = matches!(
            op,
            Op::Create | Op::Write | Op::AddTag | Op::RemoveTag | Op::Query | Op::Tags
        ) || (op == Op::Read && self.len > 0)
            || op == Op::Meta
            || op == Op::Stat;
        if needs_buffer && buffer == 0 {
            return Err(Status::BadGrant);
        }
        if op == Op::Read && self.len > buffer {
            return Err(Status::TooSmall);
        }
        Ok(op)
    }
}

/// A reply: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: u64,
    pub status: u8,
    pub value: u64,
    /// Bytes of output at the start of the buffer.
    pub len: u64,
}

impl Reply {
    pub const SIZE: usize = 32;

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8] = self.status;
        b[16..24].copy_from_slice(&self.value.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::SIZE {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(Reply {
            id: u64_at(0),
            status: b[8],
            value: u64_at(16),
            len: u64_at(24),
        })
    }
    pub fn status(&self) -> Option<Status> {
        Status::from_u8(self.status)
    }
}

/// Keys of a `Stat` answer, in order.
pub const STAT_KEYS: &[&str] = &[
    "objects",
    "tags",
    "segments",
    "free_segments",
    "live_bytes",
    "bytes",
    // This connection's reads, and of those the bytes the disk's device put straight
    // into the client's pages (zero copy).
    "read_bytes",
    "direct_bytes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = Request {
            id: 7,
            op: Op::Write as u8,
            input: 4096,
            object: 3,
            offset: 1 << 40,
            len: 0,
        };
        assert_eq!(Request::from_bytes(&r.to_bytes()), Some(r));
        let p = Reply {
            id: 7,
            status: Status::TooSmall as u8,
            value: 9,
            len: 1,
        };
        assert_eq!(Reply::from_bytes(&p.to_bytes()), Some(p));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let r = Request {
            id: 1,
            op: Op::Query as u8,
            input: 10,
            object: 0,
            offset: 0,
            len: 0,
        };
        let b = r.to_bytes();
        assert_eq!(Request::from_bytes(&b[..39]), None);
        let mut pad = b;
        pad[10] = 1;
        assert_eq!(Request::from_bytes(&pad), None);
        // Input longer than the buffer, no buffer, unknown op, a buffer too large.
        assert_eq!(r.check(rights::ALL, 8), Err(Status::BadRequest));
        assert_eq!(r.check(rights::ALL, 0), Err(Status::BadRequest));
        let q = Request { input: 0, ..r };
        assert_eq!(q.check(rights::ALL, 0), Err(Status::BadGrant));
        assert_eq!(
            q.check(rights::ALL, MAX_BUFFER + 1),
            Err(Status::BadRequest)
        );
        let u = Request { op: 99, ..r };
        assert_eq!(u.check(rights::ALL, 4096), Err(Status::BadRequest));
        assert_eq!(r.check(rights::ALL, 4096), Ok(Op::Query));
        // A read asking for more than its buffer holds.
        let rd = Request {
            op: Op::Read as u8,
            input: 0,
            len: 8192,
            ..r
        };
        assert_eq!(rd.check(rights::ALL, 4096), Err(Status::TooSmall));
    }

    #[test]
    fn rights_are_needed() {
        let w = Request {
            id: 1,
            op: Op::Write as u8,
            input: 1,
            object: 1,
            offset: 0,
            len: 0,
        };
        assert_eq!(w.check(rights::READ, 4096), Err(Status::Denied));
        assert_eq!(w.check(rights::READ | rights::WRITE, 4096), Ok(Op::Write));
        let t = Request {
            op: Op::AddTag as u8,
            ..w
        };
        assert_eq!(
            t.check(rights::READ | rights::WRITE, 4096),
            Err(Status::Denied)
        );
        let c = Request {
            op: Op::Connect as u8,
            input: 0,
            ..w
        };
        // Anyone may pass on a connection (narrowed by the server).
        assert_eq!(c.check(rights::READ, 0), Ok(Op::Connect));
        let s = Request {
            op: Op::Sync as u8,
            input: 0,
            ..w
        };
        assert_eq!(s.check(0, 0), Ok(Op::Sync));
    }

    #[test]
    fn every_op_and_status_decodes() {
        for v in 0..=255u8 {
            if let Some(op) = Op::from_u8(v) {
                assert_eq!(op as u8, v);
            }
            if let Some(s) = Status::from_u8(v) {
                assert_eq!(s as u8, v);
                assert!(!s.as_str().is_empty());
            }
        }
    }
}
