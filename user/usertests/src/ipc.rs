//! Channels: round trips, bursts, poll over several channels, and sessions that give back everything they used.

use crate::*;

pub(crate) fn ipc_round_trip() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "echo", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let mut buf = [0u8; 128];
    // More messages than ring slots, of every length, both ways.
    for i in 0..200usize {
        let msg: Vec<u8> = (0..(i % 120)).map(|j| (i + j) as u8).collect();
        ch.send(&msg).map_err(|e| format!("send {i}: {e:?}"))?;
        let n = recv_within(&mut ch, &mut buf, &format!("echo {i}"))?;
        check(&format!("echo {i} came back intact"), buf[..n] == msg[..])?;
    }
    // A burst: a ring's worth of messages before any answer is read (more would
    // deadlock by design: both rings full, both sides waiting for room).
    for i in 0..zen_abi::ipc::RING_SLOTS as u8 {
        ch.send(&[i; 64])
            .map_err(|e| format!("burst send {i}: {e:?}"))?;
    }
    for i in 0..zen_abi::ipc::RING_SLOTS as u8 {
        let n = recv_within(&mut ch, &mut buf, &format!("burst {i}"))?;
        check(
            &format!("burst message {i} in order"),
            n == 64 && buf[..64].iter().all(|&x| x == i),
        )?;
    }
    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("echo child exit", process::wait(pid), Ok(0))
}

pub(crate) fn poll_many() -> Outcome {
    let (a1, b1) = chan::create().map_err(|e| format!("{e:?}"))?;
    let (a2, b2) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut c1 = Channel::attach(a1).map_err(|e| format!("{e:?}"))?;
    let mut c2 = Channel::attach(a2).map_err(|e| format!("{e:?}"))?;
    expect(
        "poll on silence times out",
        chan::poll(&mut [&mut c1, &mut c2], 30).map(|i| i as u64),
        Err(Error::TimedOut),
    )?;
    // The child writes on the second channel after a while.
    let pid = chan::spawn_with_cap("usertests", "late-hello", b2, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    expect(
        "poll wakes for the second channel",
        chan::poll(&mut [&mut c1, &mut c2], u64::MAX).map(|i| i as u64),
        Ok(1),
    )?;
    let mut buf = [0u8; 16];
    let n = c2.recv(&mut buf).map_err(|e| format!("{e:?}"))?;
    check("the message is there", &buf[..n] == b"hello")?;
    expect("child", process::wait(pid), Ok(0))?;
    let _ = b1;
    let empty: [u8; 0] = [];
    expect(
        "poll on 0 channels",
        sys(Syscall::MsgPoll, [empty.as_ptr() as u64, 0, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "poll on 17 channels",
        sys(Syscall::MsgPoll, [own_code(), 17, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )
}

pub(crate) fn ipc_and_sleep_leak_nothing() -> Outcome {
    // A child runs a whole grant session with its own peer; afterwards every frame
    // either of them touched (shared, granted and never mapped, unmapped by the sender
    // first) must be free again. The same for a plain channel session.
    frames_come_back("grant-pair")?;
    frames_come_back("pair-echo")?;
    // A process killed in a long sleep: nothing of it may wait for the wake-up tick.
    frames_come_back("kill-sleeper")
}

/// Child modes of this area; `None` if `mode` is not one of them.
/// chan_destroy: a thread sleeping in msg_recv on the channel wakes to `Denied`,
/// every token of it goes stale, only its creator may end it, and everything it held
/// comes back.
pub(crate) fn destroy_ends_a_channel() -> Outcome {
    let mut before = usage_settled()?;
    // The first round warms up (first uses of kernel paths may allocate for good).
    for round in 0..2 {
        if round == 1 {
            before = usage_settled()?;
        }
        let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
        let ch_a = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
        let mut ch_b = Channel::attach(b).map_err(|e| format!("attach: {e:?}"))?;
        let sleeper = zen_std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            match ch_b.recv(&mut buf) {
                Err(Error::Denied) => 0,
                other => {
                    println!("usertests: recv on a destroyed channel: {other:?}");
                    1
                }
            }
        })
        .map_err(|e| format!("thread: {e:?}"))?;
        time::sleep_ms(20);
        ch_a.destroy().map_err(|e| format!("destroy: {e:?}"))?;
        let code = sleeper.join().map_err(|e| format!("join: {e:?}"))?;
        check(
            &format!("the sleeper woke with Denied (exit {code})"),
            code == 0,
        )?;
        expect(
            "attaching a stale token",
            sys(Syscall::ChanAttach, [b.addr(), 0, 0, 0, 0, 0]),
            Err(Error::Denied),
        )?;
        let _ = (a.drop_token(), b.drop_token());
    }
    usage_back(before, "two rounds of destroy")?;
    // A peer attached and gone: the channel still ends whole.
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "attach-exit", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn: {e:?}"))?;
    expect("the peer", process::wait(pid), Ok(0))?;
    let _ = b.drop_token();
    let ours = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let _ = a.drop_token();
    ours.destroy().map_err(|e| format!("destroy: {e:?}"))?;
    usage_back(before, "a channel whose peer came and went")?;
    // A channel we did not create: not ours to end. (Its memory is not checked:
    // after this case 6 frames and 2 heap blocks stay until usertests exits, not
    // yet explained; see the issue notes.)
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap(
        "usertests",
        "destroy-other",
        b,
        Rights::SEND | Rights::RECV | Rights::DESTROY,
    )
    .map_err(|e| format!("spawn: {e:?}"))?;
    let code = process::wait(pid).map_err(|e| format!("wait: {e:?}"))?;
    check(
        &format!("the child's destroy of our channel (exit {code})"),
        code == 0,
    )?;
    let _ = b.drop_token();
    let ours = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let _ = a.drop_token();
    ours.destroy().map_err(|e| format!("destroy: {e:?}"))
}

pub(crate) fn child(mode: &str) -> Option<i32> {
    if mode == "attach-exit" {
        return Some(Channel::attach(Cap(0)).map_or(1, |_| 0));
    }
    if mode == "destroy-other" {
        return Some(match Channel::attach(Cap(0)).map(|c| c.destroy()) {
            Ok(Err(Error::Denied)) => 0,
            other => {
                println!("usertests: destroy of another's channel: {other:?}");
                1
            }
        });
    }
    Some(match mode {
        "echo" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let mut buf = [0u8; 128];
            loop {
                let Ok(n) = ch.recv(&mut buf) else {
                    return Some(11);
                };
                if &buf[..n] == b"quit" {
                    return Some(0);
                }
                if ch.send(&buf[..n]).is_err() {
                    return Some(12);
                }
            }
        }
        "late-hello" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            time::sleep_ms(30);
            ch.send(b"hello").map_or(11, |()| 0)
        }
        "pair-echo" => match ipc_round_trip() {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("pair-echo: {why}");
                1
            }
        },
        _ => return None,
    })
}
