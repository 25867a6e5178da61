//! Request/reply through `msg_call` (zen-std's `Channel::call` and `reply_recv`):
//! answers come back intact and in order with the server on this CPU (a direct
//! switch each way) and on another; the call needs both SEND and RECV; a caller
//! killed or revoked while it waits leaves nothing behind; a `Channel` keeps its
//! token when its slot is dropped and refilled.

use crate::*;

/// The answer `serve` gives to `req`: its bytes reversed, then its length.
fn answer_to(req: &[u8]) -> Vec<u8> {
    let mut a: Vec<u8> = req.iter().rev().copied().collect();
    a.push(req.len() as u8);
    a
}

/// `rounds` calls of every length from 0 to 119 bytes to a `serve` child (`cpu`: the
/// CPU it runs on, if any), each answer checked; then `quit`.
fn calls_to_a_server(cpu: Option<usize>, rounds: usize) -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let mode = match cpu {
        Some(c) => format!("serve {c}"),
        None => String::from("serve"),
    };
    let pid = chan::spawn_with_cap("usertests", &mode, b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let mut buf = [0u8; 128];
    for i in 0..rounds {
        let req: Vec<u8> = (0..(i % 120)).map(|j| (i * 7 + j) as u8).collect();
        let n = ch
            .call(&req, &mut buf)
            .map_err(|e| format!("call {i}: {e:?}"))?;
        check(
            &format!("answer {i} ({mode}) is the server's, intact"),
            buf[..n] == answer_to(&req)[..],
        )?;
    }
    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect(&format!("{mode} child exit"), process::wait(pid), Ok(0))
}

pub fn call_and_reply() -> Outcome {
    calls_to_a_server(None, 300)?;
    // On another CPU, if there is one: the hand-off falls back to a wake-up there.
    if process::set_cpu(1).is_ok() {
        process::set_cpu(0).map_err(|e| format!("set_cpu(0): {e:?}"))?;
        calls_to_a_server(Some(1), 300)?;
    }
    Ok(())
}

pub fn call_needs_send_and_recv() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    for rights in [Rights::SEND, Rights::RECV] {
        let pid = chan::spawn_with_cap("usertests", "call-with", b, rights)
            .map_err(|e| format!("{e:?}"))?;
        expect(
            &format!("msg_call with {rights} only is refused"),
            process::wait(pid),
            Ok(0),
        )?;
    }
    // A refused call sent nothing: an end that cannot hear the answer must not ask.
    let mut buf = [0u8; 8];
    check(
        "nothing was published by the refused calls",
        ch.try_recv(&mut buf) == Ok(None),
    )
}

pub fn a_dropped_slot_keeps_the_channel() -> Outcome {
    // A Channel calls with the token it was attached with, also once its slot is
    // dropped and refilled with another channel's token.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "serve", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let mut buf = [0u8; 16];
    a.drop_token().map_err(|e| format!("drop: {e:?}"))?;
    let n = ch
        .call(b"one", &mut buf)
        .map_err(|e| format!("call after drop: {e:?}"))?;
    check("answered after the drop", buf[..n] == answer_to(b"one")[..])?;
    // The freed slot is taken by the next token (lowest free slot first).
    let (x, _y) = chan::create().map_err(|e| format!("{e:?}"))?;
    check("the slot was reused", x == a)?;
    let n = ch
        .call(b"two", &mut buf)
        .map_err(|e| format!("call after reuse: {e:?}"))?;
    check(
        "answered by the same server after the reuse",
        buf[..n] == answer_to(b"two")[..],
    )?;
    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("serve child exit", process::wait(pid), Ok(0))
}

/// Spawns `call-forever` on end `b` (all rights) and waits until it has said it
/// calls; the pid.
fn start_caller(b: Cap, ch: &mut Channel) -> Result<u32, String> {
    let pid = chan::spawn_with_cap("usertests", "call-forever", b, Rights::CHANNEL_ALL)
        .map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(ch, &mut buf, "call-forever's request")?;
    // Give it time to be asleep in msg_call for sure.
    time::sleep_ms(20);
    Ok(pid)
}

pub fn killed_caller_leaves_nothing() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let kill_one = |ch: &mut Channel| -> Outcome {
        let pid = start_caller(b, ch)?;
        process::kill(pid).map_err(|e| format!("kill: {e:?}"))?;
        expect(
            "the caller is killed in msg_call",
            process::wait(pid),
            Ok(KILLED_EXIT_CODE),
        )
    };
    kill_one(&mut ch)?; // warm-up
    let before = usage_settled()?;
    kill_one(&mut ch)?;
    usage_back(before, "a caller killed in msg_call")
}

pub fn revoke_ends_a_waiting_call() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let pid = start_caller(b, &mut ch)?;
    // Revoking end B (we hold its original) wakes the caller with Denied.
    b.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    expect(
        "the caller's msg_call says Denied",
        process::wait(pid),
        Ok(0),
    )
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub fn child(mode: &str, num: Option<usize>) -> Option<i32> {
    Some(match mode {
        // Answers each request (see `answer_to`) by reply_recv until "quit".
        "serve" => {
            if let Some(cpu) = num {
                if process::set_cpu(cpu).is_err() {
                    return Some(9);
                }
            }
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let r = ch.serve(|req, reply| {
                if req == b"quit" {
                    return None;
                }
                let a = answer_to(req);
                reply[..a.len()].copy_from_slice(&a);
                Some(a.len())
            });
            if r.is_ok() {
                0
            } else {
                12
            }
        }
        // msg_call with the token we were given must be Denied, raw and through
        // zen-std (which must not publish first).
        "call-with" => match Channel::attach(Cap(0)) {
            Ok(mut ch) => {
                let r = sys(Syscall::MsgCall, [Cap(0).addr(), 0, 0, 0, 0, 0]);
                let mut buf = [0u8; 8];
                let c = ch.call(b"request", &mut buf);
                if r == Err(Error::Denied) && c == Err(Error::Denied) {
                    0
                } else {
                    eprintln!("call-with: {r:?} {c:?}");
                    1
                }
            }
            Err(_) => 10,
        },
        // Calls and is never answered: ends killed, or with 0 when the call says Denied.
        // It waits first, so that the parent is asleep in poll every time: the same
        // wait queues are used in every run (a queue's first sleeper allocates its list
        // for the channel's life, which a leak check must not count).
        "call-forever" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            time::sleep_ms(30);
            let mut buf = [0u8; 8];
            match ch.call(b"request", &mut buf) {
                Err(Error::Denied) => 0,
                _ => 11,
            }
        }
        _ => return None,
    })
}
