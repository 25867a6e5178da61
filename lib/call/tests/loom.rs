//! Loom model checks of the register-call rendezvous, driven the way the kernel drives
//! it (kernel/src/ipc/call.rs): each `End` under one lock; a caller registers its call
//! and parks until its answer; a server registers and parks until a request is handed
//! to it; wakers unpark after they let go of the lock. loom's park/unpark keep a
//! wake-up that comes before the park, as the kernel's `wake_pending` does, and may
//! return spuriously, so each side loops on its condition as the kernel does. A lost
//! wake-up leaves a thread parked for ever, which loom reports as a deadlock. A revoke
//! is modelled as a flag set in the same critical section as `fail_all`; the kernel
//! moves the generation (an atomic) just before it takes the end's lock to fail the
//! calls, and callers and servers read it under that lock before they register, so in
//! both nobody registers on a revoked end unseen.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p zen-call --release --test loom`.
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use zen_call::{End, Failure, Msg, Served, WORDS};

#[derive(Clone, Debug)]
struct Th(thread::Thread);

impl PartialEq for Th {
    fn eq(&self, o: &Th) -> bool {
        self.0.id() == o.0.id()
    }
}

fn me() -> Th {
    Th(thread::current())
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// One end as the kernel keeps it: the rendezvous and whether the channel's
/// generation has moved past the tokens these threads checked.
#[derive(Default)]
struct Point {
    end: End<Th>,
    revoked: bool,
}

type Shared = Arc<Mutex<Point>>;

fn new_point() -> Shared {
    Arc::new(Mutex::new(Point::default()))
}

/// The kernel's revoke: the generation moves on, every wait ends.
fn revoke(p: &Mutex<Point>) {
    let mut woken = Vec::new();
    {
        let mut g = p.lock().unwrap();
        g.revoked = true;
        g.end.fail_all(|t| woken.push(t));
    }
    for t in woken {
        t.0.unpark();
    }
}

fn m(v: u64) -> Msg {
    [v; WORDS]
}

/// The kernel's `call`: the answer, or why there is none.
fn call(p: &Mutex<Point>, pid: u32, msg: &Msg) -> Result<Msg, Failure> {
    let (ticket, server) = {
        let mut g = p.lock().unwrap();
        if g.revoked {
            return Err(Failure::Revoked);
        }
        g.end.call(me(), pid, msg, 1).expect("room")
    };
    if let Some(s) = server {
        s.0.unpark();
    }
    loop {
        thread::park();
        if let Some(r) = p.lock().unwrap().end.poll_reply(ticket) {
            return r;
        }
    }
}

/// The kernel's `reply_recv`: answers `handle` (0: nothing), then waits for a
/// request; `None` when the end was reset.
fn reply_recv(p: &Mutex<Point>, pid: u32, handle: u64, reply: &Msg) -> Option<(u64, Msg)> {
    let mut g = p.lock().unwrap();
    if g.revoked {
        return None;
    }
    let caller = if handle != 0 {
        g.end.reply(pid, handle, reply).expect("a held call")
    } else {
        None
    };
    let now = g.end.serve(&me(), pid, 1).expect("a server slot");
    drop(g);
    if let Some(c) = caller {
        c.0.unpark();
    }
    if let Some(r) = now {
        return Some((r.handle, r.msg));
    }
    loop {
        thread::park();
        match p.lock().unwrap().end.poll_served(&me(), pid) {
            Served::Request(r) => return Some((r.handle, r.msg)),
            Served::Dropped => return None,
            Served::Waiting => {}
        }
    }
}

/// Two callers, one server answering each request with its word + 100: each caller
/// gets its own answer, and nobody sleeps for ever.
#[test]
fn calls_are_answered_and_no_wakeup_is_lost() {
    model(|| {
        let end = new_point();
        let clients: Vec<_> = (1..=2u64)
            .map(|i| {
                let e = end.clone();
                thread::spawn(move || {
                    assert_eq!(call(&e, 1, &m(i)), Ok(m(i + 100)));
                })
            })
            .collect();
        let e = end.clone();
        let server = thread::spawn(move || {
            let (mut h, mut msg) = reply_recv(&e, 2, 0, &m(0)).expect("a request");
            for _ in 0..1 {
                (h, msg) = reply_recv(&e, 2, h, &m(msg[0] + 100)).expect("a request");
            }
            // The last reply, with nothing to wait for after it.
            let c = e.lock().unwrap().end.reply(2, h, &m(msg[0] + 100)).unwrap();
            if let Some(c) = c {
                c.0.unpark();
            }
        });
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    });
}

/// A revoke racing a call and a waiting server: the call ends (answered or revoked),
/// the server ends (a request or dropped), nobody sleeps for ever.
#[test]
fn a_revoke_ends_every_wait() {
    model(|| {
        let end = new_point();
        let e = end.clone();
        let client = thread::spawn(move || {
            let r = call(&e, 1, &m(1));
            assert!(r == Ok(m(101)) || r == Err(Failure::Revoked), "{r:?}");
        });
        let e = end.clone();
        let server = thread::spawn(move || {
            if let Some((h, msg)) = reply_recv(&e, 2, 0, &m(0)) {
                let c = e.lock().unwrap().end.reply(2, h, &m(msg[0] + 100));
                // The revoke may have come first: the handle then names nothing.
                if let Ok(Some(c)) = c {
                    c.0.unpark();
                }
            }
        });
        let e = end.clone();
        let revoker = thread::spawn(move || revoke(&e));
        client.join().unwrap();
        revoker.join().unwrap();
        server.join().unwrap();
    });
}

/// A server that stops (is killed) after a request was handed to it gives the
/// request back; a second server answers it.
#[test]
fn a_stopped_server_loses_no_request() {
    model(|| {
        let end = new_point();
        let e = end.clone();
        let client = thread::spawn(move || {
            assert_eq!(call(&e, 1, &m(1)), Ok(m(101)));
        });
        let e = end.clone();
        let quitter = thread::spawn(move || {
            // Registers and sleeps (or takes a queued request)...
            let r = e.lock().unwrap().end.serve(&me(), 2, 1).expect("a slot");
            if let Some(r) = r {
                // It took the request outright: it answers before it goes.
                let c = e.lock().unwrap().end.reply(2, r.handle, &m(r.msg[0] + 100));
                if let Ok(Some(c)) = c {
                    c.0.unpark();
                }
                return;
            }
            // ...then is killed: it stops, in a critical section of its own, so a
            // call may have been handed to it in between.
            let mut woken = Vec::new();
            e.lock().unwrap().end.stop_serving(&me(), |t| woken.push(t));
            for t in woken {
                t.0.unpark();
            }
        });
        let e = end.clone();
        let server = thread::spawn(move || {
            // Serves until it has answered once or the client is done.
            let mut g = e.lock().unwrap();
            if g.revoked {
                return;
            }
            let r = g.end.serve(&me(), 2, 1).expect("a slot");
            drop(g);
            let r = match r {
                Some(r) => Some(r),
                None => loop {
                    thread::park();
                    match e.lock().unwrap().end.poll_served(&me(), 2) {
                        Served::Request(r) => break Some(r),
                        Served::Dropped => break None,
                        Served::Waiting => {}
                    }
                },
            };
            if let Some(r) = r {
                if let Ok(Some(c)) = e.lock().unwrap().end.reply(2, r.handle, &m(r.msg[0] + 100)) {
                    c.0.unpark();
                }
            }
        });
        client.join().unwrap();
        quitter.join().unwrap();
        // The quitter may have answered: the server then still waits; the channel's
        // end (a revoke) ends it.
        revoke(&end);
        server.join().unwrap();
    });
}
