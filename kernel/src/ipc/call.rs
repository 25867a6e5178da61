//! `call` and `reply_recv`: request and reply in registers over a channel (seL4's
//! Call and ReplyRecv), beside the rings, which stay for streams.
//!
//! A client's call goes to the other end of its channel end: if a server thread waits
//! there in reply_recv, the request is handed to it and the kernel switches straight
//! to it (`task::park_handing_off`: the rest of the caller's turn passes to it); if
//! not, the call waits in the end's queue. The server's reply_recv answers the call
//! its handle names and waits for the next; when no call is queued, it switches
//! straight back to the caller. No page is mapped, copied or looked at, and no wait
//! queue entry is made: the rendezvous state is zen-call's `End` (fixed arrays paid
//! for with the channel, one per end, under one lock), its protocol checked by
//! zen-call's loom models, and this module parks and wakes what it names.
//!
//! Hostile parties: a call needs SEND and a reply_recv RECV on the channel, checked
//! as every channel call; only the process that took a call can answer it (and only
//! once: the handle carries the record's generation); a server that never answers
//! keeps its caller waiting, as a ring server would, until the caller is killed; a
//! server process that ends fails the calls it took (`NoPeer`); a revoke, a destroy or
//! the creator's exit fails every call and ends every wait (`Denied`); a full end is
//! `Busy`, never an allocation.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use zen_abi::cap::Rights;
use zen_abi::syscall::{Error, Syscall};
use zen_call::{Failure, Msg, Request, Served};

use super::{check_full, Channel, Checked, Party, CHANNELS};
use crate::cap::Presented;
use crate::task::{self, Thread};

const _: () = assert!(
    zen_call::SLOTS == zen_abi::syscall::CALLS_IN_FLIGHT
        && zen_call::SERVERS == zen_abi::syscall::SERVERS_WAITING
        && zen_call::WORDS == zen_abi::syscall::CALL_REGS.len(),
    "the ABI's numbers are zen-call's"
);

/// A thread, as zen-call knows it: compared by identity.
#[derive(Clone)]
pub struct Caller(Arc<Thread>);

impl PartialEq for Caller {
    fn eq(&self, o: &Caller) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

/// One end's calls, as a channel keeps them.
pub type End = zen_call::End<Caller>;

/// The token went stale (a revoke, a destroy) or the channel left the table (its
/// creator ended) since it was checked. Read under the end's lock: a revoke moves the
/// generation before it takes that lock to fail the calls, so a call that finds the
/// old generation there is one the revoke will find.
fn gone(c: &Checked) -> bool {
    c.chan.generation.load(Ordering::Acquire) != c.generation
        || !c.chan.live.load(Ordering::Acquire)
}

/// call: the request `msg` to a server at the other end of the caller's end; the reply.
pub fn call(me: &dyn Party, slot: &Presented, msg: &Msg) -> Result<Msg, Error> {
    let c = check_full(me, slot, Rights::SEND, Syscall::Call as u16)?;
    crate::prof::mark(crate::prof::Step::Check);
    let end = &c.chan.calls[1 - c.end];
    let (ticket, server) = {
        let mut e = end.lock();
        if gone(&c) {
            return Err(Error::Denied);
        }
        e.call(Caller(task::current()), me.pid(), msg, c.generation)
            .map_err(|_| Error::Busy)?
    };
    let mut handoff = server.map(|s| task::Handoff::new(s.0));
    crate::prof::mark(crate::prof::Step::Wake);
    if me.killed() {
        end.lock().abandon(ticket);
        return Err(Error::InvalidArgument);
    }
    loop {
        sleep(&mut handoff);
        let mut e = end.lock();
        match e.poll_reply(ticket) {
            Some(Ok(reply)) => {
                crate::prof::mark(crate::prof::Step::Resume);
                return Ok(reply);
            }
            Some(Err(Failure::Revoked)) => return Err(Error::Denied),
            Some(Err(Failure::ServerGone)) => return Err(Error::NoPeer),
            None if me.killed() => {
                e.abandon(ticket);
                return Err(Error::InvalidArgument);
            }
            None => {}
        }
    }
}

/// reply_recv: answers the call `handle` names (0: none) with `reply`, then waits for
/// the next call to the caller's end.
pub fn reply_recv(
    me: &dyn Party,
    slot: &Presented,
    handle: u64,
    reply: &Msg,
) -> Result<Request, Error> {
    let c = check_full(me, slot, Rights::RECV, Syscall::ReplyRecv as u16)?;
    crate::prof::mark(crate::prof::Step::Check);
    let end = &c.chan.calls[c.end];
    let (pid, me_thread) = (me.pid(), Caller(task::current()));
    me.note_serving();
    let only = handle & zen_abi::syscall::REPLY_ONLY != 0;
    let handle = handle & !zen_abi::syscall::REPLY_ONLY;
    let (caller, now) = {
        let mut e = end.lock();
        if gone(&c) {
            return Err(Error::Denied);
        }
        let caller = match handle {
            0 if only => return Err(Error::InvalidArgument),
            0 => None,
            h => e.reply(pid, h, reply).map_err(|_| Error::InvalidArgument)?,
        };
        if only {
            drop(e);
            if let Some(c) = caller {
                task::unpark(&c.0);
            }
            return Ok(Request {
                handle: 0,
                from: 0,
                msg: [0; zen_call::WORDS],
            });
        }
        // A killed thread takes no request: it would end with it untold.
        if me.killed() {
            (caller, Err(zen_call::Refused::Busy))
        } else {
            (caller, e.serve(&me_thread, pid, c.generation))
        }
    };
    // Dropped unused (a request was queued, or on an error), it wakes the caller the
    // ordinary way.
    let mut handoff = caller.map(|c| task::Handoff::new(c.0));
    crate::prof::mark(crate::prof::Step::Wake);
    match now {
        Err(_) if me.killed() => return Err(Error::InvalidArgument),
        Err(_) => return Err(Error::Busy),
        Ok(Some(r)) => return Ok(r),
        Ok(None) => {}
    }
    loop {
        sleep(&mut handoff);
        let mut e = end.lock();
        // Killed: it stops waiting, under the same lock as the look below, so a
        // request handed to it meanwhile goes on to another server (or back to the
        // queue) instead of ending with it.
        if me.killed() {
            e.stop_serving(&me_thread, |t| task::unpark(&t.0));
            return Err(Error::InvalidArgument);
        }
        match e.poll_served(&me_thread, pid) {
            Served::Request(r) => {
                crate::prof::mark(crate::prof::Step::Resume);
                return Ok(r);
            }
            Served::Dropped => return Err(Error::Denied),
            Served::Waiting => {}
        }
    }
}

/// Parks the caller, running `handoff`'s thread in its place the first time (a
/// direct switch). May return spuriously, as `task::park`.
fn sleep(handoff: &mut Option<task::Handoff>) {
    crate::prof::mark(crate::prof::Step::Prepare);
    match handoff.take() {
        Some(h) => task::park_handing_off(h),
        None => task::park(),
    }
    crate::prof::mark(crate::prof::Step::Switch);
}

impl Channel {
    /// A revoke or a destroy moved the generation on: every call made or taken with
    /// an older token fails and every wait with one ends (calls made with the
    /// revoker's fresh token carry on); after the creator's exit (not `live`), all of
    /// them.
    pub(super) fn fail_calls(&self) {
        let epoch = match self.live.load(Ordering::Acquire) {
            true => self.generation.load(Ordering::Acquire),
            false => u64::MAX,
        };
        for end in &self.calls {
            end.lock().fail_before(epoch, |t| task::unpark(&t.0));
        }
    }
}

/// Process `pid` ended: calls it took and did not answer fail with `NoPeer`. Looks at
/// every channel, so it runs only for processes that ever served (`note_serving`).
pub fn server_gone(pid: u32) {
    // Slot by slot, the table's lock held only to take a reference: no list to
    // allocate (which could fail), and no end's lock under the table's.
    for i in 0..super::MAX_CHANNELS as u32 {
        let Some(c) = CHANNELS.lock().get_by_index(i).map(|(_, c)| c.clone()) else {
            continue;
        };
        for end in &c.calls {
            end.lock().fail_taken_by(pid, |t| task::unpark(&t.0));
        }
    }
}
