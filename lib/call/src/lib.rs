//! zen-call: register-message calls, the rendezvous behind `call` and `reply_recv`
//! (seL4's Call and ReplyRecv). A client's 64-byte request travels in its registers
//! to a server thread asleep on the channel end, which answers in its registers and
//! waits for the next request in the same trap; when the server already sleeps, the
//! kernel switches straight to it, and back on the reply.
//!
//! This crate is that rendezvous's state for one receiving end ([`End`]), with no lock,
//! no allocation and no knowledge of threads beyond an opaque handle `T` (the kernel's
//! is its thread, compared by identity). The kernel keeps each `End` under a lock
//! and parks and wakes the threads these calls name; the loom model
//! (`tests/loom.rs`) drives the same code with loom's park/unpark.
//!
//! What an end holds, in fixed arrays paid for with the channel:
//! - [`SLOTS`] call records: a call waits in one from `call` to the caller's
//!   `poll_reply`. A record is queued (no server yet), handed to a sleeping server,
//!   taken by a server process (the reply handle names it), then answered or failed.
//! - [`SERVERS`] server threads asleep in `reply_recv`.
//!
//! Promises (the tests check each):
//! - Requests are taken in the order they were made (a record given back by a server
//!   that stopped keeps its place).
//! - A reply reaches only the call it answers: the handle carries the record's
//!   generation, which moves on each time the record is freed, and only the process
//!   that took the call may answer it.
//! - Nothing is lost: a server that stops before it saw the call handed to it gives
//!   it back to the queue; a server process that ends with calls taken fails them
//!   ([`End::fail_taken_by`]); a revoked channel fails every call ([`End::fail_all`]).
//! - A caller that gives up ([`End::abandon`]) leaves nothing behind that names it.
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
mod tests;

/// Words in a message: 64 bytes, in eight registers.
pub const WORDS: usize = 8;
/// A message.
pub type Msg = [u64; WORDS];
/// Calls in flight at one end at once (queued or being answered); one more is
/// [`Refused::Full`].
pub const SLOTS: usize = 8;
/// Server threads asleep at one end at once; one more is [`Refused::Busy`].
pub const SERVERS: usize = 4;

/// Why a call could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every record of the end is in use.
    Full,
    /// [`SERVERS`] threads already wait at the end.
    Busy,
    /// The reply handle names no call the replying process holds.
    BadReply,
}

/// Why a call ended without a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The process that took the call ended before it answered.
    ServerGone,
    /// The channel was revoked or destroyed.
    Revoked,
}

/// A caller's claim on its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    index: u8,
    generation: u32,
}

/// A request handed to a server: the handle to reply with, the caller's process, the
/// words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub handle: u64,
    pub from: u32,
    pub msg: Msg,
}

/// What a woken server finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// A request was handed to it.
    Request(Request),
    /// Still waiting (the wake-up was for something else).
    Waiting,
    /// It no longer waits here: the end was reset ([`End::fail_all`]).
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Waiting for a server, in `order`.
    Queued,
    /// Given to the sleeping server in `servers[_]` that has not woken yet.
    Handed,
    /// Taken by a thread of process `by`, which answers through the handle, with a
    /// token of `epoch` (see [`End::fail_before`]).
    Taken {
        by: u32,
        epoch: u64,
    },
    /// Answered: the reply is in `msg`.
    Answered,
    Failed(Failure),
}

struct Record<T> {
    state: State,
    /// Moves on each time the record is freed, so no handle or ticket outlives its
    /// call. Never 0, so a handle is never 0 (0 means "no reply" to `reply_recv`).
    generation: u32,
    /// The order of the call, for the queue.
    order: u64,
    /// The caller, while it waits (`None` once it gave up).
    caller: Option<T>,
    /// The epoch of the caller's token (the kernel's: the channel's generation).
    epoch: u64,
    from: u32,
    msg: Msg,
}

struct Server<T> {
    thread: T,
    /// The record handed to it while it slept.
    handed: Option<u8>,
    /// The epoch of its token.
    epoch: u64,
}

/// The calls arriving at one channel end.
pub struct End<T> {
    records: [Record<T>; SLOTS],
    servers: [Option<Server<T>>; SERVERS],
    next_order: u64,
}

impl<T> Default for End<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn handle(index: usize, generation: u32) -> u64 {
    u64::from(generation) << 8 | index as u64
}

impl<T> End<T> {
    pub const fn new() -> Self {
        End {
            records: [const {
                Record {
                    state: State::Free,
                    generation: 1,
                    order: 0,
                    caller: None,
                    epoch: 0,
                    from: 0,
                    msg: [0; WORDS],
                }
            }; SLOTS],
            servers: [const { None }; SERVERS],
            next_order: 0,
        }
    }

    /// Records in use (queued, handed, taken, or waiting to be collected).
    pub fn in_use(&self) -> usize {
        self.records
            .iter()
            .filter(|r| r.state != State::Free)
            .count()
    }

    /// Server threads asleep here.
    pub fn sleeping_servers(&self) -> usize {
        self.servers.iter().flatten().count()
    }

    fn free(&mut self, i: usize) {
        let r = &mut self.records[i];
        r.state = State::Free;
        r.caller = None;
        r.msg = [0; WORDS];
        r.generation = match r.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
    }

    fn oldest_queued(&self) -> Option<usize> {
        (0..SLOTS)
            .filter(|&i| self.records[i].state == State::Queued)
            .min_by_key(|&i| self.records[i].order)
    }

    fn take(&mut self, i: usize, pid: u32, epoch: u64) -> Request {
        let r = &mut self.records[i];
        r.state = State::Taken { by: pid, epoch };
        Request {
            handle: handle(i, r.generation),
            from: r.from,
            msg: r.msg,
        }
    }
}

impl<T: Clone + PartialEq> End<T> {
    /// A call by thread `caller` of process `from`, with a token of `epoch`. Its
    /// ticket, and the server thread the request was handed to, which the kernel runs
    /// (at once, in the caller's place, when it can); `None`: queued until a server
    /// comes.
    pub fn call(
        &mut self,
        caller: T,
        from: u32,
        msg: &Msg,
        epoch: u64,
    ) -> Result<(Ticket, Option<T>), Refused> {
        let i = (0..SLOTS)
            .find(|&i| self.records[i].state == State::Free)
            .ok_or(Refused::Full)?;
        let order = self.next_order;
        self.next_order += 1;
        let server = self
            .servers
            .iter_mut()
            .flatten()
            .find(|s| s.handed.is_none());
        let r = &mut self.records[i];
        r.order = order;
        r.caller = Some(caller);
        r.epoch = epoch;
        r.from = from;
        r.msg = *msg;
        let ticket = Ticket {
            index: i as u8,
            generation: r.generation,
        };
        match server {
            Some(s) => {
                r.state = State::Handed;
                s.handed = Some(i as u8);
                Ok((ticket, Some(s.thread.clone())))
            }
            None => {
                r.state = State::Queued;
                Ok((ticket, None))
            }
        }
    }

    /// The caller's answer, once there is one (its record is then free); `None`
    /// while the call is still queued or being answered.
    pub fn poll_reply(&mut self, t: Ticket) -> Option<Result<Msg, Failure>> {
        let i = usize::from(t.index);
        let r = self
            .records
            .get(i)
            .filter(|r| r.generation == t.generation)?;
        let out = match r.state {
            State::Answered => Ok(r.msg),
            State::Failed(f) => Err(f),
            _ => return None,
        };
        self.free(i);
        Some(out)
    }

    /// The caller gives up (it was killed): a queued call is withdrawn; one a server
    /// holds stays until it is answered, and the answer is dropped.
    pub fn abandon(&mut self, t: Ticket) {
        let i = usize::from(t.index);
        let Some(r) = self
            .records
            .get_mut(i)
            .filter(|r| r.generation == t.generation)
        else {
            return;
        };
        match r.state {
            State::Queued | State::Answered | State::Failed(_) => self.free(i),
            State::Handed | State::Taken { .. } => r.caller = None,
            State::Free => {}
        }
    }

    /// Thread `me` of process `pid`, with a token of `epoch`, asks for a request: the
    /// oldest queued one, taken now; or `None`, and `me` is registered to be handed
    /// the next (the kernel then parks it). `Busy` when [`SERVERS`] threads already
    /// wait.
    pub fn serve(&mut self, me: &T, pid: u32, epoch: u64) -> Result<Option<Request>, Refused> {
        if let Some(i) = self.oldest_queued() {
            return Ok(Some(self.take(i, pid, epoch)));
        }
        if self.servers.iter().flatten().any(|s| s.thread == *me) {
            return Ok(None);
        }
        let free = self
            .servers
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(Refused::Busy)?;
        *free = Some(Server {
            thread: me.clone(),
            handed: None,
            epoch,
        });
        Ok(None)
    }

    /// What the server thread `me` (of process `pid`) finds when it wakes.
    pub fn poll_served(&mut self, me: &T, pid: u32) -> Served {
        let Some(k) = self
            .servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.thread == *me))
        else {
            return Served::Dropped;
        };
        let Some((i, epoch)) = self.servers[k]
            .as_ref()
            .and_then(|s| Some((s.handed?, s.epoch)))
        else {
            return Served::Waiting;
        };
        self.servers[k] = None;
        Served::Request(self.take(usize::from(i), pid, epoch))
    }

    /// The server thread `me` stops waiting (it was killed): a request handed to it
    /// goes back to the queue in its place, or on to another server asleep here,
    /// which `wake` is given.
    pub fn stop_serving(&mut self, me: &T, mut wake: impl FnMut(T)) {
        let Some(k) = self
            .servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.thread == *me))
        else {
            return;
        };
        let Some(i) = self.servers[k].take().and_then(|s| s.handed) else {
            return;
        };
        self.hand_on(usize::from(i), &mut wake);
    }

    /// Record `i`, handed to a server that stopped, goes on to another server asleep
    /// here (which `wake` is given), or back to the queue in its place.
    fn hand_on(&mut self, i: usize, wake: &mut impl FnMut(T)) {
        match self
            .servers
            .iter_mut()
            .flatten()
            .find(|s| s.handed.is_none())
        {
            Some(s) => {
                s.handed = Some(i as u8);
                wake(s.thread.clone());
            }
            None => self.records[i].state = State::Queued,
        }
    }

    /// Process `pid` answers the call `handle` names with `msg`; the caller to wake
    /// (`None` if it gave up meanwhile).
    pub fn reply(&mut self, pid: u32, handle: u64, msg: &Msg) -> Result<Option<T>, Refused> {
        let i = (handle & 0xff) as usize;
        let generation = u32::try_from(handle >> 8).map_err(|_| Refused::BadReply)?;
        let r = self
            .records
            .get_mut(i)
            .filter(|r| {
                r.generation == generation
                    && matches!(r.state, State::Taken { by, .. } if by == pid)
            })
            .ok_or(Refused::BadReply)?;
        match r.caller.take() {
            Some(c) => {
                r.state = State::Answered;
                r.msg = *msg;
                Ok(Some(c))
            }
            None => {
                self.free(i);
                Ok(None)
            }
        }
    }

    /// Process `pid` ended: the calls it took and did not answer fail, and `wake` is
    /// given each waiting caller.
    pub fn fail_taken_by(&mut self, pid: u32, mut wake: impl FnMut(T)) {
        for i in 0..SLOTS {
            if matches!(self.records[i].state, State::Taken { by, .. } if by == pid) {
                self.fail(i, Failure::ServerGone, &mut wake);
            }
        }
    }

    /// The channel is destroyed: every call fails and every sleeping server stops
    /// waiting; `wake` is given each thread to wake.
    pub fn fail_all(&mut self, wake: impl FnMut(T)) {
        self.fail_before(u64::MAX, wake);
    }

    /// The channel is revoked and its tokens' epoch is now `epoch`: every call made,
    /// or taken, with an older token fails, and every server waiting with one stops;
    /// calls and servers with a token of `epoch` carry on (a request handed to a
    /// server that stops goes on to another, or back to the queue). `wake` is given
    /// each thread to wake.
    pub fn fail_before(&mut self, epoch: u64, mut wake: impl FnMut(T)) {
        for i in 0..SLOTS {
            let r = &self.records[i];
            let stale = match r.state {
                State::Queued | State::Handed => r.epoch < epoch,
                State::Taken { epoch: taker, .. } => r.epoch < epoch || taker < epoch,
                State::Free | State::Answered | State::Failed(_) => false,
            };
            if stale {
                self.fail(i, Failure::Revoked, &mut wake);
            }
        }
        // A server keeps a request handed to it only if the request still stands.
        for s in self.servers.iter_mut().flatten() {
            if let Some(i) = s.handed {
                if self.records[usize::from(i)].state != State::Handed {
                    s.handed = None;
                }
            }
        }
        let mut orphans = [None; SERVERS];
        for (k, slot) in self.servers.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.epoch < epoch) {
                let s = slot.take().expect("checked");
                orphans[k] = s.handed;
                wake(s.thread);
            }
        }
        for i in orphans.into_iter().flatten() {
            self.hand_on(usize::from(i), &mut wake);
        }
    }

    fn fail(&mut self, i: usize, f: Failure, wake: &mut impl FnMut(T)) {
        match self.records[i].caller.take() {
            Some(c) => {
                self.records[i].state = State::Failed(f);
                wake(c);
            }
            None => self.free(i),
        }
    }
}
