//! Rights where the memory is: a channel holder maps only what its rights need, a
//! revoked holder loses its pages and stops being the channel's peer, attaching in a
//! loop costs nothing, and powering off needs the system token.

use crate::{attach_raw, check, expect, recv_within, run_child, spawn, sys, Outcome};
use zen_abi::cap::Rights;
use zen_abi::ipc::CHANNEL_PAGES;
use zen_abi::syscall::{Syscall, FAULT_EXIT_CODE};
use zen_std::chan::{self, Cap, Channel};
use zen_std::prelude::*;
use zen_std::testing::{probe_read, probe_write};
use zen_std::{mem, process, time, Error};

/// Runs child `probe RIGHTS PAGE OP` on end B of a fresh channel, with `rights`:
/// its exit code (0: the access worked; FAULT_EXIT_CODE: the MMU refused it).
fn probe(rights: Rights, page: usize, write: bool) -> Result<u64, String> {
    let (_a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let op = if write { "write" } else { "read" };
    let pid = chan::spawn_with_cap("usertests", &format!("probe {page} {op}"), b, rights)
        .map_err(|e| format!("spawn: {e:?}"))?;
    process::wait(pid).map_err(|e| format!("wait: {e:?}"))
}

pub fn shared_pages_follow_rights() -> Outcome {
    // End B (object 1) produces ring 1 (pages 3..6) and consumes ring 0 (pages 0..3).
    // Page order per ring: producer words, consumer words, slots.
    let (send, recv) = (Rights::SEND, Rights::RECV);
    let cases: [(&str, Rights, usize, bool, bool); 12] = [
        ("RECV reads the peer's head", recv, 0, false, true),
        ("RECV cannot move the peer's head", recv, 0, true, false),
        ("RECV writes its own tail", recv, 1, true, true),
        ("RECV reads the slots", recv, 2, false, true),
        (
            "RECV cannot write the slots (publish)",
            recv,
            2,
            true,
            false,
        ),
        ("RECV does not see its produced ring", recv, 3, false, false),
        (
            "RECV does not see its produced slots",
            recv,
            5,
            false,
            false,
        ),
        (
            "SEND does not see the peer's messages",
            send,
            2,
            false,
            false,
        ),
        (
            "SEND does not see the consumed ring's head",
            send,
            0,
            false,
            false,
        ),
        ("SEND writes its head", send, 3, true, true),
        ("SEND cannot move the peer's tail", send, 4, true, false),
        ("SEND writes its slots", send, 5, true, true),
    ];
    for (what, rights, page, write, allowed) in cases {
        let code = probe(rights, page, write)?;
        let want = if allowed { 0 } else { FAULT_EXIT_CODE };
        check(
            &format!("{what}: child exit {code:#x}, want {want:#x}"),
            code == want,
        )?;
    }
    Ok(())
}

/// A channel token's bytes, for raw calls.
fn tok(c: Cap) -> Result<[u8; 64], String> {
    Ok(c.token().map_err(|e| format!("{e:?}"))?.to_bytes())
}

/// A page grant over the channel whose (fresh) token is `fresh` finds no receiver.
fn grant_goes_nowhere(fresh: &[u8; 64], what: &str) -> Outcome {
    let m = mem::Shared::new(4096).map_err(|e| format!("{e:?}"))?;
    let r = Rights::READ.bits();
    expect(
        what,
        sys(
            Syscall::GrantCreate,
            [m.addr(), 4096, r, fresh.as_ptr() as u64, 0, 0],
        ),
        Err(Error::NoPeer),
    )
}

pub fn revoke_takes_the_pages() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "revoked", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(&mut ch, &mut buf, "the child's ready")?;
    a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    // The revoked child is alive (it sleeps), but no longer the channel's peer.
    let fresh = tok(a)?;
    grant_goes_nowhere(&fresh, "a grant after revoke goes to nobody")?;
    let (x, _y) = chan::create().map_err(|e| format!("{e:?}"))?;
    let xt = tok(x)?;
    expect(
        "a token passed after revoke goes to nobody",
        sys(
            Syscall::CapSend,
            [
                fresh.as_ptr() as u64,
                xt.as_ptr() as u64,
                Rights::SEND.bits(),
                0,
                0,
                0,
            ],
        ),
        Err(Error::NoPeer),
    )?;
    expect(
        "the revoked child faults on its old pages",
        process::wait(pid),
        Ok(FAULT_EXIT_CODE),
    )
}

pub fn revoke_races_attach() -> Outcome {
    // The child attaches in a loop while we revoke: whatever the interleaving, once
    // revoke returns the child is not our peer (a grant finds nobody), and its
    // attaches fail from then on.
    for round in 0..20 {
        let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
        let pid = chan::spawn_with_cap("usertests", "attach-loop", b, Rights::SEND | Rights::RECV)
            .map_err(|e| format!("{e:?}"))?;
        let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
        let mut buf = [0u8; 8];
        recv_within(&mut ch, &mut buf, "attach-loop's ready")?;
        a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
        let fresh = tok(a)?;
        grant_goes_nowhere(
            &fresh,
            &format!("round {round}: a grant after revoke goes to nobody"),
        )?;
        expect(
            &format!("round {round}: the child's attaches are refused after revoke"),
            process::wait(pid),
            Ok(0),
        )?;
    }
    Ok(())
}

pub fn revoke_after_a_silent_publish_says_denied() -> Outcome {
    // The peer sleeps in recv; we move our head without waking it, then revoke: its
    // wake-up must say Denied (its pages are gone), not "a message is there".
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap(
        "usertests",
        "recv-until-denied",
        b,
        Rights::SEND | Rights::RECV,
    )
    .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(&mut ch, &mut buf, "the peer's ready")?;
    time::sleep_ms(20); // it is asleep in msg_recv by now
    let base = attach_raw(&ch.token()).map_err(|e| format!("{e:?}"))?;
    // End A produces ring 0: its head is the first word of page 0.
    zen_std::testing::poke_u32(base, 1);
    a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    expect("the peer's recv said Denied", process::wait(pid), Ok(0))
}

pub fn revoke_while_the_peer_maps_and_faults() -> Outcome {
    // Both on CPU 0: the peer is preempted inside a long map (holding its address
    // space) while we revoke (taking its holdings, then waiting for its space); then
    // it faults. Its end must not spin with interrupts off on the holdings we hold.
    let code = run_child("revoke-vs-fault")?;
    check(
        &format!("revoker and faulting peer both finished (exit {code})"),
        code == 0,
    )
}

pub fn tokens_go_to_the_receiver() -> Outcome {
    // C holds SEND|RECV on end B and attaches first; S holds only SEND there and
    // attaches last. A token we pass is for the one that reads what we send: C.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let c = chan::spawn_with_cap("usertests", "receive-cap", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(&mut ch, &mut buf, "the receiver's ready")?;
    let s = chan::spawn_with_cap("usertests", "send-only", b, Rights::SEND)
        .map_err(|e| format!("{e:?}"))?;
    recv_within(&mut ch, &mut buf, "the sender's ready")?;
    let (x, _y) = chan::create().map_err(|e| format!("{e:?}"))?;
    let slot = x
        .send_over(&ch, Rights::SEND)
        .map_err(|e| format!("cap_send: {e:?}"))?;
    ch.send(&[slot.0 as u8]).map_err(|e| format!("{e:?}"))?;
    expect("the receiver got the token", process::wait(c), Ok(0))?;
    expect("the send-only holder got nothing", process::wait(s), Ok(0))
}

pub fn attach_twice_is_one_holding() -> Outcome {
    let (a, _b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let t = tok(a)?;
    let attach = || sys(Syscall::ChanAttach, [t.as_ptr() as u64, 0, 0, 0, 0, 0]);
    let base = attach().map_err(|e| format!("attach: {e:?}"))?;
    let before = crate::usage_settled()?;
    for i in 0..500 {
        expect(&format!("attach {i} again"), attach(), Ok(base))?;
    }
    crate::usage_back(before, "500 attaches of one end")?;
    // Channel pages are not `map` memory: unmapping them is refused (they stay with
    // their holding until exit or revoke).
    for p in 0..CHANNEL_PAGES as u64 {
        expect(
            &format!("unmap of channel page {p}"),
            sys(Syscall::Unmap, [base + p * 4096, 4096, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    Ok(())
}

pub fn shutdown_needs_the_system_token() -> Outcome {
    // A process without the token: refused, and the machine keeps running.
    check(
        "a child without the system token cannot power off",
        run_child("shutdown")? == 0,
    )?;
    let Some(sys_cap) = chan::system_cap() else {
        // Not init (run from the shell): nothing more to check here.
        return Ok(());
    };
    let rights = sys_cap.rights().map_err(|e| format!("{e:?}"))?;
    check(
        "init's system token has POWER, DEVICE, AUDIT and GRANT",
        rights == Rights::POWER | Rights::DEVICE | Rights::AUDIT | Rights::GRANT,
    )?;
    // Passed on without POWER: still refused.
    let pid = chan::spawn_with_cap("usertests", "shutdown", sys_cap, Rights::GRANT)
        .map_err(|e| format!("{e:?}"))?;
    expect("a system token without POWER", process::wait(pid), Ok(0))?;
    // A forged one.
    let mut t = sys_cap.token().map_err(|e| format!("{e:?}"))?;
    t.token.mac[0] ^= 1;
    let b = t.to_bytes();
    expect(
        "a forged system token",
        sys(Syscall::Shutdown, [1, b.as_ptr() as u64, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    let mut t = sys_cap.token().map_err(|e| format!("{e:?}"))?;
    t.token.rights |= Rights::DESTROY.bits();
    let b = t.to_bytes();
    expect(
        "a system token with made-up rights",
        sys(Syscall::Shutdown, [1, b.as_ptr() as u64, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    // A channel token is not a system token.
    let (c, _) = chan::create().map_err(|e| format!("{e:?}"))?;
    let ct = tok(c)?;
    expect(
        "a channel token",
        sys(Syscall::Shutdown, [1, ct.as_ptr() as u64, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    expect(
        "no token at all",
        sys(Syscall::Shutdown, [1, 0, 0, 0, 0, 0]),
        Err(Error::BadAddress),
    )?;
    let _ = spawn;
    Ok(())
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub fn child(mode: &str, arg: &str) -> Option<i32> {
    Some(match mode {
        "probe" => {
            let mut w = arg.split(' ').skip(1);
            let page = w.next().and_then(|p| p.parse::<u64>().ok()).unwrap_or(99);
            let write = w.next() == Some("write");
            let t = match Cap(0).token() {
                Ok(t) => t,
                Err(_) => return Some(10),
            };
            let Ok(base) = attach_raw(&t) else {
                return Some(11);
            };
            let at = base + page * 4096;
            if write {
                probe_write(at);
            } else {
                let _ = probe_read(at);
            }
            0
        }
        "revoked" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            // Attaching again gives the same range (one holding per end).
            let t = ch.token();
            let base = attach_raw(&t).ok();
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            // Blocks (raw, so nothing touches the pages) until the parent revokes:
            // then the kernel wakes us with Denied.
            let tb = t.to_bytes();
            if sys(Syscall::MsgRecv, [tb.as_ptr() as u64, 0, 0, 0, 0, 0]) != Err(Error::Denied) {
                return Some(12);
            }
            // Stay alive a while (the parent checks we are no longer its peer), then
            // touch the old pages: they must be gone.
            time::sleep_ms(100);
            match base {
                Some(b) => {
                    let _ = probe_read(b + 4096);
                    20
                }
                None => 13,
            }
        }
        "shutdown" => (process::shutdown(0) != Error::Denied) as i32,
        "attach-loop" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let t = ch.token();
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            // Until refused (the parent revokes), at most a few seconds.
            let t0 = time::uptime_ms();
            while attach_raw(&t).is_ok() {
                if time::uptime_ms() > t0 + 5000 {
                    return Some(12);
                }
            }
            // Still refused a little later, and alive while the parent checks.
            time::sleep_ms(20);
            (attach_raw(&t) != Err(Error::Denied)) as i32
        }
        "recv-until-denied" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            let mut buf = [0u8; 8];
            (ch.recv(&mut buf) != Err(Error::Denied)) as i32
        }
        "revoke-vs-fault" => {
            let _ = process::set_cpu(0);
            let Ok((a, b)) = chan::create() else {
                return Some(10);
            };
            let Ok(pid) = chan::spawn_with_cap(
                "usertests",
                "map-then-fault",
                b,
                Rights::SEND | Rights::RECV,
            ) else {
                return Some(11);
            };
            let Ok(mut ch) = Channel::attach(a) else {
                return Some(12);
            };
            let mut buf = [0u8; 8];
            if recv_within(&mut ch, &mut buf, "ready").is_err() {
                return Some(13);
            }
            if a.revoke().is_err() {
                return Some(14);
            }
            (process::wait(pid) != Ok(FAULT_EXIT_CODE)) as i32 * 15
        }
        "map-then-fault" => {
            let _ = process::set_cpu(0);
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            // Long enough to be preempted inside it.
            let r = mem::Region::new(48 << 20);
            drop(r);
            zen_std::testing::fault(zen_std::testing::Fault::Undefined);
            12
        }
        "send-only" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            time::sleep_ms(100);
            // Only the token it was started with.
            (chan::caps().len() != 1) as i32
        }
        _ => return None,
    })
}
