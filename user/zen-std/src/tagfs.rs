//! The store, from a program (brief item 21): create, read, write (at an offset),
//! add_tag, remove_tag, query and meta by name, plus truncate, delete, sync, the tag
//! list and the store's figures, over a connection to tagfsd (zen-storeproto).
//!
//! Each call sends one request with this connection's buffer as a page grant (the
//! input in it, the answer written over it): tagfsd reads and writes our pages, and
//! nothing passes through the kernel but the 40-byte request. Reads and writes
//! larger than the buffer are split into several requests (each atomic on its own).
//! [`Store::read_to`] reads into the program's own pages instead: where the content is
//! block-aligned, the disk's device writes them (tagfsd grants them on to nvmed).
//!
//! ```ignore
//! let mut s = zen_std::tagfs::Store::connect(given.store.unwrap())?;
//! let id = s.create(&["note", "owner:ada"])?;
//! s.write(id, 0, b"buy milk")?;
//! s.sync()?;
//! let found = s.query("note AND owner:ada")?;
//! ```

use crate::chan::{self, Cap, Channel};
use crate::mem::Shared;
use alloc::string::String;
use alloc::vec::Vec;
use zen_abi::cap::Rights;
pub use zen_storeproto::{rights, Op, Reply, Request, Status, MAX_BUFFER};

/// Object ids.
pub type ObjectId = u32;

/// Largest object `read_all` reads into memory (64 MiB).
pub const MAX_READ_ALL: u64 = 64 << 20;

/// What a store call can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// tagfsd refused: its status, and the reply's value (where a query failed to
    /// parse, the bytes a too-small buffer needed).
    Refused(Status, u64),
    /// The connection itself failed (tagfsd gone, no memory for the buffer).
    Sys(crate::Error),
    /// tagfsd answered something that is not a reply.
    Garbled,
}

impl StoreError {
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreError::Refused(s, _) => s.as_str(),
            StoreError::Sys(e) => e.as_str(),
            StoreError::Garbled => "the store answered nonsense",
        }
    }
}

impl From<crate::Error> for StoreError {
    fn from(e: crate::Error) -> Self {
        StoreError::Sys(e)
    }
}

pub type Result<T> = core::result::Result<T, StoreError>;

/// Bytes of the buffer a connection starts with; it grows (to `MAX_BUFFER`) when an
/// answer needs more.
const FIRST_BUFFER: usize = 64 << 10;
/// How long a call waits for its answer.
const TIMEOUT_MS: u64 = 10_000;

/// A connection to the store.
pub struct Store {
    chan: Channel,
    buf: Shared,
    next_id: u64,
    /// The connection's rights (`rights` bits), as tagfsd said.
    pub rights: u32,
}

impl core::fmt::Debug for Store {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("rights", &self.rights)
            .finish()
    }
}

impl Store {
    /// Opens the connection whose channel end is in `cap` (from init, `boot`'s
    /// `store`). `Refused(Unavailable)` if tagfsd runs without a store.
    pub fn connect(cap: Cap) -> Result<Store> {
        let chan = Channel::attach(cap)?;
        let _ = cap.drop_token();
        let mut s = Store {
            chan,
            buf: Shared::new(FIRST_BUFFER)?,
            next_id: 1,
            rights: 0,
        };
        let r = s.call(Op::Hello, 0, 0, 0, &[])?;
        s.rights = r.value as u32;
        Ok(s)
    }

    /// One request and its answer. The input goes in the buffer (grown if needed);
    /// the answer's bytes are the buffer's first `Reply::len`.
    fn call(&mut self, op: Op, object: u64, offset: u64, len: u64, input: &[u8]) -> Result<Reply> {
        let need = input.len().max(len as usize);
        if need > self.buf.len() {
            self.grow(need)?;
        }
        self.buf.write(0, input)?;
        let req = self.request(op, input.len() as u32, object, offset, len);
        let r = exchange(&mut self.chan, req, &self.buf, 0, self.buf.len());
        if let Err(StoreError::Sys(crate::Error::TimedOut)) = r {
            // Given up: tagfsd may still answer this call later and write its answer
            // into the buffer, so the next call gets a new one.
            self.buf = Shared::new(self.buf.len())?;
        }
        r
    }

    fn request(&mut self, op: Op, input: u32, object: u64, offset: u64, len: u64) -> Request {
        let id = self.next_id;
        self.next_id += 1;
        Request {
            id,
            op: op as u8,
            input,
            object,
            offset,
            len,
        }
    }

    fn grow(&mut self, need: usize) -> Result<()> {
        if need as u64 > MAX_BUFFER {
            return Err(StoreError::Refused(Status::TooSmall, need as u64));
        }
        self.buf = Shared::new(need.next_power_of_two().max(FIRST_BUFFER))?;
        Ok(())
    }

    /// `call`, growing the buffer once if the answer did not fit.
    fn call_sized(&mut self, op: Op, object: u64, input: &[u8]) -> Result<(Reply, Vec<u8>)> {
        let r = match self.call(op, object, 0, 0, input) {
            Err(StoreError::Refused(Status::TooSmall, need)) => {
                self.grow(need as usize)?;
                self.call(op, object, 0, 0, input)?
            }
            other => other?,
        };
        let mut out = alloc::vec![0u8; r.len as usize];
        self.buf.read(0, &mut out);
        Ok((r, out))
    }

    fn chunk(&self) -> usize {
        self.buf.len()
    }

    /// A new object with `tags` (all or none of them); its id.
    pub fn create(&mut self, tags: &[&str]) -> Result<ObjectId> {
        let text: String = tags.iter().flat_map(|t| [*t, "\n"]).collect();
        let r = self.call(Op::Create, 0, 0, 0, text.as_bytes())?;
        Ok(r.value as ObjectId)
    }

    /// Reads from `off` into `out`; how many bytes there were (fewer at the end).
    pub fn read(&mut self, id: ObjectId, off: u64, out: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < out.len() {
            let want = (out.len() - done).min(self.chunk());
            let r = self.call(Op::Read, id.into(), off + done as u64, want as u64, &[])?;
            let n = (r.len as usize).min(want);
            self.buf.read(0, &mut out[done..done + n]);
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// Reads from `off` into `mem` (as much as it holds), in requests of at most
    /// `MAX_BUFFER` bytes that grant tagfsd only that part of `mem`: where the content
    /// is block-aligned, the disk's device puts it straight into these pages (no copy
    /// anywhere). How many bytes there were. After a `TimedOut`, tagfsd may still write
    /// into `mem` later.
    pub fn read_to(&mut self, id: ObjectId, off: u64, mem: &Shared) -> Result<usize> {
        let mut done = 0;
        while done < mem.len() {
            let want = (mem.len() - done).min(MAX_BUFFER as usize);
            let req = self.request(Op::Read, 0, id.into(), off + done as u64, want as u64);
            let r = exchange(&mut self.chan, req, mem, done, want)?;
            let n = (r.len as usize).min(want);
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// The whole content (at most `MAX_READ_ALL` bytes: `Refused(Limit)` past it).
    pub fn read_all(&mut self, id: ObjectId) -> Result<Vec<u8>> {
        let (size, _) = self.meta(id)?;
        if size > MAX_READ_ALL {
            return Err(StoreError::Refused(Status::Limit, size));
        }
        let mut out = alloc::vec![0u8; size as usize];
        let n = self.read(id, 0, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Writes `data` at `off` (growing the object as needed).
    pub fn write(&mut self, id: ObjectId, off: u64, data: &[u8]) -> Result<()> {
        let step = self.chunk();
        for (k, piece) in data.chunks(step).enumerate() {
            self.call(Op::Write, id.into(), off + (k * step) as u64, 0, piece)?;
        }
        if data.is_empty() {
            self.call(Op::Write, id.into(), off, 0, &[])?;
        }
        Ok(())
    }

    pub fn truncate(&mut self, id: ObjectId, size: u64) -> Result<()> {
        self.call(Op::Truncate, id.into(), size, 0, &[]).map(|_| ())
    }

    /// Whether the tag was new on it.
    pub fn add_tag(&mut self, id: ObjectId, tag: &str) -> Result<bool> {
        Ok(self
            .call(Op::AddTag, id.into(), 0, 0, tag.as_bytes())?
            .value
            != 0)
    }

    /// Whether it had the tag.
    pub fn remove_tag(&mut self, id: ObjectId, tag: &str) -> Result<bool> {
        Ok(self
            .call(Op::RemoveTag, id.into(), 0, 0, tag.as_bytes())?
            .value
            != 0)
    }

    /// The ids of the objects matching `query`, ascending. A query that does not
    /// parse: `Refused(BadQuery, byte)`.
    pub fn query(&mut self, query: &str) -> Result<Vec<ObjectId>> {
        let (_, out) = self.call_sized(Op::Query, 0, query.as_bytes())?;
        Ok(out
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as ObjectId)
            .collect())
    }

    /// Size and tags.
    pub fn meta(&mut self, id: ObjectId) -> Result<(u64, Vec<String>)> {
        let (r, out) = self.call_sized(Op::Meta, id.into(), &[])?;
        let text = core::str::from_utf8(&out).map_err(|_| StoreError::Garbled)?;
        Ok((r.value, text.lines().map(String::from).collect()))
    }

    pub fn delete(&mut self, id: ObjectId) -> Result<()> {
        self.call(Op::Delete, id.into(), 0, 0, &[]).map(|_| ())
    }

    /// Everything done so far is on the disk when this returns.
    pub fn sync(&mut self) -> Result<()> {
        self.call(Op::Sync, 0, 0, 0, &[]).map(|_| ())
    }

    /// Every tag starting with `prefix`, with how many objects carry it.
    pub fn tags(&mut self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let (_, out) = self.call_sized(Op::Tags, 0, prefix.as_bytes())?;
        Ok(pairs(&out))
    }

    /// The store's figures (`zen_storeproto::STAT_KEYS`).
    pub fn stat(&mut self) -> Result<Vec<(String, u64)>> {
        let (_, out) = self.call_sized(Op::Stat, 0, &[])?;
        Ok(pairs(&out))
    }

    /// A new connection for another program, with `rights` (of ours) and a scope
    /// (a query every object it sees must match) at most ours: `scope` is ANDed
    /// with this connection's. tagfsd makes the channel and sends us its end (SEND,
    /// RECV, GRANT: pass it on with `send_over` or `spawn_with_cap`, then drop ours).
    pub fn share(&mut self, rights: u32, scope: &str) -> Result<Cap> {
        let r = self.call(Op::Connect, 0, rights.into(), 0, scope.as_bytes())?;
        let cap = Cap(r.value as usize);
        // Ours only if tagfsd really put a channel token there.
        match cap.token() {
            Ok(t) if t.binding.object_type == zen_abi::cap::ObjectType::Channel as u32 => Ok(cap),
            _ => Err(StoreError::Garbled),
        }
    }

    /// init's side of the bootstrap: the first connection, without asking for its
    /// rights (tagfsd may be unavailable and init still hands out connections).
    pub fn adopt(chan: Channel) -> Result<Store> {
        Ok(Store {
            chan,
            buf: Shared::new(4096)?,
            next_id: 1,
            rights: rights::ALL,
        })
    }
}

impl Store {
    /// The programs in the store: the names of objects tagged `program:NAME`.
    pub fn programs(&mut self) -> Result<Vec<String>> {
        Ok(self
            .tags("program:")?
            .into_iter()
            .filter_map(|(t, _)| t.strip_prefix("program:").map(String::from))
            .collect())
    }

    /// Starts the program the object tagged `program:NAME` holds (an ELF, checked by
    /// the kernel like the boot archive's), with `arg` and `cap` if any; the pid.
    /// `Refused(NotFound)` if no object (or more than one) has the tag.
    pub fn spawn(&mut self, name: &str, arg: &str, cap: Option<(Cap, Rights)>) -> Result<u32> {
        let ids = self.query(&alloc::format!("program:{name}"))?;
        let [id] = ids.as_slice() else {
            return Err(StoreError::Refused(Status::NotFound, ids.len() as u64));
        };
        let (size, _) = self.meta(*id)?;
        if size > zen_abi::syscall::SPAWN_IMAGE_MAX {
            return Err(StoreError::Refused(Status::Limit, size));
        }
        let image = self.read_all(*id)?;
        Ok(chan::spawn_image(name, &image, arg, cap)?)
    }
}

fn pairs(out: &[u8]) -> Vec<(String, u64)> {
    core::str::from_utf8(out)
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((String::from(k), v.parse().ok()?))
        })
        .collect()
}

/// Sends `req` with the `len` bytes of `mem` from `off` as its buffer and waits for
/// its answer (`TimedOut` after `TIMEOUT_MS`; tagfsd may still write the buffer later).
fn exchange(
    chan: &mut Channel,
    req: Request,
    mem: &Shared,
    off: usize,
    len: usize,
) -> Result<Reply> {
    chan.send_grant_part(mem, off, len, Rights::READ | Rights::WRITE, &req.to_bytes())?;
    let mut msg = [0u8; 128];
    let start = crate::time::uptime_ms();
    loop {
        if let Some(n) = chan.try_recv(&mut msg)? {
            let r = Reply::from_bytes(&msg[..n]).ok_or(StoreError::Garbled)?;
            if r.id != req.id && crate::time::uptime_ms() - start < TIMEOUT_MS {
                continue; // an answer to a call that gave up waiting
            }
            if r.id != req.id {
                break;
            }
            return match r.status() {
                Some(Status::Ok) if r.len <= len as u64 => Ok(r),
                Some(Status::Ok) | None => Err(StoreError::Garbled),
                Some(s) => Err(StoreError::Refused(s, r.value)),
            };
        }
        let waited = crate::time::uptime_ms() - start;
        if waited >= TIMEOUT_MS {
            break;
        }
        chan::poll(&mut [chan], TIMEOUT_MS - waited)?;
    }
    Err(StoreError::Sys(crate::Error::TimedOut))
}
