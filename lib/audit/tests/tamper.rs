//! A clean log verifies; every kind of tampering is found, at the first entry it
//! touches where it can be placed; garbage is refused, never a panic.

use proptest::prelude::*;
use zen_audit::{verify, Entry, Kind, Log, Tamper, ENTRY_SIZE, HEAD_SIZE};

const SEED: [u8; 32] = [3; 32];

fn log_of(n: u64) -> Log {
    let mut log = Log::new(SEED, 100, 16);
    for i in 0..n {
        log.record(Kind::Spawn, 2 + i as u32, [i, i * 7, 0, 0], 1000 + i);
    }
    log
}

/// The entry at position `i` after genesis (and the marker, if `marker`).
fn at(bytes: &mut [u8], i: usize) -> &mut [u8] {
    &mut bytes[ENTRY_SIZE * (1 + i)..ENTRY_SIZE * (2 + i)]
}

#[test]
fn a_clean_log_verifies_with_its_key() {
    let log = log_of(10);
    let key = log.public_key();
    let r = verify(&log.export([0; 16]).unwrap(), Some(&key)).unwrap();
    assert_eq!((r.key, r.lost, r.entries.len()), (key, 0, 10));
    assert_eq!(r.entries[3].args[1], 21);
    // An empty log (genesis alone) too.
    assert!(verify(&log_of(0).export([0; 16]).unwrap(), Some(&key)).is_ok());
}

#[test]
fn an_altered_entry_is_named() {
    let log = log_of(10);
    let mut b = log.export([0; 16]).unwrap();
    at(&mut b, 4)[20] ^= 1; // the pid of seq 5
    assert_eq!(verify(&b, None), Err(Tamper::Entry { index: 4, seq: 5 }));
}

#[test]
fn a_removed_entry_is_named() {
    let b = log_of(10).export([0; 16]).unwrap();
    let mut cut = b[..ENTRY_SIZE * 3].to_vec(); // genesis, seq 1, seq 2
    cut.extend_from_slice(&b[ENTRY_SIZE * 4..]); // seq 4 on
    assert_eq!(verify(&cut, None), Err(Tamper::Entry { index: 2, seq: 4 }));
    // The newest entries cut off: the signed head no longer matches.
    let mut tail = b[..ENTRY_SIZE * 9].to_vec();
    tail.extend_from_slice(&b[b.len() - HEAD_SIZE..]);
    assert_eq!(verify(&tail, None), Err(Tamper::Head));
}

#[test]
fn reordered_entries_are_named() {
    let mut b = log_of(10).export([0; 16]).unwrap();
    let (x, y) = (at(&mut b, 6).to_vec(), at(&mut b, 7).to_vec());
    at(&mut b, 6).copy_from_slice(&y);
    at(&mut b, 7).copy_from_slice(&x);
    assert_eq!(verify(&b, None), Err(Tamper::Entry { index: 6, seq: 8 }));
}

#[test]
fn a_rewritten_chain_fails_at_the_signed_head() {
    // Alter seq 3 and recompute every hash after it: consistent, but not what was
    // signed.
    let log = log_of(6);
    let key = log.public_key();
    let b = log.export([0; 16]).unwrap();
    let mut es: Vec<Entry> = (0..7)
        .map(|i| Entry::from_bytes(&b[ENTRY_SIZE * i..ENTRY_SIZE * (i + 1)]).unwrap())
        .collect();
    es[3].args[0] = 99;
    for i in 3..7 {
        es[i].hash = es[i].chain(&key, &es[i - 1].hash);
    }
    let mut forged: Vec<u8> = es.iter().flat_map(|e| e.to_bytes()).collect();
    forged.extend_from_slice(&b[b.len() - HEAD_SIZE..]);
    assert_eq!(verify(&forged, Some(&key)), Err(Tamper::Head));
}

#[test]
fn signatures_and_keys_are_checked() {
    let log = log_of(5);
    let key = log.public_key();
    let mut b = log.export([0; 16]).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x80;
    assert_eq!(verify(&b, Some(&key)), Err(Tamper::Signature));
    // Another boot's log, whole and self-consistent: refused against our key.
    let other = {
        let mut l = Log::new([9; 32], 100, 16);
        l.record(Kind::Spawn, 2, [0; 4], 1000);
        l.export([0; 16]).unwrap()
    };
    assert!(verify(&other, None).is_ok());
    assert_eq!(verify(&other, Some(&key)), Err(Tamper::WrongKey));
    // Its genesis spliced onto our entries: the chain breaks at once.
    let mut spliced = other[..ENTRY_SIZE].to_vec();
    spliced.extend_from_slice(&log.export([0; 16]).unwrap()[ENTRY_SIZE..]);
    assert_eq!(
        verify(&spliced, None),
        Err(Tamper::Entry { index: 0, seq: 1 })
    );
}

#[test]
fn overwritten_entries_leave_a_marker_that_cannot_be_stretched() {
    let log = log_of(40); // 16 kept, 24 lost
    let key = log.public_key();
    let b = log.export([0; 16]).unwrap();
    let r = verify(&b, Some(&key)).unwrap();
    assert_eq!((r.lost, r.entries.len(), r.entries[0].seq), (24, 16, 25));
    // Claim two more lost: drop the two oldest kept, move the marker on.
    let e = |i: usize| Entry::from_bytes(&b[ENTRY_SIZE * i..ENTRY_SIZE * (i + 1)]).unwrap();
    let marker = Entry::lost(26, e(3).hash);
    let mut stretched = e(0).to_bytes().to_vec();
    stretched.extend_from_slice(&marker.to_bytes());
    stretched.extend_from_slice(&b[ENTRY_SIZE * 4..]);
    assert_eq!(verify(&stretched, Some(&key)), Err(Tamper::Head));
}

proptest! {
    /// Garbage, truncations and flipped bits are refused with a reason, never a panic.
    #[test]
    fn damage_is_refused_not_a_panic(cut in 0usize..4000, flip in 0usize..40000, junk: Vec<u8>) {
        let b = log_of(20).export([0; 16]).unwrap();
        let _ = verify(&junk, None);
        let _ = verify(&b[..cut.min(b.len())], None);
        let mut f = b.clone();
        let i = flip % (f.len() * 8);
        f[i / 8] ^= 1 << (i % 8);
        prop_assert!(verify(&f, None).is_err());
    }
}

#[test]
fn a_marker_cannot_overflow_and_genesis_is_signed_even_after_a_loss() {
    let log = log_of(40);
    let key = log.public_key();
    let b = log.export([0; 16]).unwrap();
    let e = |i: usize| Entry::from_bytes(&b[ENTRY_SIZE * i..ENTRY_SIZE * (i + 1)]).unwrap();
    // A lost count at the end of the numbers: refused, not an overflow.
    let mut huge = e(0).to_bytes().to_vec();
    huge.extend_from_slice(&Entry::lost(u64::MAX, e(1).hash).to_bytes());
    huge.extend_from_slice(&b[ENTRY_SIZE * 2..]);
    assert!(verify(&huge, Some(&key)).is_err());
    // Genesis changed and rehashed (the key is public): the signed head covers it.
    let mut g = e(0);
    g.time ^= 1;
    g.hash = g.chain(&key, &[0; 32]);
    let mut forged = g.to_bytes().to_vec();
    forged.extend_from_slice(&b[ENTRY_SIZE..]);
    assert_eq!(verify(&forged, Some(&key)), Err(Tamper::Signature));
    // The export's size is what export_len says.
    assert_eq!(b.len(), log.export_len());
}
