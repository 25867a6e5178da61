//! The request loop: connections, one request at a time, each checked
//! (zen-storeproto's `Request::check`) before the engine sees it.
//!
//! Input is copied out of the client's buffer once, before it is used: the client
//! can write its pages while we work, so nothing is read from them twice.

use zen_abi::cap::Rights;
use zen_std::chan::{self, Channel};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_storeproto::{rights, Op, Reply, Request, Status};
use zen_tagfs::Fs;

use crate::disk::{ClientBuf, Disk};
use crate::ops::{self, fail, ok, Answer};

/// Connections alive in one family (a connection init made and every one shared
/// from it, and from those), so one client cannot take every connection.
const MAX_FAMILY: usize = 6;

/// Connections at most, init's included; the last `INIT_RESERVE` only for init's
/// shares (so a client making connections cannot keep a restarted shell out).
const MAX_CONNS: usize = 32;
const INIT_RESERVE: usize = 4;

struct Conn {
    chan: Channel,
    rights: u32,
    /// The query every object it sees must match (`None`: all).
    scope: Option<String>,
    /// Its id, and its family's: the id of the connection init made that it comes
    /// from (init's own is 0).
    id: u64,
    family: u64,
    /// Its client was seen attached; when it was made (ms).
    seen: bool,
    made: u64,
    reads: ops::Reads,
}

pub struct Server {
    conns: Vec<Conn>,
    fs: Option<Fs<Disk>>,
    /// A write to the disk failed: the engine's state may be ahead of the disk, so
    /// nothing more is written (reads go on) until tagfsd starts again.
    broken: bool,
    next_conn: u64,
}

impl Server {
    pub fn new(init: Channel, fs: Option<Fs<Disk>>) -> Server {
        Server {
            conns: vec![Conn {
                chan: init,
                rights: rights::ALL,
                scope: None,
                id: 0,
                family: 0,
                seen: true,
                made: 0,
                reads: ops::Reads::default(),
            }],
            fs,
            broken: false,
            next_conn: 1,
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
                    Err(_) => {
                        // A slot that is not a message (bad length or flags, a lying
                        // index): the ring stays "ready" forever, so the connection goes.
                        self.close(i);
                        continue;
                    }
                }
                i += 1;
            }
            self.prune();
        }
    }

    /// Drops connections whose client has gone (attached once and no more, or never
    /// attached within 10 s), and any token clients sent us (we keep none in the
    /// page between requests: a client filling it would stop `Connect`).
    fn prune(&mut self) {
        let now = zen_std::time::uptime_ms();
        let mut i = 1;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let attached = c.chan.peer().unwrap_or(0) != 0;
            c.seen |= attached;
            if !attached && (c.seen || now.saturating_sub(c.made) > 10_000) {
                self.close(i);
            } else {
                i += 1;
            }
        }
        sweep();
    }

    /// Ends connection `i` (not init's): its channel, which we made, goes with our
    /// pages of it.
    fn close(&mut self, i: usize) {
        if i == 0 || i >= self.conns.len() {
            return;
        }
        let c = self.conns.swap_remove(i);
        let _ = c.chan.destroy();
    }

    fn handle(&mut self, conn: usize, msg: &[u8], grant: Option<zen_abi::ipc::PageGrant>) {
        let Some(req) = Request::from_bytes(msg) else {
            // Not a request: a grant it brought is declined (unmapped at once).
            if let Some(g) = grant {
                drop(self.conns[conn].chan.accept(g));
            }
            return self.reply(conn, 0, fail(Status::BadRequest, 0), None);
        };
        let mut mem = match grant.map(|g| self.conns[conn].chan.accept(g)) {
            Some(Ok(m)) => Some(ClientBuf {
                len: m.len(),
                mem: m,
            }),
            Some(Err(_)) => return self.reply(conn, req.id, fail(Status::BadGrant, 0), None),
            None => None,
        };
        let size = mem.as_ref().map_or(0, |m| m.len as u64);
        let answer = match req.check(self.conns[conn].rights, size) {
            Err(s) => fail(s, 0),
            Ok(op) => {
                let mut input = vec![0u8; req.input as usize];
                if let Some(m) = &mem {
                    m.mem.read(0, &mut input);
                }
                self.answer(conn, op, &req, &input, size, mem.as_mut())
            }
        };
        self.reply(conn, req.id, answer, mem.as_ref().map(|m| &m.mem));
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
            len: a.out.len() as u64 + a.in_place,
        };
        // A client whose ring is full loses its answer, not our time.
        let _ = self.conns[conn].chan.try_send(&r.to_bytes());
    }

    fn answer(
        &mut self,
        conn: usize,
        op: Op,
        req: &Request,
        input: &[u8],
        size: u64,
        mem: Option<&mut ClientBuf>,
    ) -> Answer {
        if op == Op::Connect {
            return self.connect(conn, req, input);
        }
        if op == Op::Hello {
            let s = if self.fs.is_some() {
                Status::Ok
            } else {
                Status::Unavailable
            };
            return fail(s, u64::from(self.conns[conn].rights));
        }
        let broken = self.broken;
        let Some(fs) = self.fs.as_mut() else {
            return fail(Status::Unavailable, 0);
        };
        if ops::writes(op) && broken {
            return fail(Status::Io, 0);
        }
        let c = &mut self.conns[conn];
        let a = ops::answer(
            fs,
            c.scope.as_deref(),
            op,
            req,
            input,
            size,
            mem,
            &mut c.reads,
        );
        if ops::writes(op) && a.status == Status::Io {
            println!("tagfsd: a disk write failed; the store is read-only until restarted");
            self.broken = true;
        }
        a
    }

    /// `Connect` on connection `conn`: a channel of ours becomes a connection with the
    /// rights in `offset` that `conn` has too and `conn`'s scope narrowed by the input
    /// query; the other end goes to the client (SEND, RECV, GRANT: it may pass it on,
    /// never revoke or end it), its slot there in the reply's value.
    fn connect(&mut self, conn: usize, req: &Request, input: &[u8]) -> Answer {
        let parent = &self.conns[conn];
        let (pid, prights) = (parent.id, parent.rights);
        let family = if pid == 0 {
            self.next_conn
        } else {
            parent.family
        };
        let Ok(asked) = core::str::from_utf8(input) else {
            return fail(Status::BadQuery, 0);
        };
        let scope = match ops::narrow(self.fs.as_ref(), parent.scope.as_deref(), asked) {
            Ok(s) => s,
            Err(a) => return a,
        };
        let kin = self
            .conns
            .iter()
            .filter(|c| c.id != 0 && c.family == family)
            .count();
        let room = if pid == 0 {
            MAX_CONNS
        } else {
            MAX_CONNS - INIT_RESERVE
        };
        if self.conns.len() >= room || (pid != 0 && kin >= MAX_FAMILY) {
            return fail(Status::Limit, 0);
        }
        sweep();
        let Ok((ours, theirs)) = chan::create() else {
            return fail(Status::Limit, 0);
        };
        let attached = Channel::attach(ours);
        let _ = ours.drop_token();
        let passed = theirs.send_over(
            &self.conns[conn].chan,
            Rights::SEND | Rights::RECV | Rights::GRANT,
        );
        let _ = theirs.drop_token();
        match (attached, passed) {
            (Ok(chan), Ok(slot)) => {
                let id = self.next_conn;
                self.next_conn += 1;
                self.conns.push(Conn {
                    chan,
                    rights: req.offset as u32 & prights & rights::ALL,
                    scope,
                    id,
                    family,
                    seen: false,
                    made: zen_std::time::uptime_ms(),
                    reads: ops::Reads::default(),
                });
                ok(slot.0 as u64, Vec::new())
            }
            (Ok(chan), Err(_)) => {
                let _ = chan.destroy();
                fail(Status::Limit, 0)
            }
            (Err(_), _) => fail(Status::Limit, 0),
        }
    }
}

/// Drops every token in our page: clients may send us any (cap_send needs only
/// SEND on the connection), and we keep none there between requests.
fn sweep() {
    for (cap, _) in chan::caps() {
        let _ = cap.drop_token();
    }
}
