//! Calls in registers: a client's 64-byte request and the wait for its reply in one
//! trap ([`Cap::call`]), and a server's reply and the wait for the next request in one
//! trap ([`Server`]), over any channel end, attached or not (the kernel's `call` and
//! `reply_recv`; docs/abi.md). When the server already waits, the kernel switches
//! straight to it, and straight back on the reply: no ring, no page, no copy.
//!
//! ```ignore
//! // Server, on end B: answers each request with its first word doubled, until an
//! // error (a revoke, a kill) ends it.
//! let mut s = Server::new(b);
//! let why = s.serve(|req| [req.msg[0] * 2, 0, 0, 0, 0, 0, 0, 0]);
//! // Client, on end A:
//! assert_eq!(a.call(&[21, 0, 0, 0, 0, 0, 0, 0])?[0], 42);
//! ```

use crate::chan::Cap;
use crate::Result;
use zen_abi::syscall::{Error, Syscall, REPLY_ONLY};

/// A message: eight words, 64 bytes.
pub type Msg = [u64; 8];

/// A request a server holds: who sent it, the words, and the handle its reply names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub from: u32,
    pub msg: Msg,
    pub handle: u64,
}

/// The raw call: (rax, rdi, r15, words) after the kernel's return.
fn raw(nr: Syscall, token: u64, handle: u64, w: &Msg) -> (u64, u64, u64, Msg) {
    let mut o = *w;
    let (ret, from, h): (u64, u64, u64);
    // SAFETY: call and reply_recv write no user memory (they read the token only);
    // the kernel writes every register named here (the reply, or zeros) and preserves
    // the rest but rcx and r11, which `syscall` takes and are declared clobbered.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as u64 => ret,
            inlateout("rdi") token => from,
            inlateout("rsi") o[0], inlateout("rdx") o[1],
            inlateout("r10") o[2], inlateout("r8") o[3],
            inlateout("r9") o[4], inlateout("r12") o[5],
            inlateout("r13") o[6], inlateout("r14") o[7],
            inlateout("r15") handle => h,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    (ret, from, h, o)
}

impl Cap {
    /// Sends `msg` to the server at this channel end's other side and waits for its
    /// reply. Needs SEND. `Busy` when the other end has as many calls in flight as it
    /// takes; `NoPeer` when the server process ended without replying; `Denied` when
    /// the channel was revoked or destroyed meanwhile.
    pub fn call(self, msg: &Msg) -> Result<Msg> {
        let (ret, _, _, reply) = raw(Syscall::Call, self.addr(), 0, msg);
        Error::from_ret(ret).map(|_| reply)
    }
}

/// The server side of one channel end: waits for requests and answers them.
#[derive(Debug)]
pub struct Server {
    cap: Cap,
}

impl Server {
    /// Serves calls made to channel end `cap` (needs RECV).
    pub fn new(cap: Cap) -> Self {
        Self { cap }
    }

    fn reply_recv(&self, handle: u64, reply: &Msg) -> Result<Request> {
        let (ret, from, handle, msg) = raw(Syscall::ReplyRecv, self.cap.addr(), handle, reply);
        Error::from_ret(ret).map(|_| Request {
            from: from as u32,
            msg,
            handle,
        })
    }

    /// Waits for a request.
    pub fn recv(&self) -> Result<Request> {
        self.reply_recv(0, &[0; 8])
    }

    /// Replies to `req` and waits for the next request, in one trap.
    pub fn reply_recv_to(&self, req: &Request, reply: &Msg) -> Result<Request> {
        self.reply_recv(req.handle, reply)
    }

    /// Replies to `req` and returns at once.
    pub fn reply(&self, req: &Request, reply: &Msg) -> Result<()> {
        self.reply_recv(req.handle | REPLY_ONLY, reply).map(|_| ())
    }

    /// Answers every request with `f`'s reply, until an error (the channel revoked,
    /// the process killed), which it returns.
    pub fn serve(&mut self, mut f: impl FnMut(&Request) -> Msg) -> Error {
        let mut req = match self.recv() {
            Ok(r) => r,
            Err(e) => return e,
        };
        loop {
            let reply = f(&req);
            req = match self.reply_recv_to(&req, &reply) {
                Ok(r) => r,
                Err(e) => return e,
            };
        }
    }

    /// Like [`serve`](Self::serve), for `n` requests; the last reply is made without
    /// waiting for another.
    pub fn serve_n(&mut self, n: u64, mut f: impl FnMut(&Request) -> Msg) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut req = self.recv()?;
        for _ in 1..n {
            let reply = f(&req);
            req = self.reply_recv_to(&req, &reply)?;
        }
        let reply = f(&req);
        self.reply(&req, &reply)
    }
}
