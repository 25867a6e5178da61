//! Channels and capabilities.
//!
//! A [`Cap`] names a token in this process's token page (mapped read-only at
//! `TOKEN_PAGE`); calls name it by its slot's address there, and the kernel checks
//! its own copy (object, holder, generation, rights). A token's 64 bytes anywhere
//! else in memory work too, and then the kernel checks their MAC as well.
//! A [`Channel`] is one attached end: messages are written into and read from the
//! shared slots in place (zen-ipc), and the kernel is entered only to sleep or to wake
//! a peer that sleeps.
//!
//! Over 500 lines: one channel type (send, receive, call, poll, grants, tokens) whose
//! methods share the ring handling; capabilities are in it because tokens name ends.

use crate::mem::Shared;
use crate::sys::call_reading;
use crate::Result;
use alloc::vec::Vec;
use zen_abi::cap::{Rights, TokenPage, TokenSlot, TOKENS_PER_PAGE};
use zen_abi::ipc::{
    CONSUMER_PAGE, PRODUCER_PAGE, RING_PAGES, RING_SLOTS, SLOTS_PAGE, SLOT_PAYLOAD, SLOT_SIZE,
};
use zen_abi::syscall::{Error, Syscall, TOKEN_PAGE};
pub use zen_ipc::PageGrant;
use zen_ipc::{
    Consumer, ConsumerWords, Producer, ProducerWords, RingWords, Slot, Wait, Wakeup, GRANT_SIZE,
};

/// A token of this process, by its slot in the token page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub usize);

fn page() -> &'static TokenPage {
    // SAFETY: the kernel maps the token page read-only at TOKEN_PAGE in every process
    // before it starts, for its whole life; TokenPage is plain integers (any bits
    // valid). The kernel may update it concurrently; we copy slots out before use.
    unsafe { &*(TOKEN_PAGE as *const TokenPage) }
}

/// The live tokens: (slot, token). What the shell's `caps` shows.
pub fn caps() -> Vec<(Cap, TokenSlot)> {
    let p = page();
    let used = p.header.used;
    (0..TOKENS_PER_PAGE)
        .filter(|i| used & (1 << i) != 0)
        .map(|i| (Cap(i), p.slots[i]))
        .collect()
}

/// The system token (`ObjectType::System`), if this process holds one: init starts
/// with it and passes it to whom it trusts; its POWER right lets `process::shutdown`
/// turn the machine off.
pub fn system_cap() -> Option<Cap> {
    caps()
        .into_iter()
        .find(|(_, t)| t.binding.object_type == zen_abi::cap::ObjectType::System as u32)
        .map(|(c, _)| c)
}

impl Cap {
    /// A copy of the token, as the kernel wants it.
    pub fn token(self) -> Result<TokenSlot> {
        let p = page();
        if self.0 >= TOKENS_PER_PAGE || p.header.used & (1 << self.0) == 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(p.slots[self.0])
    }
    /// The address of its slot in the token page: how calls name it (the kernel reads
    /// its own copy of the token there).
    pub fn addr(self) -> u64 {
        zen_abi::cap::slot_addr(self.0)
    }
    /// Whether the slot holds exactly `t` now.
    fn holds(self, t: &TokenSlot) -> bool {
        let p = page();
        self.0 < TOKENS_PER_PAGE
            && p.header.used & (1 << self.0) != 0
            && p.slots[self.0].token.mac == t.token.mac
            && p.slots[self.0].binding == t.binding
            && p.slots[self.0].token.rights == t.token.rights
    }
    pub fn rights(self) -> Result<Rights> {
        Ok(Rights::from_bits_truncate(self.token()?.token.rights))
    }
    /// Passes a copy with `rights` to the process at `over`'s other end; returns the
    /// slot the copy has in *its* token page (tell it in a message).
    pub fn send_over(self, over: &Channel, rights: Rights) -> Result<Cap> {
        self.token()?;
        over.with_token(|c| {
            call_reading(Syscall::CapSend, [c, self.addr(), rights.bits(), 0, 0, 0])
        })
        .map(|s| Cap(s as usize))
    }
    /// Makes every copy of this object's tokens stale; this slot gets a fresh one.
    pub fn revoke(self) -> Result<()> {
        self.token()?;
        call_reading(Syscall::CapRevoke, [self.addr(), 0, 0, 0, 0, 0]).map(|_| ())
    }
    /// Ends the channel this end belongs to, which this process created (needs
    /// DESTROY): as [`Channel::destroy`], for an end never attached (one used only
    /// for calls in registers, `crate::call`).
    pub fn destroy_channel(self) -> Result<()> {
        call_reading(Syscall::ChanDestroy, [self.addr(), 0, 0, 0, 0, 0]).map(|_| ())
    }
    /// Removes the token from the token page.
    pub fn drop_token(self) -> Result<()> {
        call_reading(Syscall::CapDrop, [self.0 as u64, 0, 0, 0, 0, 0]).map(|_| ())
    }
}

/// Spawns `name` with `arg`, giving it a copy of `cap` with `rights` as its `Cap(0)`.
pub fn spawn_with_cap(name: &str, arg: &str, cap: Cap, rights: Rights) -> Result<u32> {
    cap.token()?;
    let a = [
        name.as_ptr() as u64,
        name.len() as u64,
        arg.as_ptr() as u64,
        arg.len() as u64,
        cap.addr(),
        rights.bits(),
    ];
    call_reading(Syscall::Spawn, a).map(|p| p as u32)
}

/// Starts the ELF `image` (from memory: the store, say) as program `name` with
/// `arg`, given `cap` with `rights` if any; the pid. The kernel checks the image as it
/// checks the boot archive's programs (`BadExecutable`).
pub fn spawn_image(name: &str, image: &[u8], arg: &str, cap: Option<(Cap, Rights)>) -> Result<u32> {
    let d = zen_abi::syscall::SpawnImage {
        image: image.as_ptr() as u64,
        image_len: image.len() as u64,
        name: name.as_ptr() as u64,
        name_len: name.len() as u64,
        arg: arg.as_ptr() as u64,
        arg_len: arg.len() as u64,
    }
    .to_bytes();
    let (tok, rights) = match cap {
        Some((c, r)) => {
            c.token()?;
            (c.addr(), r.bits())
        }
        None => (0, 0),
    };
    call_reading(
        Syscall::SpawnImage,
        [d.as_ptr() as u64, tok, rights, 0, 0, 0],
    )
    .map(|p| p as u32)
}

/// Creates a channel; the tokens of its two ends (all rights).
pub fn create() -> Result<(Cap, Cap)> {
    let r = call_reading(Syscall::ChanCreate, [0; 6])?;
    Ok((Cap((r & 0xffff) as usize), Cap((r >> 16) as usize)))
}

/// One attached end of a channel. Calls name its token by slot (`cap`): the kernel
/// checks its own copy, so no MAC is computed and nothing is copied in.
pub struct Channel {
    cap: Cap,
    /// The token as it was when attached (what the ends and rights are).
    token: TokenSlot,
    /// The ring this end produces: mapped only with SEND.
    tx: Option<Producer<'static>>,
    /// The ring this end consumes: mapped only with RECV.
    rx: Option<Consumer<'static>>,
}

impl core::fmt::Debug for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Channel(object {})", self.token.binding.object)
    }
}

/// The words and slots of ring `r` of the channel mapped at `base`.
///
/// Only call it for a ring whose pages the kernel mapped for this holder
/// (`zen_abi::ipc::page_access`: the produced ring with SEND, the consumed one with
/// RECV); the others are holes.
fn ring(base: u64, r: usize) -> (RingWords<'static>, &'static [Slot]) {
    let page = |which: usize| base + 4096 * (r * RING_PAGES + which) as u64;
    // SAFETY: `attach` returned `base`, where the kernel mapped the channel's pages
    // for this holder's rights (the caller asks only for a ring it may map), each at
    // least readable, until this process unmaps them or the channel is revoked (then
    // an access faults, as for any unmapped memory; it is never another object). Each
    // page starts with the type named (ProducerWords, ConsumerWords, RING_SLOTS
    // slots); all are atomics only, so the peer writing them concurrently is no data
    // race, and zen-ipc checks every value it reads. A page mapped read-only is only
    // read through these references (zen-ipc stores only into the words of its own
    // side, which the kernel mapped read-write for this right).
    unsafe {
        let words = RingWords {
            producer: &*(page(PRODUCER_PAGE) as *const ProducerWords),
            consumer: &*(page(CONSUMER_PAGE) as *const ConsumerWords),
        };
        let slots = core::slice::from_raw_parts(page(SLOTS_PAGE) as *const Slot, RING_SLOTS);
        (words, slots)
    }
}

const _: () = assert!(RING_SLOTS * SLOT_SIZE == 4096);

impl Channel {
    /// Maps the channel end named by `cap` into this process: the ring it produces if
    /// the token holds SEND, the ring it consumes if it holds RECV.
    pub fn attach(cap: Cap) -> Result<Channel> {
        let token = cap.token()?;
        let held = Rights::from_bits_truncate(token.token.rights);
        let base = call_reading(Syscall::ChanAttach, [cap.addr(), 0, 0, 0, 0, 0])?;
        let end = (token.binding.object & 1) as usize;
        let bad = |_| Error::InvalidArgument;
        let tx = if held.contains(Rights::SEND) {
            let (w, s) = ring(base, end);
            Some(Producer::new(w, s).map_err(bad)?)
        } else {
            None
        };
        let rx = if held.contains(Rights::RECV) {
            let (w, s) = ring(base, 1 - end);
            Some(Consumer::new(w, s).map_err(bad)?)
        } else {
            None
        };
        Ok(Channel { cap, token, tx, rx })
    }

    fn tx(&mut self) -> Result<&mut Producer<'static>> {
        self.tx.as_mut().ok_or(Error::Denied)
    }

    fn rx(&mut self) -> Result<&mut Consumer<'static>> {
        self.rx.as_mut().ok_or(Error::Denied)
    }

    fn sys(&self, call: Syscall, arg: u64) -> Result<u64> {
        self.with_token(|t| call_reading(call, [t, arg, 0, 0, 0, 0]))
    }

    /// Runs `f` with the token argument for this end: the slot's address while the
    /// slot still holds the token we attached with (the kernel reads its own copy),
    /// else the address of our copy of it (the kernel checks its MAC). So a `Channel`
    /// keeps using the token it was made with, as a kept copy does (docs/abi.md,
    /// cap_drop), even after its slot is dropped, refilled or revoked.
    fn with_token<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        if self.cap.holds(&self.token) {
            f(self.cap.addr())
        } else {
            let t = self.token.to_bytes();
            f(t.as_ptr() as u64)
        }
    }

    /// Sends one message (at most `SLOT_PAYLOAD` bytes), waiting for room.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.publish(msg)? == Wakeup::Needed {
            self.sys(Syscall::MsgSend, 0)?;
        }
        Ok(())
    }

    /// Sends `msg` if the ring has room now; `Ok(false)` (nothing sent) if it is full.
    /// A server answering many clients uses it so one that never reads cannot stall
    /// the others.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool> {
        match self.tx()?.send(msg) {
            Ok(Some(w)) => {
                if w == Wakeup::Needed {
                    self.sys(Syscall::MsgSend, 0)?;
                }
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(_) => Err(Error::InvalidArgument),
        }
    }

    /// Copies `msg` into the ring we produce, waiting for room; whether the peer
    /// must be woken.
    fn publish(&mut self, msg: &[u8]) -> Result<Wakeup> {
        loop {
            match self.tx()?.send(msg) {
                Ok(Some(w)) => return Ok(w),
                Ok(None) => {
                    if let Wait::Sleep(tail) = self
                        .tx()?
                        .prepare_wait()
                        .map_err(|_| Error::InvalidArgument)?
                    {
                        // On an error (a revoke: the pages may be gone) the ring is not touched.
                        self.sys(Syscall::MsgWaitRoom, tail as u64)?;
                        self.tx()?.end_wait();
                    }
                }
                Err(_) => return Err(Error::InvalidArgument),
            }
        }
    }

    /// A client's request: sends `req` and waits for the answer, into `buf`; its
    /// length. When the answer is not there at once, sending and waiting are one
    /// system call (`msg_call`), and a server sleeping on this CPU runs straight away
    /// in our place. The server must answer each request with one message.
    pub fn call(&mut self, req: &[u8], buf: &mut [u8]) -> Result<usize> {
        self.exchange(req, buf)
    }

    /// A server's turn: sends `reply` (to the request it just received) and waits for
    /// the next request, into `buf`; its length. One system call when it must wait,
    /// as for [`call`](Self::call).
    pub fn reply_recv(&mut self, reply: &[u8], buf: &mut [u8]) -> Result<usize> {
        self.exchange(reply, buf)
    }

    /// A server's loop: waits for a request, has `answer` write the reply (its length
    /// back, or `None` to stop) and sends it while waiting for the next request, in
    /// one system call per turn ([`reply_recv`](Self::reply_recv)). Requests and
    /// replies are at most `SLOT_PAYLOAD` bytes. Returns when `answer` says stop.
    pub fn serve(
        &mut self,
        mut answer: impl FnMut(&[u8], &mut [u8]) -> Option<usize>,
    ) -> Result<()> {
        let mut req = [0u8; SLOT_PAYLOAD];
        let mut reply = [0u8; SLOT_PAYLOAD];
        let mut n = self.recv(&mut req)?;
        loop {
            let Some(len) = answer(&req[..n.min(SLOT_PAYLOAD)], &mut reply) else {
                return Ok(());
            };
            let len = len.min(SLOT_PAYLOAD);
            n = self.reply_recv(&reply[..len], &mut req)?;
        }
    }

    fn exchange(&mut self, msg: &[u8], buf: &mut [u8]) -> Result<usize> {
        // An end that cannot receive could never see the answer: refused before
        // anything is sent.
        self.rx()?;
        // Whether the peer still has to be woken for our message (`Needed` until a
        // msg_call has done it, whatever the ring's flag said).
        let mut wake = Some(self.publish(msg)?);
        let r = self.await_answer(buf, &mut wake);
        // However it ended, a peer waiting for our message is woken for it.
        if wake == Some(Wakeup::Needed) {
            self.sys(Syscall::MsgSend, 0)?;
        }
        r
    }

    /// Waits for a message and receives it: `recv`, and the answer part of `exchange`,
    /// whose first sleep is a msg_call that also wakes the peer (`wake` is then taken).
    fn await_answer(&mut self, buf: &mut [u8], wake: &mut Option<Wakeup>) -> Result<usize> {
        loop {
            match self.rx()?.recv(buf) {
                Ok(Some((n, released))) => {
                    if released == Wakeup::Needed {
                        self.sys(Syscall::MsgRelease, 0)?;
                    }
                    return Ok(n);
                }
                Ok(None) => {
                    if let Wait::Sleep(head) = self
                        .rx()?
                        .prepare_wait()
                        .map_err(|_| Error::InvalidArgument)?
                    {
                        // The first sleep wakes the peer in the same trap (the kernel
                        // looks for a sleeper whatever the flag said); a spurious
                        // wake-up sleeps again without.
                        let call = match wake.take() {
                            Some(_) => Syscall::MsgCall,
                            None => Syscall::MsgRecv,
                        };
                        self.sys(call, head as u64)?;
                        self.rx()?.end_wait();
                    }
                }
                Err(_) => return Err(Error::InvalidArgument),
            }
        }
    }

    /// Receives one message into `buf`, waiting for one; its length. (On an error, a
    /// revoke: the pages may be gone, the ring is not touched.)
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.await_answer(buf, &mut None)
    }

    /// Receives a message if one is there.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        match self.rx()?.recv(buf) {
            Ok(Some((n, w))) => {
                if w == Wakeup::Needed {
                    self.sys(Syscall::MsgRelease, 0)?;
                }
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(Error::InvalidArgument),
        }
    }

    /// [`recv_grant`](Self::recv_grant) without waiting: `None` if no message is there.
    pub fn try_recv_grant(&mut self, buf: &mut [u8]) -> Result<Option<(usize, Option<PageGrant>)>> {
        let bad = |_| Error::InvalidArgument;
        let Some(m) = self.rx()?.peek().map_err(bad)? else {
            return Ok(None);
        };
        let grant = m.grant().map_err(bad)?;
        let skip = if grant.is_some() { GRANT_SIZE } else { 0 };
        let n = m.len() - skip;
        m.read(skip, buf);
        if m.release() == Wakeup::Needed {
            self.sys(Syscall::MsgRelease, 0)?;
        }
        Ok(Some((n, grant)))
    }

    /// Shares `mem` with the process at the other end as a page grant (zero copy), in
    /// one message that also carries `msg` (at most `SLOT_PAYLOAD - GRANT_SIZE`
    /// bytes). `rights`: READ, or READ | WRITE to let the receiver write it. Waits for
    /// room. The receiver maps it with [`Channel::accept`].
    pub fn send_grant(&mut self, mem: &Shared, rights: Rights, msg: &[u8]) -> Result<()> {
        self.send_grant_part(mem, 0, mem.len(), rights, msg)
    }

    /// As [`Channel::send_grant`], for the `len` bytes of `mem` from `off` (a multiple
    /// of 4096): the receiver gets only those pages. A server passes on part of a
    /// client's buffer this way (a driver's device then reaches it in place).
    pub fn send_grant_part(
        &mut self,
        mem: &Shared,
        off: usize,
        len: usize,
        rights: Rights,
        msg: &[u8],
    ) -> Result<()> {
        if msg.len() > SLOT_PAYLOAD - GRANT_SIZE
            || !off.is_multiple_of(4096)
            || len == 0
            || off.checked_add(len).is_none_or(|e| e > mem.len())
        {
            return Err(Error::InvalidArgument);
        }
        let len = len as u64;
        let id = self.with_token(|t| {
            call_reading(
                Syscall::GrantCreate,
                [mem.addr() + off as u64, len, rights.bits(), t, 0, 0],
            )
        })?;
        let grant = PageGrant {
            id,
            len,
            rights: rights.bits(),
        };
        loop {
            let bad = |_| Error::InvalidArgument;
            if let Some(mut s) = self.tx()?.reserve().map_err(bad)? {
                s.set_grant(grant);
                s.write(GRANT_SIZE, msg).map_err(bad)?;
                if s.publish() == Wakeup::Needed {
                    self.sys(Syscall::MsgSend, 0)?;
                }
                return Ok(());
            }
            if let Wait::Sleep(tail) = self.tx()?.prepare_wait().map_err(bad)? {
                // On an error (a revoke: the pages may be gone) the ring is not touched.
                self.sys(Syscall::MsgWaitRoom, tail as u64)?;
                self.tx()?.end_wait();
            }
        }
    }

    /// Receives one message, waiting for one: its bytes go to `buf` (after the grant,
    /// if it carries one), and its page grant, if any, comes back for [`Channel::accept`].
    /// Returns the message length (without the grant).
    pub fn recv_grant(&mut self, buf: &mut [u8]) -> Result<(usize, Option<PageGrant>)> {
        loop {
            if let Some(m) = self.try_recv_grant(buf)? {
                return Ok(m);
            }
            let bad = |_| Error::InvalidArgument;
            if let Wait::Sleep(head) = self.rx()?.prepare_wait().map_err(bad)? {
                // On an error (a revoke: the pages may be gone) the ring is not touched.
                self.sys(Syscall::MsgRecv, head as u64)?;
                self.rx()?.end_wait();
            }
        }
    }

    /// Maps a page grant received on this channel. The kernel checks that it was
    /// made for this process, sent on this channel, with this length and these
    /// rights; it maps once.
    pub fn accept(&self, g: PageGrant) -> Result<Shared> {
        let addr =
            self.with_token(|t| call_reading(Syscall::GrantMap, [g.id, g.len, g.rights, t, 0, 0]))?;
        Ok(Shared::mapped(
            addr,
            g.len as usize,
            g.rights & Rights::WRITE.bits() != 0,
        ))
    }

    /// Ends a channel this process created (needs DESTROY): every token of it goes
    /// stale, every holder's pages of it go (ours too: `self` is consumed), sleepers
    /// on it wake to `Denied`. For a server that makes a channel per client and ends
    /// it when the client is gone or misbehaves.
    pub fn destroy(self) -> Result<()> {
        self.sys(Syscall::ChanDestroy, 0).map(|_| ())
    }

    /// The process at the other end (attached to receive), 0 if none: a server
    /// drops a connection whose client has gone.
    pub fn peer(&self) -> Result<u32> {
        self.sys(Syscall::ChanPeer, 0).map(|p| p as u32)
    }

    /// The token this end was attached with.
    pub fn token(&self) -> TokenSlot {
        self.token
    }

    /// The slot of the token this end calls with.
    pub fn cap(&self) -> Cap {
        self.cap
    }
}

/// Waits until one of `chans` has a message (or `timeout_ms` passes; `u64::MAX`:
/// forever); the index of a ready one.
///
/// Each consumer announces that it waits (zen-ipc's wake-up protocol), so the peers'
/// next `send` traps into the kernel to wake us; a ring that filled meanwhile is
/// reported at once.
pub fn poll(chans: &mut [&mut Channel], timeout_ms: u64) -> Result<usize> {
    poll_with(chans, &[], timeout_ms)
}

/// [`poll`] with more tokens to wait on after the channels (interrupt tokens,
/// `dev::poll`); the kernel checks those, the channels are prepared here.
pub(crate) fn poll_with(
    chans: &mut [&mut Channel],
    extra: &[TokenSlot],
    timeout_ms: u64,
) -> Result<usize> {
    if chans.iter().any(|c| c.rx.is_none()) {
        // An end without RECV has no ring to wait on.
        return Err(Error::Denied);
    }
    let mut ready = None;
    let mut announced = 0;
    for (i, c) in chans.iter_mut().enumerate() {
        match c.rx()?.prepare_wait() {
            Ok(Wait::Sleep(_)) => announced += 1,
            Ok(Wait::Ready) | Err(_) => {
                ready = Some(i);
                break;
            }
        }
    }
    let r = match ready {
        Some(i) => Ok(i),
        None => {
            let toks: Vec<u8> = chans
                .iter()
                .map(|c| c.token)
                .chain(extra.iter().copied())
                .flat_map(|t| t.to_bytes())
                .collect();
            call_reading(
                Syscall::MsgPoll,
                [
                    toks.as_ptr() as u64,
                    (chans.len() + extra.len()) as u64,
                    timeout_ms,
                    0,
                    0,
                    0,
                ],
            )
            .map(|i| i as usize)
        }
    };
    // After a revoke (Denied) the pages may be gone: leave the flags alone.
    if r != Err(Error::Denied) {
        for c in chans.iter_mut().take(announced) {
            if let Some(rx) = c.rx.as_mut() {
                rx.end_wait();
            }
        }
    }
    r
}
