//! Property tests: the ring against a `VecDeque` model, and a hostile peer scribbling
//! on the shared pages between operations.
#![cfg(not(loom))]

use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use zen_ipc::{
    pending, Consumer, PageGrant, Producer, RingError, RingHeader, Slot, Wakeup, GRANT_SIZE,
    SLOT_PAYLOAD,
};

#[derive(Clone, Debug)]
enum Op {
    /// Send a message of this many bytes (filled from the seed), with a grant or not.
    Send {
        len: usize,
        seed: u8,
        grant: bool,
    },
    Recv,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..=SLOT_PAYLOAD, any::<u8>(), any::<bool>()).prop_map(|(len, seed, grant)| Op::Send {
            len,
            seed,
            grant
        }),
        Just(Op::Recv),
    ]
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(i as u8).rotate_left(3))
        .collect()
}

type Msg = (Vec<u8>, Option<PageGrant>);

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any sequence of sends and receives behaves like a bounded FIFO queue of byte
    /// strings: same acceptance, same contents, same order, from any starting counter
    /// (so wrap-around at 2^32 is covered).
    #[test]
    fn ring_is_a_bounded_fifo(log2 in 0u32..4, start: u32, ops in prop::collection::vec(op(), 0..200)) {
        let n = 1usize << log2;
        let h = RingHeader::new();
        let s: Vec<Slot> = (0..n).map(|_| Slot::new()).collect();
        h.producer.head.store(start, Relaxed);
        h.consumer.tail.store(start, Relaxed);
        let mut p = Producer::new(h.words(), &s).unwrap();
        let mut c = Consumer::new(h.words(), &s).unwrap();
        let mut model: VecDeque<Msg> = VecDeque::new();
        for op in ops {
            match op {
                Op::Send { len, seed, grant } => {
                    let data = payload(len, seed);
                    let g = (grant && len >= GRANT_SIZE)
                        .then(|| PageGrant { id: u64::from(seed) + 1, len: len as u64 * 4096, rights: 1 });
                    match p.reserve().unwrap() {
                        None => prop_assert_eq!(model.len(), n, "refused with room"),
                        Some(mut slot) => {
                            prop_assert!(model.len() < n, "accepted when full");
                            let mut expect = data.clone();
                            if let Some(g) = g {
                                slot.set_grant(g);
                                slot.write(GRANT_SIZE, &data[GRANT_SIZE..]).unwrap();
                                expect[..8].copy_from_slice(&g.id.to_le_bytes());
                                expect[8..16].copy_from_slice(&g.len.to_le_bytes());
                                expect[16..24].copy_from_slice(&g.rights.to_le_bytes());
                            } else {
                                slot.write(0, &data).unwrap();
                            }
                            prop_assert_eq!(slot.publish(), Wakeup::NotNeeded);
                            model.push_back((expect, g));
                        }
                    }
                }
                Op::Recv => match c.peek().unwrap() {
                    None => prop_assert!(model.is_empty(), "missed a message"),
                    Some(m) => {
                        let (want, g) = model.pop_front().expect("message out of nowhere");
                        let mut got = vec![0u8; SLOT_PAYLOAD + 8];
                        let len = m.read(0, &mut got);
                        prop_assert_eq!(&got[..len], &want[..]);
                        prop_assert_eq!(m.grant(), Ok(g));
                        prop_assert_eq!(m.release(), Wakeup::NotNeeded);
                    }
                },
            }
            prop_assert_eq!(pending(h.words(), n), Ok(model.len() as u32));
            prop_assert_eq!(c.available(), Ok(model.len() as u32));
            prop_assert_eq!(p.used(), Ok(model.len() as u32));
        }
    }

    /// A hostile peer writes arbitrary values into any shared word between our
    /// operations. Nothing panics, nothing reads out of bounds, and whatever we receive
    /// is within the slot's payload.
    #[test]
    fn hostile_peer_never_breaks_us(
        ops in prop::collection::vec((op(), prop::option::of((0usize..8, any::<u32>()))), 0..150),
    ) {
        let n = 4;
        let h = RingHeader::new();
        let s: Vec<Slot> = (0..n).map(|_| Slot::new()).collect();
        let mut p = Producer::new(h.words(), &s).unwrap();
        let mut c = Consumer::new(h.words(), &s).unwrap();
        for (op, scribble) in ops {
            if let Some((what, v)) = scribble {
                let slot = &s[v as usize % n];
                match what {
                    0 => h.producer.head.store(v, Relaxed),
                    1 => h.consumer.tail.store(v, Relaxed),
                    2 => h.producer.producer_waiting.store(v, Relaxed),
                    3 => h.consumer.consumer_waiting.store(v, Relaxed),
                    4 => slot.len.store(v, Relaxed),
                    5 => slot.flags.store(v & 0x3, Relaxed),
                    6 => slot.len.store(v % 200, Relaxed),
                    _ => slot.data[v as usize % 15].store(u64::from(v) << 32 | u64::from(v), Relaxed),
                }
            }
            match op {
                Op::Send { len, seed, grant } => match p.reserve() {
                    Err(e) => prop_assert_eq!(e, RingError::Corrupt),
                    Ok(None) => {}
                    Ok(Some(mut slot)) => {
                        if grant {
                            slot.set_grant(PageGrant { id: 1, len: 1, rights: 1 });
                        }
                        slot.write(0, &payload(len, seed)).unwrap();
                        let _ = slot.publish();
                    }
                },
                Op::Recv => match c.peek() {
                    Err(RingError::BadMessage) => {
                        prop_assert!(matches!(c.discard(), Ok(Some(_))));
                    }
                    Err(e) => prop_assert_eq!(e, RingError::Corrupt),
                    Ok(None) => {}
                    Ok(Some(m)) => {
                        prop_assert!(m.len() <= SLOT_PAYLOAD);
                        let mut out = [0u8; 256];
                        prop_assert_eq!(m.read(0, &mut out), m.len());
                        let _ = m.grant();
                        let _ = m.word(usize::MAX);
                        let _ = m.release();
                    }
                },
            }
            let _ = c.prepare_wait();
            let _ = p.prepare_wait();
            let _ = pending(h.words(), n);
        }
    }
}
