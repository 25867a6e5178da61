//! Calls in registers (`call`, `reply_recv`; zen-std's `Cap::call` and `Server`):
//! answers come back whole, to the right caller, with the caller's pid, with the
//! server on this CPU (a direct switch each way) and on another; rights are checked
//! each side; a reply handle works once, for the process that took the call; a server
//! that ends fails the calls it took; revoke and destroy end every wait; killed
//! callers and servers leave nothing; a full end is Busy, not an allocation.

use crate::*;
use zen_abi::syscall::{CALLS_IN_FLIGHT, REPLY_ONLY, SERVERS_WAITING};
use zen_std::call::{Msg, Server};

/// The server's answer to `m` from process `from`: each word turned and tagged with
/// its place, and the caller's pid in the last word.
fn answer(m: &Msg, from: u32) -> Msg {
    let mut a = [0u64; 8];
    for (i, w) in m.iter().enumerate().take(7) {
        a[i] = w.rotate_left(i as u32 + 1) ^ (i as u64) << 56;
    }
    a[7] = u64::from(from) ^ m[7];
    a
}

const QUIT: u64 = u64::MAX;
/// What a caller that is never answered sends; `rserve` refuses to see it.
const FOREVER: Msg = [0xdead_0000_0000_0007; 8];
/// How long the parent lets a child settle into its wait before it ends it; a child
/// whose wait ended sooner did not wait at all, and says so.
const SETTLE_MS: u64 = 50;
const WAITED_MS: u64 = 20;

/// A server child on `b` (SEND | RECV), on `cpu` if given; its pid.
fn start_server(b: Cap, cpu: Option<usize>) -> Result<u32, String> {
    let mode = match cpu {
        Some(c) => format!("rserve {c}"),
        None => String::from("rserve"),
    };
    chan::spawn_with_cap("usertests", &mode, b, Rights::RECV).map_err(|e| format!("spawn: {e:?}"))
}

fn round_trips(cpu: Option<usize>, rounds: u64) -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = start_server(b, cpu)?;
    let me = process::id();
    for i in 0..rounds {
        let m: Msg = core::array::from_fn(|k| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k as u64);
        let got = a.call(&m).map_err(|e| format!("call {i}: {e:?}"))?;
        if got != answer(&m, me) {
            return Err(format!("call {i}: answer {got:x?} for {m:x?}"));
        }
    }
    let bye = a.call(&[QUIT; 8]).map_err(|e| format!("quit: {e:?}"))?;
    check("the quit call is answered", bye == [0; 8])?;
    expect("the server ends well", process::wait(pid), Ok(0))?;
    end(a, b)
}

/// Ends a test's channel and drops both its tokens (a process may own only so many
/// channels, and its token page holds 63 tokens).
fn end(a: Cap, b: Cap) -> Outcome {
    a.destroy_channel().map_err(|e| format!("destroy: {e:?}"))?;
    a.drop_token().map_err(|e| format!("drop: {e:?}"))?;
    b.drop_token().map_err(|e| format!("drop: {e:?}"))
}

pub fn round_trips_on_one_and_two_cpus() -> Outcome {
    round_trips(Some(0), 2000)?;
    round_trips(Some(1), 500)?;
    round_trips(None, 500)
}

pub fn rights_are_checked_each_side() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    // A caller with RECV only, a server with SEND only: both Denied.
    let p = chan::spawn_with_cap("usertests", "rcall-denied", a, Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    expect("call without SEND", process::wait(p), Ok(0))?;
    let p = chan::spawn_with_cap("usertests", "rserve-denied", b, Rights::SEND)
        .map_err(|e| format!("{e:?}"))?;
    expect("reply_recv without RECV", process::wait(p), Ok(0))?;
    end(a, b)?;
    // An empty slot is no token.
    expect(
        "call on an empty slot",
        Cap(62).call(&[0; 8]).map(|_| 0),
        Err(Error::Denied),
    )?;
    expect(
        "reply_recv on an empty slot",
        Server::new(Cap(62)).recv().map(|_| 0),
        Err(Error::Denied),
    )
}

/// A thread of ours serves `b` once with a handle check in between: a wrong
/// generation, a wrong slot, REPLY_ONLY without a handle and a replay are refused;
/// the right handle works.
pub fn reply_handles_work_once() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let t = thread::spawn(move || {
        let s = Server::new(b);
        let Ok(req) = s.recv() else { return 1 };
        let bad = |h: u64| {
            let fake = zen_std::call::Request { handle: h, ..req };
            s.reply(&fake, &[9; 8]) == Err(Error::InvalidArgument)
        };
        if !(bad(req.handle + 256) && bad(req.handle ^ 1) && bad(0) && bad(u64::MAX & !REPLY_ONLY))
        {
            return 2;
        }
        if s.reply(&req, &answer(&req.msg, req.from)).is_err() {
            return 3;
        }
        if !bad(req.handle) {
            return 4;
        }
        0
    })
    .map_err(|e| format!("{e:?}"))?;
    let m = [5, 6, 7, 8, 9, 10, 11, 12];
    let got = a.call(&m).map_err(|e| format!("call: {e:?}"))?;
    expect("the server thread", t.join(), Ok(0))?;
    check("the answer", got == answer(&m, process::id()))?;
    end(a, b)
}

pub fn a_server_that_ends_fails_its_calls() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let p = chan::spawn_with_cap("usertests", "rtake", b, Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    expect(
        "a call the server took and never answered",
        a.call(&[1; 8]).map(|_| 0),
        Err(Error::NoPeer),
    )?;
    expect("the server", process::wait(p), Ok(0))?;
    end(a, b)
}

pub fn revoke_and_destroy_end_every_wait() -> Outcome {
    // A call taken and never answered, and the server waiting again: a revoke (of
    // either end: the generation is the channel's) ends both with Denied.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let server = chan::spawn_with_cap("usertests", "rserve-forever", b, Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let caller = chan::spawn_with_cap("usertests", "rcall-forever", a, Rights::SEND)
        .map_err(|e| format!("{e:?}"))?;
    time::sleep_ms(SETTLE_MS);
    a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    expect(
        "the caller of a taken call is told Denied",
        process::wait(caller),
        Ok(0),
    )?;
    expect(
        "the waiting server is told Denied",
        process::wait(server),
        Ok(0),
    )?;
    end(a, b)?;
    // A queued call (no server at all).
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let caller = chan::spawn_with_cap("usertests", "rcall-forever", a, Rights::SEND)
        .map_err(|e| format!("{e:?}"))?;
    time::sleep_ms(SETTLE_MS);
    a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    expect(
        "a queued caller is told Denied",
        process::wait(caller),
        Ok(0),
    )?;
    end(a, b)?;
    // Destroy: a waiting server, then chan_destroy.
    let (c, d) = chan::create().map_err(|e| format!("{e:?}"))?;
    let server = chan::spawn_with_cap("usertests", "rserve-forever", d, Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    time::sleep_ms(SETTLE_MS);
    let ch = Channel::attach(c).map_err(|e| format!("{e:?}"))?;
    ch.destroy().map_err(|e| format!("destroy: {e:?}"))?;
    expect(
        "destroy ends the server's wait",
        process::wait(server),
        Ok(0),
    )?;
    expect(
        "no call on a destroyed channel",
        c.call(&[0; 8]).map(|_| 0),
        Err(Error::Denied),
    )?;
    c.drop_token().map_err(|e| format!("{e:?}"))?;
    d.drop_token().map_err(|e| format!("{e:?}"))
}

/// Kills a child blocked in `mode` on a fresh channel's end; the end then still
/// serves a new server and caller.
fn kill_blocked(mode: &str, give_a: bool) -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let (give, rights) = if give_a {
        (a, Rights::SEND)
    } else {
        (b, Rights::RECV)
    };
    let p = chan::spawn_with_cap("usertests", mode, give, rights).map_err(|e| format!("{e:?}"))?;
    time::sleep_ms(SETTLE_MS);
    process::kill(p).map_err(|e| format!("kill: {e:?}"))?;
    expect(
        "killed while it waits",
        process::wait(p),
        Ok(KILLED_EXIT_CODE),
    )?;
    // The end works on: nothing of the dead one is left in it.
    let s = start_server(b, None)?;
    let m = [3; 8];
    let got = a
        .call(&m)
        .map_err(|e| format!("call after the kill: {e:?}"))?;
    check(
        "the answer after the kill",
        got == answer(&m, process::id()),
    )?;
    a.call(&[QUIT; 8]).map_err(|e| format!("{e:?}"))?;
    expect("the new server", process::wait(s), Ok(0))?;
    end(a, b)
}

pub fn killed_callers_and_servers_leave_nothing() -> Outcome {
    for (mode, give_a) in [("rcall-forever", true), ("rserve-forever", false)] {
        kill_blocked(mode, give_a)?; // warm-up
        let before = usage_settled()?;
        kill_blocked(mode, give_a)?;
        usage_back(before, mode)?;
    }
    Ok(())
}

pub fn a_full_end_is_busy() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    static STARTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let mut callers = Vec::new();
    for i in 0..CALLS_IN_FLIGHT as u64 {
        let t = thread::spawn(move || {
            STARTED.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
            match a.call(&[i; 8]) {
                Ok(r) if r == answer(&[i; 8], process::id()) => 0,
                _ => 1,
            }
        })
        .map_err(|e| format!("thread {i}: {e:?}"))?;
        callers.push(t);
    }
    // All of them on their way into the call, then time to get there (a thread runs
    // a few hundred instructions from the count to its wait).
    for _ in 0..100 {
        if STARTED.load(core::sync::atomic::Ordering::SeqCst) >= CALLS_IN_FLIGHT as u64 {
            break;
        }
        time::sleep_ms(10);
    }
    time::sleep_ms(SETTLE_MS);
    expect(
        "one call more than the end holds",
        a.call(&[0; 8]).map(|_| 0),
        Err(Error::Busy),
    )?;
    // Servers: as many as may wait, then one more is Busy.
    let (c, d) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut servers = Vec::new();
    for _ in 0..SERVERS_WAITING {
        let t = thread::spawn(move || match Server::new(d).recv() {
            Err(Error::Denied) => 0,
            _ => 1,
        })
        .map_err(|e| format!("{e:?}"))?;
        servers.push(t);
    }
    time::sleep_ms(100);
    expect(
        "one server more than may wait",
        Server::new(d).recv().map(|_| 0),
        Err(Error::Busy),
    )?;
    d.revoke().map_err(|e| format!("{e:?}"))?;
    for t in servers {
        expect("a waiting server after the revoke", t.join(), Ok(0))?;
    }
    // (The revoke left `d` a fresh token; `c`'s is stale.)
    end(d, c)?;
    // The queued calls are all answered, in turn.
    let s = start_server(b, None)?;
    for t in callers {
        expect("a queued caller", t.join(), Ok(0))?;
    }
    a.call(&[QUIT; 8]).map_err(|e| format!("{e:?}"))?;
    expect("the server", process::wait(s), Ok(0))?;
    end(a, b)
}

/// Runs `rkill-handoff` in a child (it pins itself and its servers to CPU 0).
pub fn a_killed_server_passes_its_call_on() -> Outcome {
    let pid = process::spawn("usertests", "rkill-handoff").map_err(|e| format!("{e:?}"))?;
    expect("the child", process::wait(pid), Ok(0))
}

/// Two servers on end b, both on our CPU: the first, registered first, is killed;
/// before it can run (it shares our CPU, and we do not block until our call), our
/// call is handed to it. Killed, it must give the call on to the second server
/// rather than take it and end with it (which would answer us NoPeer).
fn killed_server_passes_on() -> Outcome {
    process::set_cpu(0).map_err(|e| format!("set_cpu: {e:?}"))?;
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let first = chan::spawn_with_cap("usertests", "rserve-forever 0", b, Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    time::sleep_ms(SETTLE_MS);
    let second = start_server(b, Some(0))?;
    time::sleep_ms(SETTLE_MS);
    process::kill(first).map_err(|e| format!("kill: {e:?}"))?;
    let m = [11; 8];
    let got = a.call(&m).map_err(|e| format!("the call: {e:?}"))?;
    check(
        "the second server's answer",
        got == answer(&m, process::id()),
    )?;
    expect(
        "the killed server",
        process::wait(first),
        Ok(KILLED_EXIT_CODE),
    )?;
    a.call(&[QUIT; 8]).map_err(|e| format!("{e:?}"))?;
    expect("the second server", process::wait(second), Ok(0))?;
    end(a, b)
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub fn child(mode: &str, num: Option<usize>) -> Option<i32> {
    let s = Server::new(Cap(0));
    Some(match mode {
        // Answers each call with `answer` until QUIT, which it answers with zeros
        // without waiting again.
        "rserve" => {
            if let Some(cpu) = num {
                if process::set_cpu(cpu).is_err() {
                    return Some(9);
                }
            }
            let Ok(mut req) = s.recv() else {
                return Some(10);
            };
            loop {
                // A killed caller's call must have gone with it.
                if req.msg == FOREVER {
                    break 13;
                }
                if req.msg == [QUIT; 8] {
                    break if s.reply(&req, &[0; 8]).is_ok() {
                        0
                    } else {
                        11
                    };
                }
                match s.reply_recv_to(&req, &answer(&req.msg, req.from)) {
                    Ok(r) => req = r,
                    Err(_) => break 12,
                }
            }
        }
        "rcall-denied" => match Cap(0).call(&[0; 8]) {
            Err(Error::Denied) => 0,
            _ => 1,
        },
        "rserve-denied" => match s.recv() {
            Err(Error::Denied) => 0,
            _ => 1,
        },
        // Takes one call and ends without answering it.
        "rtake" => match s.recv() {
            Ok(_) => 0,
            Err(_) => 1,
        },
        // Calls and is never answered: 0 when the call says Denied after it waited
        // (a call that came too late to wait proves nothing: 2).
        "rcall-forever" => {
            let t0 = time::uptime_ms();
            match Cap(0).call(&FOREVER) {
                Err(Error::Denied) if time::uptime_ms() - t0 >= WAITED_MS => 0,
                Err(Error::Denied) => 2,
                _ => 1,
            }
        }
        // Waits for calls and never answers one: 0 when the wait says Denied after it
        // waited. On CPU `num` if given.
        "rserve-forever" => {
            if let Some(cpu) = num {
                if process::set_cpu(cpu).is_err() {
                    return Some(9);
                }
            }
            let mut held = 0;
            loop {
                let t0 = time::uptime_ms();
                match s.recv() {
                    Ok(_) => held += 1,
                    Err(Error::Denied) if time::uptime_ms() - t0 >= WAITED_MS => break 0,
                    Err(Error::Denied) => break 2,
                    Err(_) => break 3 + held,
                }
            }
        }
        // A server on CPU 0 killed while a call is handed to it: the call goes on to
        // the other server (see `a_killed_server_passes_its_call_on`).
        "rkill-handoff" => match killed_server_passes_on() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rkill-handoff: {e}");
                1
            }
        },
        _ => return None,
    })
}
