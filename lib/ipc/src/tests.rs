//! Unit tests: basic traffic, wrap-around, grants, the wake-up flags, and every way a
//! hostile peer can corrupt the shared pages.

use crate::*;
use core::sync::atomic::Ordering::Relaxed;
use std::vec::Vec;
use zen_abi::ipc::{ChannelShared, RING_SLOTS, SLOT_FLAG_GRANT, WAITING};

fn slots(n: usize) -> Vec<Slot> {
    (0..n).map(|_| Slot::new()).collect()
}

#[test]
fn geometry_is_checked() {
    let h = RingHeader::new();
    assert_eq!(
        Producer::new(h.words(), &[]).err(),
        Some(RingError::Geometry)
    );
    assert_eq!(
        Consumer::new(h.words(), &slots(3)).err(),
        Some(RingError::Geometry)
    );
    assert!(Producer::new(h.words(), &slots(1)).is_ok());
    assert_eq!(pending(h.words(), 6), Err(RingError::Geometry));
}

#[test]
fn send_recv_through_the_standard_channel_layout() {
    // Both ends over one ChannelShared, as the two processes will see it.
    let ch = std::boxed::Box::new(ChannelShared::new());
    let words = |r: usize| RingWords {
        producer: &ch.rings[r].producer.words,
        consumer: &ch.rings[r].consumer.words,
    };
    let (h0, s0) = (words(0), &ch.rings[0].slots.slots[..]);
    let (h1, s1) = (words(1), &ch.rings[1].slots.slots[..]);
    let mut a_tx = Producer::new(h0, s0).unwrap();
    let mut b_rx = Consumer::new(h0, s0).unwrap();
    let mut b_tx = Producer::new(h1, s1).unwrap();
    let mut a_rx = Consumer::new(h1, s1).unwrap();
    assert_eq!(a_tx.send(b"ping"), Ok(Some(Wakeup::NotNeeded)));
    let mut buf = [0u8; SLOT_PAYLOAD];
    let (n, w) = b_rx.recv(&mut buf).unwrap().unwrap();
    assert_eq!((&buf[..n], w), (&b"ping"[..], Wakeup::NotNeeded));
    assert_eq!(b_tx.send(b"pong!"), Ok(Some(Wakeup::NotNeeded)));
    assert_eq!(a_rx.recv(&mut buf).unwrap().unwrap().0, 5);
    assert_eq!(&buf[..5], b"pong!");
    assert_eq!(pending(h0, RING_SLOTS), Ok(0));
}

#[test]
fn fills_then_refuses_then_drains_in_order() {
    let (h, s) = (RingHeader::new(), slots(4));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    for i in 0..4u8 {
        assert!(p.send(&[i; 9]).unwrap().is_some());
    }
    assert!(p.reserve().unwrap().is_none(), "full ring has no slot");
    assert_eq!(pending(h.words(), 4), Ok(4));
    let mut buf = [0u8; 16];
    for i in 0..4u8 {
        assert_eq!(c.recv(&mut buf).unwrap().unwrap().0, 9);
        assert_eq!(buf[..9], [i; 9]);
    }
    assert!(c.peek().unwrap().is_none());
}

#[test]
fn counters_wrap_past_u32_max() {
    let (h, s) = (RingHeader::new(), slots(2));
    h.producer.head.store(u32::MAX - 2, Relaxed);
    h.consumer.tail.store(u32::MAX - 2, Relaxed);
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    let mut buf = [0u8; 8];
    for i in 0..10u64 {
        assert!(p.send(&i.to_le_bytes()).unwrap().is_some());
        assert!(c.recv(&mut buf).unwrap().is_some());
        assert_eq!(u64::from_le_bytes(buf), i);
    }
    assert_eq!(h.producer.head.load(Relaxed), 7);
}

#[test]
fn unpublished_and_unreleased_slots_leave_the_ring_unchanged() {
    let (h, s) = (RingHeader::new(), slots(2));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    {
        // Reserved, written, never published: the slot view goes out of scope.
        let mut r = p.reserve().unwrap().unwrap();
        r.write(0, b"draft").unwrap();
    }
    assert!(c.peek().unwrap().is_none());
    p.send(b"real").unwrap();
    assert_eq!(c.peek().unwrap().unwrap().len(), 4);
    // Peeked but not released: still there.
    assert_eq!(c.peek().unwrap().unwrap().len(), 4);
    assert_eq!(c.available(), Ok(1));
}

#[test]
fn writes_at_offsets_and_words_in_place() {
    let (h, s) = (RingHeader::new(), slots(1));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    let mut r = p.reserve().unwrap().unwrap();
    r.write(3, b"abcdefghij").unwrap(); // straddles words 0 and 1
    r.write(0, b"xyz").unwrap();
    assert_eq!(r.write(SLOT_PAYLOAD - 1, b"ab"), Err(RingError::TooLarge));
    assert_eq!(r.write(usize::MAX, b"a"), Err(RingError::TooLarge));
    r.words()[14].store(0x1122_3344_5566_7788, Relaxed);
    r.set_len(SLOT_PAYLOAD).unwrap();
    assert_eq!(r.set_len(SLOT_PAYLOAD + 1), Err(RingError::TooLarge));
    let _ = r.publish();
    let m = c.peek().unwrap().unwrap();
    let mut out = [0u8; 13];
    assert_eq!(m.read(0, &mut out), 13);
    assert_eq!(&out, b"xyzabcdefghij");
    assert_eq!(m.word(14), Some(0x1122_3344_5566_7788));
    assert_eq!(m.word(15), None);
    // Reads clip to the message.
    assert_eq!(m.read(SLOT_PAYLOAD - 2, &mut out), 2);
    assert_eq!(m.read(usize::MAX, &mut out), 0);
}

#[test]
fn page_grant_round_trip_and_checks() {
    let (h, s) = (RingHeader::new(), slots(2));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    let g = PageGrant {
        id: 9,
        len: 65536,
        rights: zen_abi::cap::Rights::READ.bits(),
    };
    let mut r = p.reserve().unwrap().unwrap();
    r.set_grant(g);
    r.write(GRANT_SIZE, b"hdr").unwrap();
    assert_eq!(r.set_len(GRANT_SIZE - 1), Err(RingError::TooLarge));
    let _ = r.publish();
    let m = c.peek().unwrap().unwrap();
    assert_eq!(m.len(), GRANT_SIZE + 3);
    assert_eq!(m.grant(), Ok(Some(g)));
    let _ = m.release();
    // A plain message carries none.
    p.send(b"x").unwrap();
    assert_eq!(c.peek().unwrap().unwrap().grant(), Ok(None));
    // Bad grants from a hostile sender: zero id, zero length, rights beyond mapping.
    for bad in [
        PageGrant { id: 0, ..g },
        PageGrant { len: 0, ..g },
        PageGrant {
            rights: zen_abi::cap::Rights::GRANT.bits(),
            ..g
        },
    ] {
        let _ = c.discard();
        let mut r = p.reserve().unwrap().unwrap();
        r.set_grant(bad);
        let _ = r.publish();
        assert_eq!(
            c.peek().unwrap().unwrap().grant(),
            Err(RingError::BadMessage)
        );
    }
}

#[test]
fn wakeup_needed_only_when_peer_waits() {
    let (h, s) = (RingHeader::new(), slots(1));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    // Empty ring: the consumer must sleep, expecting head 0.
    assert_eq!(c.prepare_wait(), Ok(Wait::Sleep(0)));
    assert_eq!(h.consumer.consumer_waiting.load(Relaxed), WAITING);
    assert!(consumer_may_sleep(h.words(), 0));
    assert_eq!(p.send(b"a"), Ok(Some(Wakeup::Needed)));
    assert!(
        !consumer_may_sleep(h.words(), 0),
        "kernel must not put it to sleep now"
    );
    c.end_wait();
    // Full ring: the producer must sleep, expecting tail 0.
    assert_eq!(p.prepare_wait(), Ok(Wait::Sleep(0)));
    assert!(producer_may_sleep(h.words(), 0));
    assert_eq!(c.recv(&mut [0; 1]).unwrap().unwrap().1, Wakeup::Needed);
    assert!(!producer_may_sleep(h.words(), 0));
    p.end_wait();
    // Nobody waits: no system call.
    assert_eq!(p.send(b"b"), Ok(Some(Wakeup::NotNeeded)));
    assert_eq!(c.recv(&mut [0; 1]).unwrap().unwrap().1, Wakeup::NotNeeded);
    // A ring that is ready says so and leaves no flag behind.
    p.send(b"c").unwrap();
    assert_eq!(c.prepare_wait(), Ok(Wait::Ready));
    assert_eq!(h.consumer.consumer_waiting.load(Relaxed), 0);
    assert_eq!(p.prepare_wait(), Ok(Wait::Sleep(2)));
    p.end_wait();
    let _ = c.discard();
    assert_eq!(p.prepare_wait(), Ok(Wait::Ready));
}

#[test]
fn wait_loops_sleep_only_when_told() {
    let (h, s) = (RingHeader::new(), slots(1));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    p.send(b"a").unwrap();
    // Data is there: no sleep.
    c.wait_readable(|_| panic!("slept with data")).unwrap();
    // Ring is full: the producer sleeps; the "kernel" lets the consumer release.
    let mut slept = 0;
    p.wait_writable(|expected| {
        slept += 1;
        assert_eq!(expected, 0);
        assert_eq!(c.discard(), Ok(Some(Wakeup::Needed)));
    })
    .unwrap();
    assert_eq!(slept, 1);
    assert_eq!(h.producer.producer_waiting.load(Relaxed), 0);
}

// ---- a hostile peer ----

#[test]
fn consumer_refuses_impossible_head() {
    let (h, s) = (RingHeader::new(), slots(4));
    let mut c = Consumer::new(h.words(), &s).unwrap();
    for bad in [5, u32::MAX, 1 << 31] {
        h.producer.head.store(bad, Relaxed);
        assert_eq!(c.peek().err(), Some(RingError::Corrupt), "head {bad}");
        assert_eq!(c.available(), Err(RingError::Corrupt));
        assert_eq!(c.prepare_wait(), Err(RingError::Corrupt));
        assert_eq!(c.discard(), Err(RingError::Corrupt));
        assert_eq!(c.wait_readable(|_| {}), Err(RingError::Corrupt));
        assert_eq!(pending(h.words(), 4), Err(RingError::Corrupt));
    }
    // A full ring (head 4 ahead) is fine.
    h.producer.head.store(4, Relaxed);
    assert_eq!(c.available(), Ok(4));
}

#[test]
fn producer_refuses_impossible_tail() {
    let (h, s) = (RingHeader::new(), slots(4));
    let mut p = Producer::new(h.words(), &s).unwrap();
    for bad in [1, 7, u32::MAX - 4] {
        // tail ahead of our head, or more than a ring behind.
        h.consumer.tail.store(bad, Relaxed);
        assert_eq!(p.reserve().err(), Some(RingError::Corrupt), "tail {bad}");
        assert_eq!(p.send(b"x"), Err(RingError::Corrupt));
        assert_eq!(p.prepare_wait(), Err(RingError::Corrupt));
        assert_eq!(p.wait_writable(|_| {}), Err(RingError::Corrupt));
    }
}

#[test]
fn own_counter_is_never_read_back() {
    // The consumer scribbles on head; the producer carries on from its private copy.
    let (h, s) = (RingHeader::new(), slots(4));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    p.send(b"1").unwrap();
    h.producer.head.store(12345, Relaxed);
    h.consumer.tail.store(0xdead, Relaxed);
    h.consumer.tail.store(0, Relaxed); // ... and puts tail back
    p.send(b"2").unwrap();
    assert_eq!(h.producer.head.load(Relaxed), 2);
    // Likewise the producer scribbling on tail does not move the consumer.
    h.consumer.tail.store(1, Relaxed);
    let mut b = [0u8; 1];
    assert_eq!(c.recv(&mut b).unwrap().unwrap().0, 1);
    assert_eq!(&b, b"1");
    assert_eq!(h.consumer.tail.load(Relaxed), 1);
}

#[test]
fn bad_slot_headers_are_bad_messages_and_skippable() {
    let (h, s) = (RingHeader::new(), slots(2));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    let cases: [(u32, u32); 4] = [
        (SLOT_PAYLOAD as u32 + 1, 0),             // too long
        (u32::MAX, 0),                            // absurdly long
        (4, 0x80),                                // unknown flag
        (GRANT_SIZE as u32 - 1, SLOT_FLAG_GRANT), // grant that does not fit
    ];
    for (len, flags) in cases {
        p.send(b"ok").unwrap();
        // The hostile producer rewrites the published slot header.
        let i = (h.consumer.tail.load(Relaxed) % 2) as usize;
        s[i].len.store(len, Relaxed);
        s[i].flags.store(flags, Relaxed);
        assert_eq!(
            c.peek().err(),
            Some(RingError::BadMessage),
            "{len} {flags:#x}"
        );
        assert_eq!(c.discard(), Ok(Some(Wakeup::NotNeeded)));
        assert!(c.peek().unwrap().is_none());
    }
}

#[test]
fn slot_rewritten_after_peek_keeps_checked_length() {
    let (h, s) = (RingHeader::new(), slots(1));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    p.send(b"four").unwrap();
    let m = c.peek().unwrap().unwrap();
    // Double fetch attempt: len grows after the check.
    s[0].len.store(u32::MAX, Relaxed);
    let mut big = [0u8; 200];
    assert_eq!(m.len(), 4);
    assert_eq!(m.read(0, &mut big), 4);
    assert_eq!(m.word(1), None);
}

#[test]
fn shared_words_copy_bytes_at_any_offset_and_refuse_overruns() {
    use crate::shm::AtomicU64;
    let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
    let data: Vec<u8> = (1..=21).collect();
    write_words(&words, 3, &data).unwrap();
    let mut out = [0u8; 32];
    assert_eq!(read_words(&words, 0, &mut out), 32);
    assert_eq!(&out[..3], &[0, 0, 0]);
    assert_eq!(&out[3..24], &data[..]);
    assert_eq!(&out[24..], &[0; 8]);
    // Little-endian in words, as in a slot.
    assert_eq!(
        words[0].load(Relaxed),
        u64::from_le_bytes([0, 0, 0, 1, 2, 3, 4, 5])
    );
    // Overruns are refused whole, reads are clipped.
    assert_eq!(write_words(&words, 30, &[9; 3]), Err(RingError::TooLarge));
    assert_eq!(
        write_words(&words, usize::MAX, &[9]),
        Err(RingError::TooLarge)
    );
    assert_eq!(words[3].load(Relaxed), 0);
    assert_eq!(read_words(&words, 30, &mut out), 2);
    assert_eq!(read_words(&words, 99, &mut out), 0);
    // Past the end at a word boundary (the whole-word path): nothing, no panic.
    assert_eq!(read_words(&words, 32, &mut out), 0);
    assert_eq!(read_words(&words, 40, &mut out), 0);
    assert_eq!(read_words(&words, 1 << 20, &mut out), 0);
}

#[test]
fn a_woken_sleeper_costs_the_peer_no_more_system_calls() {
    let (h, s) = (RingHeader::new(), slots(4));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    assert_eq!(c.prepare_wait(), Ok(Wait::Sleep(0)));
    assert_eq!(p.send(b"a"), Ok(Some(Wakeup::Needed)));
    // The kernel wakes the consumer and lowers its flag for it: the next messages,
    // sent before the consumer runs, need no wake-up.
    kernel_woke(h.words(), Side::Consumer);
    assert_eq!(p.send(b"b"), Ok(Some(Wakeup::NotNeeded)));
    assert_eq!(p.send(b"c"), Ok(Some(Wakeup::NotNeeded)));
    // The same for a producer woken by a release; the consumer's flag is untouched.
    p.send(b"d").unwrap();
    assert_eq!(p.prepare_wait(), Ok(Wait::Sleep(0)));
    assert_eq!(c.recv(&mut [0; 1]).unwrap().unwrap().1, Wakeup::Needed);
    kernel_woke(h.words(), Side::Producer);
    assert_eq!(c.recv(&mut [0; 1]).unwrap().unwrap().1, Wakeup::NotNeeded);
    assert_eq!(h.producer.producer_waiting.load(Relaxed), 0);
    // A sleeper that sleeps again raises its flag again.
    c.recv(&mut [0; 1]).unwrap();
    c.recv(&mut [0; 1]).unwrap();
    assert_eq!(c.prepare_wait(), Ok(Wait::Sleep(4)));
    assert_eq!(p.send(b"e"), Ok(Some(Wakeup::Needed)));
}

#[test]
fn word_copies_match_a_byte_model_at_every_offset_and_length() {
    // The whole-word fast path and the byte path must agree with plain byte copies:
    // every offset in the first words, every length that fits, written over bytes
    // that must survive, and read back at every offset.
    use crate::shm::AtomicU64;
    for offset in 0..20 {
        for len in 0..=(40 - offset) {
            let words: Vec<AtomicU64> = (0..5)
                .map(|k| AtomicU64::new(0x0101_0101_0101_0101 * (k + 0xa0)))
                .collect();
            let mut model: Vec<u8> = (0..5u64)
                .flat_map(|k| (0x0101_0101_0101_0101 * (k + 0xa0)).to_le_bytes())
                .collect();
            let data: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            write_words(&words, offset, &data).unwrap();
            model[offset..offset + len].copy_from_slice(&data);
            for from in 0..40 {
                let mut out = [0u8; 40];
                let n = read_words(&words, from, &mut out[..40 - from]);
                assert_eq!(n, 40 - from);
                assert_eq!(
                    &out[..n],
                    &model[from..],
                    "offset {offset} len {len} from {from}"
                );
            }
        }
    }
}

#[test]
fn lengths_words_and_ring_sizes_at_their_limits() {
    // The largest ring is 2^31 slots; nothing above, nothing that is not a power of 2.
    assert_eq!(ring::slot_count(1 << 31), Ok(1 << 31));
    assert_eq!(ring::slot_count((1 << 31) + 1), Err(RingError::Geometry));
    assert_eq!(ring::slot_count(1 << 32), Err(RingError::Geometry));
    let (h, s) = (RingHeader::new(), slots(2));
    let mut p = Producer::new(h.words(), &s).unwrap();
    let mut c = Consumer::new(h.words(), &s).unwrap();
    // Without a grant any length up to the payload; with one, at least the grant.
    let mut r = p.reserve().unwrap().unwrap();
    r.set_len(0).unwrap();
    let _ = r.publish();
    let mut r = p.reserve().unwrap().unwrap();
    r.set_grant(PageGrant {
        id: 1,
        len: 4096,
        rights: 1,
    });
    assert_eq!(r.set_len(GRANT_SIZE - 1), Err(RingError::TooLarge));
    r.set_len(GRANT_SIZE).unwrap();
    r.set_len(GRANT_SIZE + 16).unwrap();
    let _ = r.publish();
    let m = c.peek().unwrap().unwrap();
    assert!(m.is_empty() && m.len() == 0 && m.word(0).is_none());
    let _ = m.release();
    let m = c.peek().unwrap().unwrap();
    assert!(!m.is_empty());
    // A word is there only if all of it is inside the message.
    let last = (GRANT_SIZE + 16) / 8;
    assert!(m.word(last - 1).is_some());
    assert_eq!(m.word(last), None);
}
