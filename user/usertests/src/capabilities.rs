//! Capabilities: forged, altered, stolen, stale and weak tokens are refused; tokens pass over channels with fewer rights.

use crate::*;

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn capabilities_are_checked() -> Outcome {
    let denied_before = mem::edges()
        .map_err(|e| format!("{e:?}"))?
        .iter()
        .filter(|e| e.kind == 5)
        .count();
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let good = a.token().map_err(|e| format!("{e:?}"))?;
    check(
        "creator holds every channel right",
        a.rights() == Ok(Rights::CHANNEL_ALL),
    )?;
    attach_raw(&good).map_err(|e| format!("attach with the real token: {e:?}"))?;
    // Forged and altered tokens.
    let mut forged = good;
    forged.token.mac[5] ^= 1;
    expect("a forged MAC", attach_raw(&forged), Err(Error::Denied))?;
    let mut t = good;
    t.token.rights = Rights::SEND.bits();
    expect("altered rights", attach_raw(&t), Err(Error::Denied))?;
    let mut t = good;
    t.binding.object ^= 1;
    expect(
        "altered object (the other end)",
        attach_raw(&t),
        Err(Error::Denied),
    )?;
    let mut t = good;
    t.binding.holder += 1;
    expect("altered holder", attach_raw(&t), Err(Error::Denied))?;
    let mut t = good;
    t.binding.generation += 1;
    expect("altered generation", attach_raw(&t), Err(Error::Denied))?;
    expect(
        "an all-zero token",
        attach_raw(&TokenSlot::ZERO),
        Err(Error::Denied),
    )?;
    for (n, p) in bad_pointers() {
        expect(
            &format!("token at {n}"),
            sys(Syscall::ChanAttach, [p, 0, 0, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    // By slot (its address in the token page): the kernel reads its own copy. A free
    // slot holds no token (refused like a made-up one); a live slot works as its bytes
    // do; an address inside a slot is not a slot, and is read as bytes.
    let free = (0..zen_abi::cap::TOKENS_PER_PAGE)
        .find(|&i| chan::Cap(i).token().is_err())
        .ok_or("no free slot")?;
    expect(
        "a free slot",
        sys(Syscall::ChanAttach, [chan::Cap(free).addr(), 0, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    check(
        "a live slot attaches",
        sys(Syscall::ChanAttach, [a.addr(), 0, 0, 0, 0, 0]).is_ok(),
    )?;
    expect(
        "inside a slot",
        sys(Syscall::ChanAttach, [a.addr() + 8, 0, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    // Stolen: another process presents our genuine token.
    check(
        "a stolen token is refused",
        run_child(&format!("steal {}", hex(&good.to_bytes())))? == 0,
    )?;
    // Fewer rights: a RECV-only copy cannot send; asking for more than held fails.
    let weak =
        chan::spawn_with_cap("usertests", "weak", b, Rights::RECV).map_err(|e| format!("{e:?}"))?;
    expect("a RECV-only holder cannot send", process::wait(weak), Ok(0))?;
    // Stale: after revocation the old token is dead, the refreshed one works.
    a.revoke().map_err(|e| format!("revoke: {e:?}"))?;
    expect("a revoked token", send_raw(&good), Err(Error::Denied))?;
    let fresh = a.token().map_err(|e| format!("{e:?}"))?;
    check(
        "revoke gave a new token",
        fresh.binding.generation == good.binding.generation + 1,
    )?;
    expect("the fresh token works", send_raw(&fresh), Ok(0))?;
    // A derived token without GRANT cannot be passed on.
    let (c, d) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "regrant", d, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let _ = c;
    expect("regrant child", process::wait(pid), Ok(0))?;
    expect(
        "cap_drop of an empty slot",
        sys(Syscall::CapDrop, [62, 0, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "cap_drop out of range",
        sys(Syscall::CapDrop, [u64::MAX, 0, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    let denied_after = mem::edges()
        .map_err(|e| format!("{e:?}"))?
        .iter()
        .filter(|e| e.kind == 5)
        .count();
    check(
        &format!("denials are in EDGE_REGISTRY ({denied_before} -> {denied_after})"),
        denied_after >= denied_before + 8,
    )
}

pub(crate) fn cap_send_over_a_channel() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let (x, _y) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "receive-cap", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(&mut ch, &mut buf, "the child's hello")?; // the child is attached
    let (ct, xt) = (
        ch.token().to_bytes(),
        x.token().map_err(|e| format!("{e:?}"))?.to_bytes(),
    );
    expect(
        "undefined rights bits",
        sys(
            Syscall::CapSend,
            [ct.as_ptr() as u64, xt.as_ptr() as u64, 1 << 40, 0, 0, 0],
        ),
        Err(Error::InvalidArgument),
    )?;
    let slot = x
        .send_over(&ch, Rights::SEND)
        .map_err(|e| format!("cap_send: {e:?}"))?;
    ch.send(&[slot.0 as u8]).map_err(|e| format!("{e:?}"))?;
    expect("child checked the passed token", process::wait(pid), Ok(0))
}

/// Child modes of this area; `None` if `mode` is not one of them (`words`: what
/// follows the mode).
pub(crate) fn child(mode: &str, words: &mut core::str::Split<'_, char>) -> Option<i32> {
    Some(match mode {
        "steal" => {
            let Some(bytes) = words.next().and_then(unhex) else {
                return Some(10);
            };
            let Ok(b) = <[u8; 64]>::try_from(bytes.as_slice()) else {
                return Some(11);
            };
            let t = TokenSlot::from_bytes(&b);
            (attach_raw(&t) != Err(Error::Denied) || send_raw(&t) != Err(Error::Denied)) as i32
        }
        "weak" => {
            let Ok(t) = Cap(0).token() else {
                return Some(10);
            };
            if Cap(0).rights() != Ok(Rights::RECV) {
                return Some(11);
            }
            if attach_raw(&t).is_err() {
                return Some(12);
            }
            (send_raw(&t) != Err(Error::Denied)) as i32
        }
        "regrant" => {
            // Holds SEND|RECV but not GRANT: passing it on to a child must fail.
            let r = chan::spawn_with_cap("usertests", "exit 0", Cap(0), Rights::RECV);
            (r != Err(Error::Denied)) as i32
        }
        "receive-cap" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            let mut buf = [0u8; 8];
            let Ok(1) = ch.recv(&mut buf) else {
                return Some(12);
            };
            let got = Cap(buf[0] as usize);
            match (got.token(), got.rights()) {
                (Ok(t), Ok(r)) if r == Rights::SEND && t.binding.holder == process::id() => {
                    // It works for this process: attach with it.
                    (attach_raw(&t).is_err()) as i32 * 13
                }
                _ => 14,
            }
        }
        _ => return None,
    })
}
