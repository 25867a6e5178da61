//! Loom model checks of the ring protocol: one producer thread, one consumer thread.
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
