//! nvmed: the NVMe driver, a user process serving the block protocol (zen-block).
//!
//! Started with a bootstrap channel in `Cap(0)` (zen-std `boot`): the starter (init,
//! as system.toml says) gives it its device token over it, and then speaks the block
//! protocol on it like any client. On that first connection `Connect` hands nvmed
//! more connections (channel ends passed the same way), each served alike.
//!
//! The loop: wait for a message on any connection or a completion on any queue
//! (`dev::poll`), take every request that is there, check it (`zen_block::check`:
//! nothing malformed reaches the device), map its page grant and give the device the
//! client's own pages (`Device::device_addr`, zero copy), submit one command per
//! request, and ring each queue's doorbell once for the batch; then reap completions
//! and reply with each request's id and status. A request's grant stays mapped (and
//! visible to the device) until its completion, then goes.
//!
//! Queues: one pair per CPU (fewer if the controller gives fewer), each interrupting
//! on its own vector at its CPU; requests go to the queue with the fewest in flight.
//!
//! Over 500 lines: the request path (take, check, submit, reap, reply) is one loop
//! over one state; connections, partitions and recovery are modules of their own.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod conn;
mod ctrl;
mod partitions;
mod queue;
mod recovery;

use conn::Conn;

use alloc::vec::Vec;
use zen_abi::cap::Rights;
use zen_block::{connect, Checked, Extent, Geometry, GrantInfo, Op, Reply, Request, Status};
use zen_nvme::Command;
use zen_std::chan::{Cap, Channel};
use zen_std::dev::{self, Device, Dma};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_std::{process, Error};

zen_std::main!(main);

/// Most I/O queue pairs (one per CPU up to this), and connections: msg_poll waits on
/// at most 16 tokens, the queues' interrupts among them.
pub const MAX_QUEUES: usize = 4;
const MAX_CONNS: usize = 16 - MAX_QUEUES;

/// Pages one connection may have in flight (4 MiB): a client granting large buffers
/// many times cannot take the device's whole pin budget (or nvmed's map limit) from
/// the others; its further requests wait in its ring.
pub const MAX_CONN_PAGES: usize = 1024;

/// How long a command may take before it is aborted, and again before the
/// controller is reset.
const COMMAND_TIMEOUT_MS: u64 = 2_000;

/// A command in flight: who asked, its id, the grant the device uses, and when it
/// times out (`aborted` once an abort was sent for it).
struct Pending {
    conn: usize,
    gen: u64,
    /// Pages of its grant, counted against its connection's share.
    pages: usize,
    id: u64,
    _data: Option<Shared>,
    deadline: u64,
    aborted: bool,
}

struct Driver {
    /// Test mode (`stray-dma`): every write's data pointer aims at physical page 0,
    /// outside anything the device was given. With the IOMMU the device is stopped
    /// there and the command fails; without one it reads (never writes) that page.
    stray: bool,
    /// Test mode (`lose-reads`): reads are queued but never announced to the
    /// controller, so they time out: abort, then reset, then `TimedOut` replies.
    lose: bool,
    ctrl: ctrl::Ctrl,
    geometry: Geometry,
    conns: Vec<Conn>,
    /// Per queue, per command id: what is in flight.
    pending: Vec<Vec<Option<Pending>>>,
    /// Per queue: one PRP list page per command id.
    prp_lists: Vec<Dma>,
    /// The disk's partitions (its GPT, checked; none if it has no valid one).
    parts: Vec<zen_gpt::Entry>,
}

fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nvmed: {}", e.as_str());
            1
        }
    }
}

/// CPUs online: those `set_cpu` accepts (we have one thread, so it may move us).
fn cpus() -> usize {
    let n = (0..64).take_while(|&c| process::set_cpu(c).is_ok()).count();
    let _ = process::set_cpu(0);
    n.max(1)
}

fn run() -> zen_std::Result<()> {
    let given = zen_std::boot::receive(10_000)?;
    let first = given.chan;
    let dev = Device::new(*given.devices.first().ok_or(Error::InvalidArgument)?);
    let cpus = cpus().min(MAX_QUEUES);
    let ctrl = ctrl::Ctrl::start(dev, cpus)?;
    let ns = ctrl.ns;
    let block_size = 1u32 << ns.block_shift;
    let mut features = 0;
    if ctrl.info.deallocate {
        features |= zen_block::features::TRIM;
    }
    if ctrl.info.write_zeroes {
        features |= zen_block::features::WRITE_ZEROES;
    }
    if ctrl.info.volatile_cache {
        features |= zen_block::features::VOLATILE_CACHE;
    }
    let geometry = Geometry {
        block_size,
        blocks: ns.blocks,
        max_blocks: (ctrl.info.max_transfer >> ns.block_shift) as u32,
        features,
    };
    println!(
        "nvmed: {} blocks of {} bytes, {} I/O queues, largest transfer {} KiB",
        ns.blocks,
        block_size,
        ctrl.io.len(),
        ctrl.info.max_transfer >> 10
    );
    let entries = ctrl::QUEUE_ENTRIES as usize;
    let mut prp_lists = Vec::new();
    for _ in &ctrl.io {
        prp_lists.push(ctrl.dev.dma(entries * 4096)?);
    }
    let pending = ctrl
        .io
        .iter()
        .map(|_| (0..entries).map(|_| None).collect())
        .collect();
    let whole = Extent {
        first: 0,
        blocks: ns.blocks,
        read_only: false,
    };
    let mut d = Driver {
        stray: process::arg() == "stray-dma",
        lose: process::arg() == "lose-reads",
        ctrl,
        geometry,
        conns: alloc::vec![Conn::new(first, whole, 0)],
        pending,
        prp_lists,
        parts: Vec::new(),
    };
    match d.read_gpt() {
        Ok(p) => d.parts = p,
        Err(why) => println!("nvmed: no partitions: {why}"),
    }
    d.serve()
}

impl Driver {
    fn serve(&mut self) -> zen_std::Result<()> {
        loop {
            let irqs: Vec<dev::Interrupt> = self.ctrl.io.iter().map(|(_, i)| *i).collect();
            // Until the next deadline of a command in flight (or a tick, while a
            // backlog waits for room: a full ring does not wake us when it drains).
            let now = zen_std::time::uptime_ms();
            let mut timeout = self
                .pending
                .iter()
                .flatten()
                .flatten()
                .map(|p| p.deadline.saturating_sub(now))
                .min()
                .unwrap_or(u64::MAX);
            if self.conns.iter().any(|c| !c.dead && !c.backlog.is_empty()) {
                timeout = timeout.min(10);
            }
            // Connections whose requests would be taken now: not while every queue is
            // full or while it has a backlog or its share in flight (a ring with
            // messages we would not read would make every poll return at once).
            let room = self.ctrl.io.iter().any(|(q, _)| q.has_room());
            let mut chans: Vec<&mut Channel> = self
                .conns
                .iter_mut()
                .filter(|c| room && c.ready())
                .map(|c| &mut c.chan)
                .collect();
            let polled = dev::poll(&mut chans, &irqs, timeout);
            drop(chans);
            match polled {
                Ok(_) | Err(Error::TimedOut) => {}
                // A connection gone bad: find it; never a busy loop (sleep a tick).
                Err(_) => {
                    self.prune();
                    zen_std::time::sleep_ms(10);
                }
            }
            for (_, irq) in &self.ctrl.io {
                let _ = irq.take();
            }
            for c in self.conns.iter_mut().filter(|c| !c.dead) {
                c.flush();
            }
            self.take_requests();
            self.reap();
            self.check_timeouts();
        }
    }

    /// Every request waiting on every connection, submitted; doorbells rung once.
    fn take_requests(&mut self) {
        let mut buf = [0u8; 128];
        for c in 0..self.conns.len() {
            loop {
                if !self.ctrl.io.iter().any(|(q, _)| q.has_room()) || !self.conns[c].ready() {
                    break;
                }
                let got = match self.conns[c].chan.try_recv_grant(&mut buf) {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    // A malformed slot stays in the ring (and keeps polls ready):
                    // the connection is dropped, never spun on. The first one is
                    // the starter's; it is trusted, but not spun on either.
                    Err(_) => {
                        let conn = &mut self.conns[c];
                        conn.dead = true;
                        conn.backlog.clear();
                        conn.backlog_len.clear();
                        break;
                    }
                };
                // It sent something: its client was there.
                self.conns[c].seen = true;
                self.request(c, &buf[..got.0], got.1);
            }
        }
        for (q, _) in &mut self.ctrl.io {
            q.ring(&self.ctrl.regs);
        }
    }

    /// Marks the connections whose client has gone (connection 0, the starter's,
    /// stays): their slots are free for new ones.
    fn prune(&mut self) {
        let now = zen_std::time::uptime_ms();
        for c in self.conns.iter_mut().skip(1).filter(|c| !c.dead) {
            let attached = c.chan.peer().unwrap_or(0) != 0;
            c.seen |= attached;
            // Gone: attached once and no more, or never attached within 10 s.
            if !attached && (c.seen || now - c.made > 10_000) {
                c.dead = true;
                c.backlog.clear();
                c.backlog_len.clear();
            }
        }
    }

    fn reply(&mut self, conn: usize, id: u64, status: Status) {
        let gen = self.conns.get(conn).map_or(0, |c| c.gen);
        self.reply_to(conn, gen, id, status);
    }

    /// Gives `pages` back to connection `conn`'s share (if it is still generation `gen`).
    fn release_share(&mut self, conn: usize, gen: u64, pages: usize) {
        if let Some(c) = self.conns.get_mut(conn).filter(|c| c.gen == gen) {
            c.inflight = c.inflight.saturating_sub(pages);
        }
    }

    /// Replies to connection `conn` if it is still the client of generation `gen`.
    fn reply_to(&mut self, conn: usize, gen: u64, id: u64, status: Status) {
        let r = Reply {
            id,
            status,
            geometry: Geometry::default(),
        };
        if let Some(c) = self.conns.get_mut(conn).filter(|c| c.gen == gen && !c.dead) {
            c.send(&r.to_bytes());
        }
    }

    /// Maps and drops a grant the request will not use: unmapped grants would pile up
    /// in the kernel (and hold the client's pages) until nvmed exits.
    fn decline(&mut self, conn: usize, grant: Option<zen_abi::ipc::PageGrant>) {
        if let Some(g) = grant {
            let _ = self.conns[conn].chan.accept(g);
        }
    }

    fn request(&mut self, conn: usize, msg: &[u8], grant: Option<zen_abi::ipc::PageGrant>) {
        let Some(req) = Request::from_bytes(msg) else {
            self.decline(conn, grant);
            return self.reply(conn, 0, Status::BadRequest);
        };
        let info = grant.map(|g| GrantInfo {
            len: g.len,
            writable: g.rights & Rights::WRITE.bits() != 0,
        });
        let checked = match zen_block::check(&req, &self.conns[conn].extent, &self.geometry, info) {
            Ok(c) => c,
            Err(s) => {
                self.decline(conn, grant);
                return self.reply(conn, req.id, s);
            }
        };
        let grant = if checked.op.has_data() {
            grant
        } else {
            self.decline(conn, grant);
            None
        };
        match checked.op {
            Op::Open => {
                // The connection's own extent: a partition's client sees a disk of
                // the partition's size.
                let e = self.conns[conn].extent;
                let mut geometry = Geometry {
                    blocks: e.blocks,
                    ..self.geometry
                };
                if e.read_only {
                    geometry.features |= zen_block::features::READ_ONLY;
                }
                let r = Reply {
                    id: req.id,
                    status: Status::Ok,
                    geometry,
                };
                self.conns[conn].send(&r.to_bytes());
            }
            Op::Connect => self.connect(conn, &req),
            Op::Describe => self.describe(conn, &req),
            _ => self.submit(conn, &req, &checked, grant),
        }
    }

    fn connect(&mut self, conn: usize, req: &Request) {
        if conn != 0 {
            return self.reply(conn, req.id, Status::BadRequest);
        }
        self.prune();
        let free = self.conns.iter().position(|c| c.dead);
        if free.is_none() && self.conns.len() >= MAX_CONNS {
            return self.reply(conn, req.id, Status::BadRequest);
        }
        let read_only = req.blocks & connect::READ_ONLY != 0;
        let extent = match connect::partition(req.blocks) {
            0 => self.conns[0].extent,
            p => match self.parts.get(p as usize - 1) {
                Some(e) => Extent {
                    first: e.first_lba,
                    blocks: e.blocks(),
                    read_only: false,
                },
                None => return self.reply(conn, req.id, Status::OutOfRange),
            },
        };
        let slot = Cap(req.lba as usize);
        let attached = Channel::attach(slot);
        // The channel keeps its copy of the token: the slot goes either way (the
        // token page has 63, and every connection would keep one).
        let _ = slot.drop_token();
        match attached {
            Ok(chan) => {
                let extent = Extent {
                    read_only,
                    ..extent
                };
                match free {
                    Some(i) => {
                        let gen = self.conns[i].gen + 1;
                        self.conns[i] = Conn::new(chan, extent, gen);
                    }
                    None => self.conns.push(Conn::new(chan, extent, 0)),
                }
                self.reply(conn, req.id, Status::Ok);
            }
            Err(_) => self.reply(conn, req.id, Status::BadRequest),
        }
    }

    /// One command for a checked request, on the least busy queue.
    fn submit(
        &mut self,
        conn: usize,
        req: &Request,
        c: &Checked,
        grant: Option<zen_abi::ipc::PageGrant>,
    ) {
        // The grant is mapped first, so every way out below drops (unmaps) it.
        let mem = match grant.map(|g| self.conns[conn].chan.accept(g)) {
            Some(Ok(m)) => Some(m),
            Some(Err(_)) => return self.reply(conn, req.id, Status::BadGrant),
            None => None,
        };
        let Some(qi) = (0..self.ctrl.io.len())
            .filter(|&i| self.ctrl.io[i].0.has_room())
            .min_by_key(|&i| self.ctrl.io[i].0.in_flight)
        else {
            return self.reply(conn, req.id, Status::DeviceError);
        };
        let Some(cid) = self.pending[qi].iter().position(Option::is_none) else {
            return self.reply(conn, req.id, Status::DeviceError);
        };
        let nsid = 1;
        let mut data = None;
        let cmd = match c.op {
            Op::Read | Op::Write => {
                let Some(mem) = mem else {
                    return self.reply(conn, req.id, Status::BadGrant);
                };
                let pages = c.bytes.div_ceil(4096) as usize;
                let mut addrs = Vec::with_capacity(pages);
                for p in 0..pages {
                    match self.ctrl.dev.device_addr(mem.addr() + p as u64 * 4096) {
                        Ok(a) => addrs.push(a),
                        Err(_) => return self.reply(conn, req.id, Status::BadGrant),
                    }
                }
                let mut list = [0u64; 512];
                let Some((prp1, mut prp2, n)) = zen_nvme::prps(c.bytes, 0, |i| addrs[i], &mut list)
                else {
                    return self.reply(conn, req.id, Status::TooLarge);
                };
                if n > 0 {
                    let page = &self.prp_lists[qi];
                    let at = cid * 4096;
                    for (i, e) in list[..n].iter().enumerate() {
                        page.write64(at + 8 * i, *e);
                    }
                    prp2 = page.device_addr(at);
                }
                data = Some(mem);
                let (prp1, prp2) = if self.stray && c.op == Op::Write {
                    (0, 0)
                } else {
                    (prp1, prp2)
                };
                Command::rw(
                    c.op == Op::Write,
                    cid as u16,
                    nsid,
                    c.lba,
                    c.blocks,
                    (prp1, prp2),
                )
            }
            Op::Flush => Command {
                opcode: zen_nvme::op::FLUSH,
                cid: cid as u16,
                nsid,
                ..Command::default()
            },
            Op::WriteZeroes => Command {
                opcode: zen_nvme::op::WRITE_ZEROES,
                cid: cid as u16,
                nsid,
                cdw10: c.lba as u32,
                cdw11: (c.lba >> 32) as u32,
                cdw12: (c.blocks - 1) & 0xffff,
                ..Command::default()
            },
            Op::Trim => {
                // One range (16 bytes: attributes, blocks, first LBA) in this
                // command's PRP list page, deallocated.
                let page = &self.prp_lists[qi];
                let at = cid * 4096;
                page.write64(at, (c.blocks as u64) << 32);
                page.write64(at + 8, c.lba);
                Command {
                    opcode: zen_nvme::op::DSM,
                    cid: cid as u16,
                    nsid,
                    prp1: page.device_addr(at),
                    cdw10: 0,
                    cdw11: 1 << 2,
                    ..Command::default()
                }
            }
            _ => return self.reply(conn, req.id, Status::Unsupported),
        };
        let gen = self.conns[conn].gen;
        let pages = c.bytes.div_ceil(4096) as usize;
        self.conns[conn].inflight += pages;
        self.pending[qi][cid] = Some(Pending {
            conn,
            gen,
            pages,
            id: req.id,
            _data: data,
            deadline: zen_std::time::uptime_ms() + COMMAND_TIMEOUT_MS,
            aborted: false,
        });
        if self.lose && c.op == Op::Read {
            // Test mode: never given to the device (as if the controller lost it).
            return;
        }
        self.ctrl.io[qi].0.push(&cmd);
    }

    /// Every completion there, answered; head doorbells written once per queue.
    fn reap(&mut self) {
        for qi in 0..self.ctrl.io.len() {
            let mut any = false;
            while let Some(done) = self.ctrl.io[qi].0.pop() {
                any = true;
                if let Some(p) = self.pending[qi]
                    .get_mut(done.cid as usize)
                    .and_then(Option::take)
                {
                    let status = match (done.ok(), p.aborted) {
                        (true, _) => Status::Ok,
                        (false, true) => Status::TimedOut,
                        (false, false) => Status::DeviceError,
                    };
                    // The grant goes (unmapped, no longer the device's) before the reply.
                    drop(p._data);
                    self.release_share(p.conn, p.gen, p.pages);
                    self.reply_to(p.conn, p.gen, p.id, status);
                }
            }
            if any {
                let regs = &self.ctrl.regs;
                self.ctrl.io[qi].0.release(regs);
            }
        }
    }
}
