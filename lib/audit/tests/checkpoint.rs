//! Freshness and checkpoints: an export's head carries the reader's nonce; a
//! checkpoint (the head signed at an interval, printed on the console) is held
//! against a later export, which must reach it and agree with it, even when the
//! kernel that holds the key rewrote the log afterwards.

use proptest::prelude::*;
use zen_audit::{verify, Checkpoint, Kind, Log, Standing, Tamper, HEAD_SIZE};

const SEED: [u8; 32] = [5; 32];

fn record(log: &mut Log, n: u64, salt: u64) {
    for i in 0..n {
        log.record(Kind::GrantMade, 7, [i, salt, 0, 0], 2000 + i);
    }
}

#[test]
fn the_head_is_signed_with_the_readers_nonce() {
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 3, 0);
    let b = log.export(*b"0123456789abcdef").unwrap();
    assert_eq!(verify(&b, None).unwrap().nonce, *b"0123456789abcdef");
    // The nonce is under the signature: an old export cannot be relabelled.
    let mut relabelled = b.clone();
    relabelled[b.len() - HEAD_SIZE + 48] ^= 1;
    assert_eq!(verify(&relabelled, None), Err(Tamper::Signature));
}

#[test]
fn a_later_export_agrees_with_an_earlier_checkpoint() {
    let mut log = Log::new(SEED, 100, 16);
    let at_genesis = log.checkpoint().sign();
    record(&mut log, 5, 0);
    assert!(log.checkpoint_due(5) && !log.checkpoint_due(6));
    let cp = log.checkpoint().sign();
    assert_eq!((cp.count, cp.lost), (5, 0));
    assert!(
        !log.checkpoint_due(1),
        "a checkpoint starts the count again"
    );
    record(&mut log, 5, 0);
    let r = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    assert_eq!(r.check(&cp), Ok(Standing::Matches));
    assert_eq!(r.check(&at_genesis), Ok(Standing::Matches));
    // The checkpoint's own entry is the last one: still matched.
    let last = log.checkpoint().sign();
    assert_eq!(r.check(&last), Ok(Standing::Matches));
}

#[test]
fn entries_overwritten_since_are_not_held_against_it() {
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 10, 0);
    let cp = log.checkpoint().sign();
    record(&mut log, 10, 0); // 20 entries, 4 lost: seq 10 is still kept
    let r = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    assert_eq!(r.check(&cp), Ok(Standing::Matches));
    record(&mut log, 6, 0); // 26 entries, 10 lost: the marker continues from seq 10
    let r = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    assert_eq!(r.lost, 10);
    assert_eq!(r.check(&cp), Ok(Standing::Matches));
    record(&mut log, 1, 0);
    let r = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    assert_eq!(r.check(&cp), Ok(Standing::Overwritten));
}

#[test]
fn an_export_older_than_a_checkpoint_is_refused() {
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 5, 0);
    let old = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    record(&mut log, 1, 0);
    let cp = log.checkpoint().sign();
    assert_eq!(old.check(&cp), Err(Tamper::BehindCheckpoint { count: 6 }));
    // Lost more than the export says: also older.
    let mut wrapped = Log::new(SEED, 100, 4);
    record(&mut wrapped, 4, 0);
    let old = verify(&wrapped.export([0; 16]).unwrap(), None).unwrap();
    record(&mut wrapped, 2, 0);
    let cp = Checkpoint {
        count: 4,
        ..wrapped.checkpoint().sign()
    };
    assert!(old.check(&cp).is_err());
}

#[test]
fn a_log_rewritten_with_the_key_is_caught_by_a_checkpoint() {
    // The same key and genesis (a kernel that holds the key and rewrites history
    // after the checkpoint left the machine): its export verifies on its own.
    let mut real = Log::new(SEED, 100, 64);
    record(&mut real, 8, 0);
    let cp = real.checkpoint().sign();
    let mut forged = Log::new(SEED, 100, 64);
    record(&mut forged, 3, 0);
    record(&mut forged, 7, 99); // seq 4 on differ
    let r = verify(&forged.export([0; 16]).unwrap(), None).unwrap();
    assert_eq!(r.check(&cp), Err(Tamper::Checkpoint { count: 8 }));
}

#[test]
fn a_checkpoint_not_of_this_log_is_refused() {
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 4, 0);
    let r = verify(&log.export([0; 16]).unwrap(), None).unwrap();
    let cp = log.checkpoint().sign();
    let mut other = Log::new([6; 32], 100, 16);
    record(&mut other, 4, 0);
    assert_eq!(
        r.check(&other.checkpoint().sign()),
        Err(Tamper::CheckpointSignature)
    );
    // Another boot with the same key has another genesis (its time): refused too.
    let mut reboot = Log::new(SEED, 101, 16);
    record(&mut reboot, 4, 0);
    assert_eq!(
        r.check(&reboot.checkpoint().sign()),
        Err(Tamper::CheckpointSignature)
    );
    for cp in [
        Checkpoint { count: 3, ..cp },
        Checkpoint { lost: 1, ..cp },
        Checkpoint {
            hash: [0; 32],
            ..cp
        },
    ] {
        assert_eq!(r.check(&cp), Err(Tamper::CheckpointSignature));
    }
}

#[test]
fn checkpoints_read_back_from_a_console_line() {
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 2, 0);
    let cp = log.checkpoint().sign();
    let line = format!("zen: audit checkpoint {cp}");
    assert_eq!(Checkpoint::parse(&line), Some(cp));
    for bad in [
        "zen: ready",
        "count=1 lost=0",
        &line.replace("lost=0", "lost=x"),
        &format!("{line} count=3"),
        &line[..line.len() - 1],
    ] {
        assert_eq!(Checkpoint::parse(bad), None, "{bad}");
    }
}

proptest! {
    #[test]
    fn any_line_parses_or_not_without_panic(s in "\\PC{0,300}") {
        let _ = Checkpoint::parse(&s);
    }
}

#[test]
fn a_checkpoint_signature_is_no_export_head() {
    // An export made up of the entries up to a checkpoint and its signature, with a
    // zero nonce: refused, the two are signed for different things.
    let mut log = Log::new(SEED, 100, 16);
    record(&mut log, 4, 0);
    let cp = log.checkpoint().sign();
    let mut b = log.export([0; 16]).unwrap();
    let sig_at = b.len() - 64;
    b[sig_at..].copy_from_slice(&cp.sig);
    assert_eq!(verify(&b, None), Err(Tamper::Signature));
}
