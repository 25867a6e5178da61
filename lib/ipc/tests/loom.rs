//! Loom model checks of the ring protocol: one producer thread, one consumer thread;
//! and request/reply through `msg_call` on a pair of rings, with the kernel's hand-off
//! order (`calls_never_lose_a_wakeup`).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p zen-ipc --release --test loom`.
//!
//! Both actors run in spawned threads and the model's main thread only joins (loom
//! 0.7's DPOR can skip interleavings when the main thread races a spawned thread whose
//! first operation is a load, tokio-rs/loom#392).
//!
//! The kernel's sleep/wake is modelled as a futex: a mutex-protected check of the
//! peer's counter, then a condition-variable wait; the waker takes the same mutex, and
//! if a side sleeps, lowers its waiting flag (`kernel_woke`, as the kernel does) and
//! notifies. A lost wake-up leaves a thread waiting forever, which loom reports as a
//! deadlock, failing the test.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use zen_ipc::{
    consumer_may_sleep, kernel_woke, producer_may_sleep, Consumer, Producer, RingHeader, Side,
    Slot, Wakeup,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

struct Ring {
    hdr: RingHeader,
    slots: Vec<Slot>,
    /// The kernel's wait queue of this ring: which sides sleep (one condition variable
    /// for both: a notify wakes whichever sleeps, and each rechecks).
    lock: Mutex<[bool; 2]>,
    cv: Condvar,
}

impl Ring {
    fn new(n: usize) -> Arc<Ring> {
        Arc::new(Ring {
            hdr: RingHeader::new(),
            slots: (0..n).map(|_| Slot::new()).collect(),
            lock: Mutex::new([false; 2]),
            cv: Condvar::new(),
        })
    }

    /// `msg_recv`/`msg_wait_room` blocking: sleep once if `may_sleep` still holds.
    fn sleep(&self, side: Side, may_sleep: impl Fn() -> bool) {
        let mut g = self.lock.lock().unwrap();
        if may_sleep() {
            g[side as usize] = true;
            let mut g = self.cv.wait(g).unwrap();
            g[side as usize] = false;
        }
    }

    /// `msg_send`/`msg_release` waking the peer on `side`.
    fn wake(&self, side: Side, w: Wakeup) {
        if w == Wakeup::Needed {
            let mut g = self.lock.lock().unwrap();
            if g[side as usize] {
                g[side as usize] = false;
                kernel_woke(self.hdr.words(), side);
            }
            self.cv.notify_all();
        }
    }
}

/// A message whose two words must agree: a torn or stale read breaks the pair.
fn msg(i: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m[8..].copy_from_slice(&(!i).to_le_bytes());
    m
}

fn check(buf: &[u8; 16], len: usize, want: u64) {
    assert_eq!(len, 16);
    let a = u64::from_le_bytes(buf[..8].try_into().unwrap());
    let b = u64::from_le_bytes(buf[8..].try_into().unwrap());
    assert_eq!(
        (a, b),
        (want, !want),
        "out of order, lost, duplicated or torn"
    );
}

/// Spinning ends (no sleeping): messages arrive whole, in order, exactly once, through
/// a ring small enough to wrap.
#[test]
fn in_order_no_loss_no_duplicate() {
    const N: u64 = 3;
    model(|| {
        let r = Ring::new(2);
        let rp = Arc::clone(&r);
        let prod = thread::spawn(move || {
            let mut p = Producer::new(rp.hdr.words(), &rp.slots).unwrap();
            for i in 1..=N {
                while p.send(&msg(i)).unwrap().is_none() {
                    thread::yield_now();
                }
            }
        });
        let rc = Arc::clone(&r);
        let cons = thread::spawn(move || {
            let mut c = Consumer::new(rc.hdr.words(), &rc.slots).unwrap();
            let mut buf = [0u8; 16];
            for i in 1..=N {
                let len = loop {
                    if let Some((len, _)) = c.recv(&mut buf).unwrap() {
                        break len;
                    }
                    thread::yield_now();
                };
                check(&buf, len, i);
            }
            assert!(c.peek().unwrap().is_none(), "a message too many");
        });
        prod.join().unwrap();
        cons.join().unwrap();
    });
}

/// Both ends block through the wake-up protocol on a one-slot ring, so the producer
/// waits for space and the consumer for data: no wake-up is ever lost (no deadlock),
/// and messages still arrive in order.
#[test]
fn wakeups_never_lost() {
    const N: u64 = 3;
    model(|| {
        let r = Ring::new(1);
        let rp = Arc::clone(&r);
        let prod = thread::spawn(move || {
            let mut p = Producer::new(rp.hdr.words(), &rp.slots).unwrap();
            for i in 1..=N {
                p.wait_writable(|t| {
                    rp.sleep(Side::Producer, || producer_may_sleep(rp.hdr.words(), t))
                })
                .unwrap();
                let w = p.send(&msg(i)).unwrap().expect("writable after wait");
                rp.wake(Side::Consumer, w);
            }
        });
        let rc = Arc::clone(&r);
        let cons = thread::spawn(move || {
            let mut c = Consumer::new(rc.hdr.words(), &rc.slots).unwrap();
            let mut buf = [0u8; 16];
            for i in 1..=N {
                c.wait_readable(|h| {
                    rc.sleep(Side::Consumer, || consumer_may_sleep(rc.hdr.words(), h))
                })
                .unwrap();
                let (len, w) = c.recv(&mut buf).unwrap().expect("readable after wait");
                check(&buf, len, i);
                rc.wake(Side::Producer, w);
            }
        });
        prod.join().unwrap();
        cons.join().unwrap();
    });
}

/// The kernel side of `msg_call` on the ring pair (`tx` we produce, `rx` we consume),
/// as the kernel runs it: the consumer of `tx` is taken out of its queue if it sleeps
/// (whatever its flag said; `wake_all_handing_off`) but not yet run; then we register
/// on `rx` if its head still equals `seen`; only then does the taken peer run (the
/// direct switch, or its wake-up), and we sleep. A peer must not be able to answer
/// before we are registered and be missed, and must never be left taken but not run.
fn kernel_call(tx: &Ring, rx: &Ring, seen: u32) {
    let taken = {
        let mut g = tx.lock.lock().unwrap();
        let t = g[Side::Consumer as usize];
        if t {
            g[Side::Consumer as usize] = false;
            kernel_woke(tx.hdr.words(), Side::Consumer);
        }
        t
    };
    let mut g = rx.lock.lock().unwrap();
    let sleep = consumer_may_sleep(rx.hdr.words(), seen);
    if sleep {
        g[Side::Consumer as usize] = true;
    }
    if taken {
        // The hand-off: the peer runs now (it takes tx's lock to look at its flag).
        let _peer = tx.lock.lock().unwrap();
        tx.cv.notify_all();
    }
    if sleep {
        while g[Side::Consumer as usize] {
            g = rx.cv.wait(g).unwrap();
        }
    }
}

/// `msg_recv` for `call`'s model: sleeps until a waker takes us out of the queue.
fn kernel_recv(r: &Ring, seen: u32) {
    let mut g = r.lock.lock().unwrap();
    if consumer_may_sleep(r.hdr.words(), seen) {
        g[Side::Consumer as usize] = true;
        while g[Side::Consumer as usize] {
            g = r.cv.wait(g).unwrap();
        }
    }
}

/// zen-std's `exchange`: publish `out` on `tx`, then the answer from `rx` into `buf`,
/// trapping once (`kernel_call`) for the wake and the wait when it must sleep.
fn exchange(
    p: &mut Producer<'_>,
    c: &mut Consumer<'_>,
    tx: &Ring,
    rx: &Ring,
    out: &[u8; 16],
) -> [u8; 16] {
    let mut wake = Some(p.send(out).unwrap().expect("room: strict alternation"));
    let mut buf = [0u8; 16];
    loop {
        if let Some((len, _)) = c.recv(&mut buf).unwrap() {
            assert_eq!(len, 16);
            if wake == Some(Wakeup::Needed) {
                tx.wake(Side::Consumer, Wakeup::Needed);
            }
            return buf;
        }
        if let zen_ipc::Wait::Sleep(head) = c.prepare_wait().unwrap() {
            match wake.take() {
                Some(_) => kernel_call(tx, rx, head),
                None => kernel_recv(rx, head),
            }
            c.end_wait();
        }
    }
}

/// Request and reply through `msg_call` on both sides (the client's call, the server's
/// reply-and-wait), with the kernel's hand-off order: every request is answered once,
/// in order, and no wake-up is lost (a lost one leaves both asleep: a deadlock).
#[test]
fn calls_never_lose_a_wakeup() {
    const N: u64 = 2;
    model(|| {
        let (req, rep) = (Ring::new(1), Ring::new(1));
        let (rq, rp) = (Arc::clone(&req), Arc::clone(&rep));
        let client = thread::spawn(move || {
            let mut p = Producer::new(rq.hdr.words(), &rq.slots).unwrap();
            let mut c = Consumer::new(rp.hdr.words(), &rp.slots).unwrap();
            for i in 1..=N {
                let answer = exchange(&mut p, &mut c, &rq, &rp, &msg(i));
                check(&answer, 16, i + 100);
            }
        });
        let (rq, rp) = (Arc::clone(&req), Arc::clone(&rep));
        let server = thread::spawn(move || {
            let mut c = Consumer::new(rq.hdr.words(), &rq.slots).unwrap();
            let mut p = Producer::new(rp.hdr.words(), &rp.slots).unwrap();
            let mut buf = [0u8; 16];
            c.wait_readable(|h| kernel_recv(&rq, h)).unwrap();
            let (len, _) = c.recv(&mut buf).unwrap().expect("a request");
            check(&buf, len, 1);
            for i in 1..N {
                // Reply to request i and wait for request i + 1 in one call.
                let next = exchange(&mut p, &mut c, &rp, &rq, &msg(i + 100));
                check(&next, 16, i + 1);
            }
            // The last reply is a plain send: no request follows.
            let w = p.send(&msg(N + 100)).unwrap().expect("room");
            rp.wake(Side::Consumer, w);
        });
        client.join().unwrap();
        server.join().unwrap();
    });
}
