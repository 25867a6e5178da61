//! Loom model checks of the registry's publication protocol.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p zen-edge --release --test loom`.
//!
//! Every actor, the reader included, runs in a spawned thread and the model's main
//! thread only joins: loom 0.7's DPOR skips interleavings when the main thread races a
//! spawned thread whose first operation is a load (tokio-rs/loom#392), and the
//! writers' first operation is exactly such a load.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use zen_edge::{EdgeKind, EdgeRecord, EdgeRegistry};

fn rec(cpu: u8, payload: u32) -> EdgeRecord {
    // stamp mirrors payload so a reader can tell a torn record.
    EdgeRecord {
        kind: EdgeKind::PageFault,
        cpu,
        detail: cpu as u16,
        payload,
        stamp: !payload,
    }
}

fn check(r: &EdgeRecord) {
    assert_eq!({ r.detail }, r.cpu as u16);
    assert_eq!({ r.stamp }, !r.payload);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // Bounded so the run takes seconds; these models fail within this bound when the
    // bug they guard against is put back (checked with a `Relaxed` publication).
    b.preemption_bound = Some(4);
    b.check(f);
}

/// Two writers and a concurrent reader: the reader only ever sees whole records, and
/// afterwards everything written is there exactly once.
#[test]
fn writers_and_reader() {
    model(|| {
        let reg = Arc::new(EdgeRegistry::<2>::new());
        let writers: Vec<_> = (0..2u8)
            .map(|cpu| {
                let reg = Arc::clone(&reg);
                thread::spawn(move || assert!(reg.record(rec(cpu, 10 + cpu as u32))))
            })
            .collect();
        let reader = {
            let reg = Arc::clone(&reg);
            thread::spawn(move || {
                let mut seen = 0;
                for r in reg.iter() {
                    check(&r);
                    seen += 1;
                }
                seen
            })
        };
        assert!(reader.join().unwrap() <= 2);
        for h in writers {
            h.join().unwrap();
        }
        let mut payloads: Vec<u32> = reg.iter().map(|r| r.payload).collect();
        payloads.sort_unstable();
        assert_eq!(payloads, [10, 11]);
        assert_eq!(reg.dropped(), 0);
    });
}

/// More writers than slots: exactly one is kept per slot and the rest are counted,
/// while a reader never sees a half-written record.
#[test]
fn overflow_counts_every_drop() {
    model(|| {
        let reg = Arc::new(EdgeRegistry::<1>::new());
        let writers: Vec<_> = (0..2u8)
            .map(|cpu| {
                let reg = Arc::clone(&reg);
                thread::spawn(move || reg.record(rec(cpu, cpu as u32)))
            })
            .collect();
        let reader = {
            let reg = Arc::clone(&reg);
            thread::spawn(move || reg.iter().for_each(|r| check(&r)))
        };
        reader.join().unwrap();
        let kept = writers
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&k| k)
            .count();
        assert_eq!(kept, 1);
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.dropped(), 1);
    });
}
