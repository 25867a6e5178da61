//! The rendezvous's promises, one test each, and a property test: any sequence of
//! operations keeps the records and the servers consistent, and every caller is
//! answered exactly once or told why not.

extern crate std;
use std::vec::Vec;

use super::*;

fn m(v: u64) -> Msg {
    [v; WORDS]
}

/// Thread ids: callers 1.., servers 100..; processes: callers 1, servers 2.
const CLIENT: u32 = 1;
const SERVER: u32 = 2;

#[test]
fn a_call_to_a_sleeping_server_is_handed_to_it() {
    let mut e = End::new();
    assert_eq!(e.serve(&100, SERVER, 1), Ok(None));
    assert_eq!(e.poll_served(&100, SERVER), Served::Waiting);
    let (t, run) = e.call(1, CLIENT, &m(7), 1).unwrap();
    assert_eq!(run, Some(100));
    assert_eq!(e.poll_reply(t), None);
    let Served::Request(r) = e.poll_served(&100, SERVER) else {
        panic!("no request")
    };
    assert_eq!((r.from, r.msg), (CLIENT, m(7)));
    assert_ne!(r.handle, 0);
    assert_eq!(e.sleeping_servers(), 0);
    assert_eq!(e.reply(SERVER, r.handle, &m(8)), Ok(Some(1)));
    assert_eq!(e.poll_reply(t), Some(Ok(m(8))));
    assert_eq!(e.in_use(), 0);
}

#[test]
fn queued_calls_are_taken_oldest_first() {
    let mut e = End::new();
    let tickets: Vec<_> = (1..=3)
        .map(|c| e.call(c, CLIENT, &m(c as u64), 1).unwrap())
        .collect();
    assert!(tickets.iter().all(|(_, run)| run.is_none()));
    for want in 1..=3u64 {
        let r = e.serve(&100, SERVER, 1).unwrap().expect("queued");
        assert_eq!(r.msg, m(want));
        e.reply(SERVER, r.handle, &m(want + 10)).unwrap();
    }
    for (i, (t, _)) in tickets.into_iter().enumerate() {
        assert_eq!(e.poll_reply(t), Some(Ok(m(i as u64 + 11))));
    }
}

#[test]
fn an_end_holds_slots_calls_and_servers_servers() {
    let mut e = End::new();
    for c in 0..SLOTS as u32 {
        e.call(c, CLIENT, &m(0), 1).unwrap();
    }
    assert_eq!(e.call(99, CLIENT, &m(0), 1), Err(Refused::Full));
    let mut f = End::<u32>::new();
    for s in 0..SERVERS as u32 {
        assert_eq!(f.serve(&(100 + s), SERVER, 1), Ok(None));
    }
    // The same thread again is no second registration.
    assert_eq!(f.serve(&100, SERVER, 1), Ok(None));
    assert_eq!(f.serve(&200, SERVER, 1), Err(Refused::Busy));
}

#[test]
fn a_reply_reaches_only_the_call_it_answers() {
    let mut e = End::new();
    let (t, _) = e.call(1, CLIENT, &m(1), 1).unwrap();
    let r = e.serve(&100, SERVER, 1).unwrap().unwrap();
    // Another process, a made-up handle, a handle of another slot: refused.
    assert_eq!(e.reply(3, r.handle, &m(0)), Err(Refused::BadReply));
    assert_eq!(e.reply(SERVER, r.handle ^ 1, &m(0)), Err(Refused::BadReply));
    assert_eq!(
        e.reply(SERVER, r.handle + 256, &m(0)),
        Err(Refused::BadReply)
    );
    assert_eq!(e.reply(SERVER, u64::MAX, &m(0)), Err(Refused::BadReply));
    assert_eq!(e.reply(SERVER, 0, &m(0)), Err(Refused::BadReply));
    e.reply(SERVER, r.handle, &m(2)).unwrap();
    // Twice: the record is answered, not taken.
    assert_eq!(e.reply(SERVER, r.handle, &m(3)), Err(Refused::BadReply));
    assert_eq!(e.poll_reply(t), Some(Ok(m(2))));
    // The next call in the same record gets a new generation: the old handle and
    // ticket name nothing.
    let (t2, _) = e.call(1, CLIENT, &m(4), 1).unwrap();
    assert_ne!(t2, t);
    let r2 = e.serve(&100, SERVER, 1).unwrap().unwrap();
    assert_ne!(r2.handle, r.handle);
    assert_eq!(e.reply(SERVER, r.handle, &m(5)), Err(Refused::BadReply));
    assert_eq!(e.poll_reply(t), None);
}

#[test]
fn a_caller_that_gives_up_leaves_nothing() {
    let mut e = End::new();
    let (queued, _) = e.call(1, CLIENT, &m(1), 1).unwrap();
    e.abandon(queued);
    assert_eq!(e.in_use(), 0);
    assert_eq!(e.serve(&100, SERVER, 1), Ok(None));
    // Given up while the server holds it: the answer is dropped, the record freed.
    let (held, _) = e.call(2, CLIENT, &m(2), 1).unwrap();
    let Served::Request(r) = e.poll_served(&100, SERVER) else {
        panic!("handed")
    };
    e.abandon(held);
    assert_eq!(e.reply(SERVER, r.handle, &m(3)), Ok(None));
    assert_eq!(e.in_use(), 0);
    // A stale ticket abandons nothing.
    let (live, _) = e.call(3, CLIENT, &m(4), 1).unwrap();
    e.abandon(held);
    assert_eq!(e.in_use(), 1);
    e.abandon(live);
    assert_eq!(e.in_use(), 0);
}

#[test]
fn a_server_that_stops_gives_its_request_back() {
    let mut e = End::new();
    e.serve(&100, SERVER, 1).unwrap();
    let (t, run) = e.call(1, CLIENT, &m(1), 1).unwrap();
    assert_eq!(run, Some(100));
    let mut woken = Vec::new();
    e.stop_serving(&100, |s| woken.push(s));
    assert!(woken.is_empty());
    assert_eq!(e.poll_served(&100, SERVER), Served::Dropped);
    // Back in the queue, ahead of a later call.
    let (_later, _) = e.call(2, CLIENT, &m(2), 1).unwrap();
    let r = e.serve(&101, SERVER, 1).unwrap().unwrap();
    assert_eq!(r.msg, m(1));
    e.reply(SERVER, r.handle, &m(9)).unwrap();
    assert_eq!(e.poll_reply(t), Some(Ok(m(9))));
    // With a second server asleep, it goes straight on to that one.
    let mut f = End::new();
    f.serve(&100, SERVER, 1).unwrap();
    f.serve(&101, SERVER, 1).unwrap();
    let (_, run) = f.call(1, CLIENT, &m(5), 1).unwrap();
    let first = run.unwrap();
    let other = if first == 100 { 101 } else { 100 };
    f.stop_serving(&first, |s| woken.push(s));
    assert_eq!(woken, [other]);
    assert!(matches!(f.poll_served(&other, SERVER), Served::Request(r) if r.msg == m(5)));
}

#[test]
fn a_server_process_that_ends_fails_its_calls() {
    let mut e = End::new();
    let (t, _) = e.call(1, CLIENT, &m(1), 1).unwrap();
    let (u, _) = e.call(2, CLIENT, &m(2), 1).unwrap();
    e.serve(&100, SERVER, 1).unwrap().unwrap();
    e.serve(&100, 3, 1).unwrap().unwrap();
    let mut woken = Vec::new();
    e.fail_taken_by(SERVER, |c| woken.push(c));
    assert_eq!(woken, [1]);
    assert_eq!(e.poll_reply(t), Some(Err(Failure::ServerGone)));
    // Process 3's call is untouched.
    assert_eq!(e.poll_reply(u), None);
}

#[test]
fn a_revoke_fails_everything_and_wakes_everyone() {
    let mut e = End::new();
    let (queued, _) = e.call(1, CLIENT, &m(1), 1).unwrap();
    e.serve(&100, SERVER, 1).unwrap().unwrap();
    let (taken, _) = e.call(2, CLIENT, &m(2), 1).unwrap();
    let r = e.serve(&100, SERVER, 1).unwrap().unwrap();
    e.serve(&101, SERVER, 1).unwrap();
    let mut woken = Vec::new();
    e.fail_all(|t| woken.push(t));
    woken.sort();
    assert_eq!(woken, [1, 2, 101]);
    assert_eq!(e.poll_reply(queued), Some(Err(Failure::Revoked)));
    assert_eq!(e.poll_reply(taken), Some(Err(Failure::Revoked)));
    assert_eq!(e.poll_served(&101, SERVER), Served::Dropped);
    assert_eq!(e.reply(SERVER, r.handle, &m(0)), Err(Refused::BadReply));
    assert_eq!(e.in_use(), 0);
}

#[test]
fn a_revoke_fails_only_what_older_tokens_made() {
    let mut e = End::new();
    // Epoch 1: a server asleep, a call handed to it from a caller of epoch 2, a call
    // queued at epoch 1. Epoch 2: a second server.
    e.serve(&100, SERVER, 1).unwrap();
    let (new_call, run) = e.call(1, CLIENT, &m(1), 2).unwrap();
    assert_eq!(run, Some(100));
    let (old_call, _) = e.call(2, CLIENT, &m(2), 1).unwrap();
    e.serve(&101, SERVER, 2).unwrap().unwrap(); // takes the old call (epoch 1 caller)
    e.serve(&101, SERVER, 2).unwrap();
    let mut woken = Vec::new();
    e.fail_before(2, |t| woken.push(t));
    woken.sort();
    // The old caller, the old server, and the new server now handed the new call.
    assert_eq!(woken, [2, 100, 101]);
    assert_eq!(e.poll_reply(old_call), Some(Err(Failure::Revoked)));
    assert_eq!(e.poll_served(&100, SERVER), Served::Dropped);
    let Served::Request(r) = e.poll_served(&101, SERVER) else {
        panic!("the new call went on to the new server")
    };
    assert_eq!(r.msg, m(1));
    e.reply(SERVER, r.handle, &m(3)).unwrap();
    assert_eq!(e.poll_reply(new_call), Some(Ok(m(3))));
    // A call of epoch 2 taken by a server of epoch 1 fails at a revoke to 2 as well:
    // its taker could never answer with its stale token.
    let mut f = End::new();
    let (t, _) = f.call(1, CLIENT, &m(1), 2).unwrap();
    f.serve(&100, SERVER, 1).unwrap().unwrap();
    f.fail_before(2, |_| {});
    assert_eq!(f.poll_reply(t), Some(Err(Failure::Revoked)));
}

#[test]
fn generations_skip_zero() {
    let mut e = End::<u32>::new();
    e.records[0].generation = u32::MAX;
    e.free(0);
    assert_eq!(e.records[0].generation, 1);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Call(u32),
        Serve(u32),
        Wake(u32),
        Reply(u8),
        Abandon(u32),
        Stop(u32),
        ServerDies,
        Revoke,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..12u32).prop_map(Op::Call),
            (100..106u32).prop_map(Op::Serve),
            (100..106u32).prop_map(Op::Wake),
            any::<u8>().prop_map(Op::Reply),
            (0..12u32).prop_map(Op::Abandon),
            (100..106u32).prop_map(Op::Stop),
            Just(Op::ServerDies),
            Just(Op::Revoke),
        ]
    }

    proptest! {
        /// Every call made is, at the end, answered with its own reply, failed, or
        /// given up; none twice; and the end is left empty.
        #[test]
        fn every_call_ends_once(ops in proptest::collection::vec(op(), 1..80)) {
            let mut e = End::<u32>::new();
            // Callers waiting: thread -> (ticket, request word).
            let mut waiting: std::collections::BTreeMap<u32, (Ticket, u64)> = Default::default();
            let mut held: Vec<Request> = Vec::new();
            let mut word = 0u64;
            let mut epoch = 1u64;
            let mut ended = 0usize;
            let mut made = 0usize;
            for op in ops {
                match op {
                    Op::Call(c) if !waiting.contains_key(&c) => {
                        word += 1;
                        if let Ok((t, _)) = e.call(c, CLIENT, &m(word), epoch) {
                            waiting.insert(c, (t, word));
                            made += 1;
                        }
                    }
                    Op::Call(_) => {}
                    Op::Serve(s) => {
                        if let Ok(Some(r)) = e.serve(&s, SERVER, epoch) {
                            held.push(r);
                        }
                    }
                    Op::Wake(s) => {
                        if let Served::Request(r) = e.poll_served(&s, SERVER) {
                            held.push(r);
                        }
                    }
                    Op::Reply(k) if !held.is_empty() => {
                        let r = held.remove(usize::from(k) % held.len());
                        // The reply is the request's word + 1000: a caller can tell
                        // its own answer.
                        let _ = e.reply(SERVER, r.handle, &m(r.msg[0] + 1000));
                    }
                    Op::Reply(_) => {}
                    Op::Abandon(c) => {
                        if let Some((t, _)) = waiting.remove(&c) {
                            e.abandon(t);
                            ended += 1;
                        }
                    }
                    Op::Stop(s) => e.stop_serving(&s, |_| {}),
                    Op::ServerDies => {
                        held.clear();
                        e.fail_taken_by(SERVER, |_| {});
                    }
                    Op::Revoke => {
                        // Everything held was taken with a token older than this.
                        held.clear();
                        epoch += 1;
                        e.fail_before(epoch, |_| {});
                    }
                }
                // Collect answers as the woken callers would.
                let done: Vec<u32> = waiting
                    .iter()
                    .filter_map(|(&c, &(t, w))| match e.poll_reply(t) {
                        Some(Ok(reply)) => {
                            assert_eq!(reply, m(w + 1000), "a caller got another's reply");
                            Some(c)
                        }
                        Some(Err(_)) => Some(c),
                        None => None,
                    })
                    .collect();
                for c in done {
                    waiting.remove(&c);
                    ended += 1;
                }
                assert!(e.in_use() <= SLOTS);
                assert!(e.in_use() >= waiting.len());
            }
            // Wind down: every server leaves, every call fails; all are collected.
            e.fail_all(|_| {});
            for (_, (t, _)) in core::mem::take(&mut waiting) {
                prop_assert!(e.poll_reply(t).is_some());
                ended += 1;
            }
            prop_assert_eq!(ended, made);
            prop_assert_eq!(e.in_use(), 0);
            prop_assert_eq!(e.sleeping_servers(), 0);
        }
    }
}
