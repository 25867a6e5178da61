//! Page grants: zero-copy sharing, read-only grants enforced by the MMU, every bad argument, lying messages.

use crate::*;

/// The grant-peer child's answer to one message: its first byte (1: as expected).
pub(crate) fn grant_ask(
    ch: &mut Channel,
    mem: &mem::Shared,
    rights: Rights,
    cmd: &[u8],
) -> Result<Vec<u8>, String> {
    let what = core::str::from_utf8(cmd).unwrap_or("?");
    ch.send_grant(mem, rights, cmd)
        .map_err(|e| format!("send_grant {what}: {e:?}"))?;
    let mut buf = [0u8; 128];
    let n = recv_within(ch, &mut buf, what)?;
    Ok(buf[..n].to_vec())
}

/// Every kind of grant exchange with a `grant-peer` child, which exits at the end.
pub(crate) fn grant_session() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap("usertests", "grant-peer", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let mut buf = [0u8; 128];
    recv_within(&mut ch, &mut buf, "the peer's hello")?;

    // 64 KiB the peer reads in place: it answers with the sum of the bytes.
    let m = mem::Shared::new(64 << 10).map_err(|e| format!("{e:?}"))?;
    let pattern: Vec<u8> = (0..m.len()).map(|i| (i * 7 + i / 4096) as u8).collect();
    m.write(0, &pattern).map_err(|e| format!("{e:?}"))?;
    let sum: u64 = pattern.iter().map(|&x| x as u64).sum();
    let got = grant_ask(&mut ch, &m, Rights::READ, b"sum")?;
    check(
        &format!("the peer read the 64 KiB grant: {got:?}"),
        got == sum.to_le_bytes(),
    )?;
    // The same pages granted again (already shared): still the same memory.
    check(
        "a second grant of the same pages",
        grant_ask(&mut ch, &m, Rights::READ, b"sum")? == sum.to_le_bytes(),
    )?;
    // Read-only for the peer: zen-std refuses to write, and so does the MMU (a peer
    // that writes anyway dies of a page fault, below).
    check(
        "a READ grant is read-only",
        grant_ask(&mut ch, &m, Rights::READ, b"ro")? == [1],
    )?;
    // Writable: the peer's writes land in our own mapping, nothing is copied back.
    check(
        "the peer filled the writable grant",
        grant_ask(&mut ch, &m, Rights::READ | Rights::WRITE, b"fill")? == [1],
    )?;
    let mut back = vec![0u8; m.len()];
    m.read(0, &mut back);
    check(
        "its writes are in our pages",
        back.iter().all(|&x| x == 0x5a),
    )?;
    // A message cannot lie about a grant, and a grant maps once.
    check(
        "wrong length or rights, then once",
        grant_ask(&mut ch, &m, Rights::READ, b"once")? == [1],
    )?;
    // The sender unmaps before the peer maps: the pages live on in the grant.
    {
        let gone = mem::Shared::new(8192).map_err(|e| format!("{e:?}"))?;
        gone.write(0, &[0x33; 8192]).map_err(|e| format!("{e:?}"))?;
        ch.send_grant(&gone, Rights::READ, b"sum")
            .map_err(|e| format!("{e:?}"))?;
    }
    let n = recv_within(&mut ch, &mut buf, "sum after unmap")?;
    check(
        "pages outlive the sender's mapping",
        buf[..n] == (0x33u64 * 8192).to_le_bytes(),
    )?;
    // Never mapped: freed when the peer exits.
    grant_ask(&mut ch, &m, Rights::READ, b"ignore")?;

    // Nobody else may map a grant: not even the process that made it.
    let ct = ch.token().to_bytes();
    let id = sys(
        Syscall::GrantCreate,
        [
            m.addr(),
            4096,
            Rights::READ.bits(),
            ct.as_ptr() as u64,
            0,
            0,
        ],
    )
    .map_err(|e| format!("grant_create: {e:?}"))?;
    expect(
        "grant_map of a grant for another process",
        sys(
            Syscall::GrantMap,
            [id, 4096, Rights::READ.bits(), ct.as_ptr() as u64, 0, 0],
        ),
        Err(Error::Denied),
    )?;
    expect(
        "grant_map of no grant",
        sys(
            Syscall::GrantMap,
            [u64::MAX, 4096, 1, ct.as_ptr() as u64, 0, 0],
        ),
        Err(Error::Denied),
    )?;

    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("grant peer exit", process::wait(pid), Ok(0))
}

pub(crate) fn page_grants() -> Outcome {
    grant_session()?;
    let mut buf = [0u8; 8];
    // A peer that writes a read-only grant anyway dies of the fault, alone.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let pid = chan::spawn_with_cap(
        "usertests",
        "grant-write-ro",
        b,
        Rights::SEND | Rights::RECV,
    )
    .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    recv_within(&mut ch, &mut buf, "the writer's hello")?;
    let m = mem::Shared::new(4096).map_err(|e| format!("{e:?}"))?;
    ch.send_grant(&m, Rights::READ, b"")
        .map_err(|e| format!("{e:?}"))?;
    expect(
        "a write to a READ grant",
        process::wait(pid),
        Ok(FAULT_EXIT_CODE),
    )?;
    let mut w = [0u8; 8];
    m.read(0, &mut w);
    check("and changed nothing", w == [0; 8])
}

pub(crate) fn grant_errors() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let ct = a.token().map_err(|e| format!("{e:?}"))?.to_bytes();
    let m = mem::Shared::new(8192).map_err(|e| format!("{e:?}"))?;
    let create = |addr: u64, len: u64, rights: u64, tok: u64| {
        sys(Syscall::GrantCreate, [addr, len, rights, tok, 0, 0])
    };
    let (r, tok) = (Rights::READ.bits(), ct.as_ptr() as u64);
    // Nobody attached at the other end yet.
    let _ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    expect(
        "no peer",
        create(m.addr(), 4096, r, tok),
        Err(Error::NoPeer),
    )?;
    // A peer that stays attached until told to quit.
    let pid = chan::spawn_with_cap("usertests", "echo", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    // Its echo says it is attached.
    let mut ch = _ch;
    let mut buf = [0u8; 8];
    ch.send(b"hi").map_err(|e| format!("{e:?}"))?;
    recv_within(&mut ch, &mut buf, "echo")?;
    for (what, rights) in [
        ("no rights", 0),
        ("WRITE without READ", Rights::WRITE.bits()),
        ("SEND", Rights::SEND.bits()),
        ("undefined bits", 1 << 40),
    ] {
        expect(
            what,
            create(m.addr(), 4096, rights, tok),
            Err(Error::InvalidArgument),
        )?;
    }
    expect(
        "zero length",
        create(m.addr(), 0, r, tok),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "unaligned",
        create(m.addr() + 8, 8, r, tok),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "huge length",
        create(m.addr(), u64::MAX, r, tok),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "past the mapping",
        create(m.addr(), 1 << 26, r, tok),
        Err(Error::BadAddress),
    )?;
    let code = own_code() & !4095;
    for (what, addr) in [
        ("null", NULL),
        ("unmapped", UNMAPPED),
        ("program image", code),
        ("token page", zen_abi::syscall::TOKEN_PAGE),
        ("kernel", KERNEL),
        ("non-canonical", NON_CANONICAL),
    ] {
        expect(what, create(addr, 4096, r, tok), Err(Error::BadAddress))?;
    }
    // A channel's own pages are never granted on.
    let (x, _) = chan::create().map_err(|e| format!("{e:?}"))?;
    let base =
        attach_raw(&x.token().map_err(|e| format!("{e:?}"))?).map_err(|e| format!("{e:?}"))?;
    expect(
        "channel pages",
        create(base, 4096, r, tok),
        Err(Error::BadAddress),
    )?;
    // Tokens: a bad pointer, a forged one.
    for (what, p) in bad_pointers() {
        expect(what, create(m.addr(), 4096, r, p), Err(Error::BadAddress))?;
    }
    let mut forged = ct;
    forged[3] ^= 1;
    expect(
        "forged channel token",
        create(m.addr(), 4096, r, forged.as_ptr() as u64),
        Err(Error::Denied),
    )?;
    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("the peer exits", process::wait(pid), Ok(0))?;
    // Its end was attached to a process that is gone: no grant for nobody.
    expect(
        "grant to an exited peer",
        create(m.addr(), 4096, r, tok),
        Err(Error::NoPeer),
    )
}

/// A grant is an offer of its sender's pages while sender and receiver both live:
/// a sender that exits before the grant is mapped takes it along (so senders that
/// come and go cannot fill the grant table), and its pages come back.
pub(crate) fn grants_die_with_their_sender() -> Outcome {
    // One warm-up (first uses of kernel paths may allocate for good).
    for round in 0..2 {
        let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
        let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
        let before = usage_settled()?;
        let pid = chan::spawn_with_cap("usertests", "grant-exit", b, Rights::SEND | Rights::RECV)
            .map_err(|e| format!("spawn: {e:?}"))?;
        expect("the sender exits", process::wait(pid), Ok(0))?;
        let mut buf = [0u8; 16];
        let (n, g) = loop {
            if let Some(got) = ch.try_recv_grant(&mut buf).map_err(|e| format!("{e:?}"))? {
                break got;
            }
            chan::poll(&mut [&mut ch], 2000).map_err(|e| format!("poll: {e:?}"))?;
        };
        check("its message came", &buf[..n] == b"gone")?;
        let g = g.ok_or("the message names no grant")?;
        expect(
            "mapping the grant of a sender that exited",
            ch.accept(g).map(|m| m.len() as u64),
            Err(Error::Denied),
        )?;
        let _ = b.drop_token();
        if round == 1 {
            usage_back(before, "a dead sender's grant")?;
        }
    }
    Ok(())
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub(crate) fn child(mode: &str) -> Option<i32> {
    Some(match mode {
        "grant-exit" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let Ok(m) = mem::Shared::new(64 << 10) else {
                return Some(11);
            };
            if m.write(0, &[7; 4096]).is_err() || ch.send_grant(&m, Rights::READ, b"gone").is_err()
            {
                return Some(12);
            }
            0
        }
        "grant-peer" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"hello").is_err() {
                return Some(11);
            }
            let mut buf = [0u8; 96];
            loop {
                let Ok((n, g)) = ch.recv_grant(&mut buf) else {
                    return Some(12);
                };
                let cmd = &buf[..n];
                if cmd == b"quit" {
                    return Some(0);
                }
                let Some(g) = g else { return Some(13) };
                let reply: Vec<u8> = match cmd {
                    b"ignore" => vec![1],
                    b"sum" => match ch.accept(g) {
                        Ok(m) => {
                            let mut all = vec![0u8; m.len()];
                            m.read(0, &mut all);
                            all.iter()
                                .map(|&x| x as u64)
                                .sum::<u64>()
                                .to_le_bytes()
                                .to_vec()
                        }
                        Err(_) => vec![0],
                    },
                    b"ro" => match ch.accept(g) {
                        Ok(m) => {
                            vec![(!m.writable() && m.write(0, b"x") == Err(Error::Denied)) as u8]
                        }
                        Err(_) => vec![0],
                    },
                    b"fill" => match ch.accept(g) {
                        Ok(m) => vec![m.write(0, &vec![0x5a; m.len()]).is_ok() as u8],
                        Err(_) => vec![0],
                    },
                    b"once" => {
                        let tok = ch.token().to_bytes();
                        let raw = |len: u64, rights: u64| {
                            sys(
                                Syscall::GrantMap,
                                [g.id, len, rights, tok.as_ptr() as u64, 0, 0],
                            )
                        };
                        let lies = raw(g.len + 4096, g.rights) == Err(Error::InvalidArgument)
                            && raw(g.len, g.rights | Rights::WRITE.bits())
                                == Err(Error::InvalidArgument);
                        // Through another channel of ours: not the one it came on.
                        let other = chan::create().ok().and_then(|(x, y)| {
                            let c = Channel::attach(x).ok();
                            let _ = (x.drop_token(), y.drop_token());
                            c
                        });
                        let elsewhere =
                            other.is_some_and(|o| o.accept(g).err() == Some(Error::Denied));
                        let first = elsewhere && ch.accept(g).is_ok();
                        let again = ch.accept(g).err() == Some(Error::Denied);
                        vec![(lies && first && again) as u8]
                    }
                    _ => vec![0],
                };
                if ch.send(&reply).is_err() {
                    return Some(14);
                }
            }
        }
        "grant-pair" => match grant_session() {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("grant-pair: {why}");
                1
            }
        },
        "grant-write-ro" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let mut buf = [0u8; 8];
            if ch.send(b"hello").is_err() {
                return Some(11);
            }
            let Ok((_, Some(g))) = ch.recv_grant(&mut buf) else {
                return Some(12);
            };
            let Ok(m) = ch.accept(g) else {
                return Some(13);
            };
            // Past zen-std's check, straight at the page: the MMU must refuse.
            m.words()[0].store(1, core::sync::atomic::Ordering::Relaxed);
            14
        }
        _ => return None,
    })
}
