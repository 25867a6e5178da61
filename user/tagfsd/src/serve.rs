//! The request loop: connections, one request at a time, each checked
//! (zen-storeproto's `Request::check`) before the engine sees it.
//!
//! Input is copied out of the client's buffer once, before it is used: the client
//! can write its pages while we work, so nothing is read from them twice.

use zen_std::chan::{self, Cap, Channel};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_storeproto::{rights, Op, Reply, Request, Status};
use zen_tagfs::{Error, Fs};

use crate::disk::Disk;

/// Connections at most, init's included.
const MAX_CONNS: usize = 32;

struct Conn {
    chan: Channel,
    rights: u32,
    /// Its client was seen attached; when it was made (ms).
    seen: bool,
    made: u64,
}

pub struct Server {
    conns: Vec<Conn>,
    fs: Option<Fs<Disk>>,
    /// A write to the disk failed: the engine's state may be ahead of the disk, so
    /// nothing more is written (reads go on) until tagfsd starts again.
    broken: bool,
}

/// What a handled request answers: status, value, and the output for the buffer.
struct Answer {
    status: Status,
    value: u64,
    out: Vec<u8>,
}

fn ok(value: u64, out: Vec<u8>) -> Answer {
    Answer {
        status: Status::Ok,
        value,
        out,
    }
}

fn fail(status: Status, value: u64) -> Answer {
    Answer {
        status,
        value,
        out: Vec::new(),
    }
}

fn status_of(e: &Error) -> Answer {
    match e {
        Error::NotFound(_) => fail(Status::NotFound, 0),
        Error::InvalidTag(_) => fail(Status::InvalidTag, 0),
        Error::Query(q) => fail(Status::BadQuery, q.pos as u64),
        Error::Limit(_) => fail(Status::Limit, 0),
        Error::NoSpace | Error::DeviceTooSmall => fail(Status::Full, 0),
        Error::Io(_) | Error::Corrupt(_) => fail(Status::Io, 0),
    }
}

impl Server {
    pub fn new(init: Channel, fs: Option<Fs<Disk>>) -> Server {
        Server {
            conns: vec![Conn {
                chan: init,
                rights: rights::ALL | rights::ADMIN,
                seen: true,
                made: 0,
            }],
            fs,
            broken: false,
        }
    }

    pub fn run(&mut self) {
        let mut buf = [0u8; 128];
        loop {
            let mut chans: Vec<&mut Channel> = self.conns.iter_mut().map(|c| &mut c.chan).collect();
            let _ = chan::poll(&mut chans, 1000);
            drop(chans);
            // One request of each ready connection per round: none starves another.
            let mut i = 0;
            while i < self.conns.len() {
                match self.conns[i].chan.try_recv_grant(&mut buf) {
                    Ok(Some((n, grant))) => {
                        let msg = buf[..n].to_vec();
                        self.handle(i, &msg, grant);
                    }
                    Ok(None) => {}
                    Err(_) if i == 0 => return, // init's connection is gone
                    Err(_) => {}
                }
                i += 1;
            }
            self.prune();
        }
    }

    /// Drops connections whose client has gone (attached once and no more, or never
    /// attached within 10 s).
    fn prune(&mut self) {
        let now = zen_std::time::uptime_ms();
        let mut i = 1;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let attached = c.chan.peer().unwrap_or(0) != 0;
            c.seen |= attached;
            if !attached && (c.seen || now.saturating_sub(c.made) > 10_000) {
                self.conns.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn handle(&mut self, conn: usize, msg: &[u8], grant: Option<zen_abi::ipc::PageGrant>) {
        let Some(req) = Request::from_bytes(msg) else {
            // Not a request: a grant it brought is declined (unmapped at once).
            if let Some(g) = grant {
                drop(self.conns[conn].chan.accept(g));
            }
            return self.reply(conn, 0, fail(Status::BadRequest, 0), None);
        };
        let mem = match grant.map(|g| self.conns[conn].chan.accept(g)) {
            Some(Ok(m)) => Some(m),
            Some(Err(_)) => return self.reply(conn, req.id, fail(Status::BadGrant, 0), None),
            None => None,
        };
        let size = mem.as_ref().map_or(0, |m| m.len() as u64);
        let answer = match req.check(self.conns[conn].rights, size) {
            Err(s) => fail(s, 0),
            Ok(op) => {
                let mut input = vec![0u8; req.input as usize];
                if let Some(m) = &mem {
                    m.read(0, &mut input);
                }
                self.answer(conn, op, &req, &input, size)
            }
        };
        self.reply(conn, req.id, answer, mem.as_ref());
    }

    fn reply(&mut self, conn: usize, id: u64, a: Answer, mem: Option<&Shared>) {
        let mut a = a;
        if !a.out.is_empty() {
            match mem {
                Some(m) if m.writable() && a.out.len() <= m.len() => {
                    let _ = m.write(0, &a.out);
                }
                _ => a = fail(Status::BadGrant, 0),
            }
        }
        let r = Reply {
            id,
            status: a.status as u8,
            value: a.value,
            len: a.out.len() as u64,
        };
        // A client whose ring is full loses its answer, not our time.
        let _ = self.conns[conn].chan.try_send(&r.to_bytes());
    }

    fn answer(&mut self, conn: usize, op: Op, req: &Request, input: &[u8], size: u64) -> Answer {
        if op == Op::Connect {
            return self.connect(req);
        }
        if op == Op::Hello {
            let s = if self.fs.is_some() {
                Status::Ok
            } else {
                Status::Unavailable
            };
            return fail(s, u64::from(self.conns[conn].rights));
        }
        let writes = matches!(
            op,
            Op::Create
                | Op::Write
                | Op::Truncate
                | Op::AddTag
                | Op::RemoveTag
                | Op::Delete
                | Op::Sync
        );
        let broken = self.broken;
        let Some(fs) = self.fs.as_mut() else {
            return fail(Status::Unavailable, 0);
        };
        if writes && broken {
            return fail(Status::Io, 0);
        }
        let utf8 = core::str::from_utf8(input);
        let object = u32::try_from(req.object).ok();
        let r = (|| -> Result<Answer, Answer> {
            let id = || object.ok_or_else(|| fail(Status::NotFound, 0));
            let text = || utf8.map_err(|_| fail(Status::InvalidTag, 0));
            let e = |e: Error| status_of(&e);
            Ok(match op {
                Op::Create => {
                    let tags: Vec<&str> = text()?.lines().filter(|l| !l.is_empty()).collect();
                    let id = fs.create().map_err(e)?;
                    for t in &tags {
                        if let Err(x) = fs.add_tag(id, t) {
                            // All or nothing: the object goes again.
                            let _ = fs.delete(id);
                            return Err(status_of(&x));
                        }
                    }
                    ok(u64::from(id), Vec::new())
                }
                Op::Read => {
                    let mut out = vec![0u8; req.len as usize];
                    let n = fs.read(id()?, req.offset, &mut out).map_err(e)?;
                    out.truncate(n);
                    ok(n as u64, out)
                }
                Op::Write => {
                    fs.write(id()?, req.offset, input).map_err(e)?;
                    ok(input.len() as u64, Vec::new())
                }
                Op::Truncate => {
                    fs.truncate(id()?, req.offset).map_err(e)?;
                    ok(0, Vec::new())
                }
                Op::AddTag => ok(fs.add_tag(id()?, text()?).map_err(e)? as u64, Vec::new()),
                Op::RemoveTag => ok(fs.remove_tag(id()?, text()?).map_err(e)? as u64, Vec::new()),
                Op::Query => {
                    let q = utf8.map_err(|_| fail(Status::BadQuery, 0))?;
                    // An empty query: every object (`ls` without one).
                    let ids: Vec<u32> = if q.trim().is_empty() {
                        fs.ids().collect()
                    } else {
                        fs.query(q).map_err(e)?
                    };
                    let need = ids.len() as u64 * 8;
                    if need > size {
                        return Err(fail(Status::TooSmall, need));
                    }
                    let out = ids
                        .iter()
                        .flat_map(|&i| u64::from(i).to_le_bytes())
                        .collect();
                    ok(ids.len() as u64, out)
                }
                Op::Meta => {
                    let id = id()?;
                    let m = fs.meta(id).map_err(e)?;
                    let mut out = String::new();
                    for t in fs.tags(id).map_err(e)? {
                        out.push_str(&t);
                        out.push('\n');
                    }
                    if out.len() as u64 > size {
                        return Err(fail(Status::TooSmall, out.len() as u64));
                    }
                    ok(m.size(), out.into_bytes())
                }
                Op::Delete => {
                    fs.delete(id()?).map_err(e)?;
                    ok(0, Vec::new())
                }
                Op::Sync => {
                    fs.sync().map_err(e)?;
                    ok(0, Vec::new())
                }
                Op::Tags => {
                    let prefix = text()?;
                    let mut out = String::new();
                    let mut n = 0;
                    for (t, count) in fs
                        .all_tags()
                        .into_iter()
                        .filter(|(t, _)| t.starts_with(prefix))
                    {
                        out.push_str(&format!("{t} {count}\n"));
                        n += 1;
                    }
                    if out.len() as u64 > size {
                        return Err(fail(Status::TooSmall, out.len() as u64));
                    }
                    ok(n, out.into_bytes())
                }
                Op::Stat => {
                    let s = fs.stats();
                    let bytes = (s.segments as u64) * 256 * 1024;
                    let out = format!(
                        "objects {}\ntags {}\nsegments {}\nfree_segments {}\nlive_bytes {}\nbytes {}\n",
                        s.objects, s.tags, s.segments, s.free_segments, s.live_bytes, bytes
                    );
                    if out.len() as u64 > size {
                        return Err(fail(Status::TooSmall, out.len() as u64));
                    }
                    ok(0, out.into_bytes())
                }
                Op::Hello | Op::Connect => unreachable!("answered above"),
            })
        })();
        let a = r.unwrap_or_else(|a| a);
        if writes && a.status == Status::Io {
            println!("tagfsd: a disk write failed; the store is read-only until restarted");
            self.broken = true;
        }
        a
    }

    /// init's `Connect`: the channel end in slot `object` becomes a connection with
    /// rights `offset` (never ADMIN).
    fn connect(&mut self, req: &Request) -> Answer {
        let slot = Cap(req.object as usize);
        if self.conns.len() >= MAX_CONNS {
            self.prune();
        }
        if self.conns.len() >= MAX_CONNS {
            let _ = slot.drop_token();
            return fail(Status::Limit, 0);
        }
        let attached = Channel::attach(slot);
        let _ = slot.drop_token();
        match attached {
            Ok(chan) => {
                self.conns.push(Conn {
                    chan,
                    rights: req.offset as u32 & rights::ALL,
                    seen: false,
                    made: zen_std::time::uptime_ms(),
                });
                ok(0, Vec::new())
            }
            Err(_) => fail(Status::BadRequest, 0),
        }
    }
}
