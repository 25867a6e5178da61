//! usertests (after xv6's): calls every system call with good and bad arguments (null,
//! unmapped, kernel and non-canonical addresses, huge lengths, wrong process ids) and
//! checks each result, then shuts the machine down with the verdict. Boot it as init
//! (`init=usertests` on the kernel command line) or `run usertests` from the shell.
//!
//! Output follows the kernel test protocol (`zen-test: start N`, `test NAME ... ok`,
//! `zen-test: done P passed, F failed`), so `cargo xtask test` reads it the same way.
//!
//! With an argument it is a helper child instead (see `child`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::{Rights, TokenSlot};
use zen_abi::syscall::{
    Syscall, FAULT_EXIT_CODE, KILLED_EXIT_CODE, MAX_IO, SYSCALL_COUNT, USER_END,
};
use zen_std::chan::{self, Cap, Channel};
use zen_std::prelude::*;
use zen_std::testing::{fault, raw_syscall, Fault};
use zen_std::{mem, process, thread, time, Error};

mod fpu;
mod fuzz;

zen_std::main!(main);

mod limits;
mod rights;
mod waits;

pub(crate) type Outcome = core::result::Result<(), String>;

/// Addresses no call may accept as a buffer.
pub(crate) const NULL: u64 = 0;
pub(crate) const UNMAPPED: u64 = 0x1000_0000;
pub(crate) const KERNEL: u64 = 0xffff_ffff_8000_0000;
pub(crate) const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
pub(crate) const NON_CANONICAL: u64 = USER_END;

pub(crate) fn sys(call: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    Error::from_ret(raw_syscall(call as u64, a))
}

pub(crate) fn expect(what: &str, got: Result<u64, Error>, want: Result<u64, Error>) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

pub(crate) fn check(what: &str, ok: bool) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(String::from(what))
    }
}

/// Every bad buffer address a call must refuse with BadAddress.
fn bad_pointers() -> [(&'static str, u64); 6] {
    [
        ("null", NULL),
        ("unmapped", UNMAPPED),
        ("kernel image", KERNEL),
        ("direct map", DIRECT_MAP),
        ("non-canonical", NON_CANONICAL),
        ("top of memory", u64::MAX - 4),
    ]
}

pub(crate) fn spawn(name: &str, arg: &str) -> Result<u32, String> {
    process::spawn(name, arg).map_err(|e| format!("spawn {name} {arg}: {}", e.as_str()))
}

pub(crate) fn run_child(arg: &str) -> Result<u64, String> {
    let pid = spawn("usertests", arg)?;
    process::wait(pid).map_err(|e| format!("wait {pid}: {}", e.as_str()))
}

fn own_code() -> u64 {
    main as fn() -> i32 as usize as u64
}

// ---- the tests -------------------------------------------------------------------

fn unknown_calls() -> Outcome {
    for nr in [
        SYSCALL_COUNT,
        SYSCALL_COUNT + 1,
        1000,
        u32::MAX as u64,
        u64::MAX,
    ] {
        expect(
            &format!("call {nr}"),
            Error::from_ret(raw_syscall(nr, [0; 6])),
            Err(Error::NoSuchCall),
        )?;
    }
    Ok(())
}

fn getpid() -> Outcome {
    let pid = sys(Syscall::GetPid, [0; 6]).map_err(|e| format!("{e:?}"))?;
    check("pid is positive", pid > 0)?;
    let list = process::list().map_err(|e| format!("ps: {e:?}"))?;
    check(
        "ps lists this pid as usertests",
        list.iter()
            .any(|p| p.pid as u64 == pid && p.name() == "usertests"),
    )
}

fn write() -> Outcome {
    let msg = b"usertests: write ok\n";
    expect(
        "write to 1",
        sys(
            Syscall::Write,
            [1, msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0],
        ),
        Ok(msg.len() as u64),
    )?;
    expect(
        "write to 2",
        sys(Syscall::Write, [2, msg.as_ptr() as u64, 0, 0, 0, 0]),
        Ok(0),
    )?;
    for fd in [0, 3, u64::MAX] {
        expect(
            &format!("write to fd {fd}"),
            sys(Syscall::Write, [fd, msg.as_ptr() as u64, 1, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    for (name, p) in bad_pointers() {
        expect(
            &format!("write from {name}"),
            sys(Syscall::Write, [1, p, 8, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    expect(
        "write huge length",
        sys(Syscall::Write, [1, msg.as_ptr() as u64, 1 << 40, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "write just over MAX_IO",
        sys(
            Syscall::Write,
            [1, msg.as_ptr() as u64, MAX_IO + 1, 0, 0, 0],
        ),
        Err(Error::InvalidArgument),
    )?;
    // Starts in this program's memory, runs off its end.
    expect(
        "write running into unmapped",
        sys(Syscall::Write, [1, msg.as_ptr() as u64, MAX_IO, 0, 0, 0]),
        Err(Error::BadAddress),
    )
}

fn read() -> Outcome {
    let mut buf = [0u8; 16];
    let p = buf.as_mut_ptr() as u64;
    for fd in [1, 2, 7, u64::MAX] {
        expect(
            &format!("read fd {fd}"),
            sys(Syscall::Read, [fd, p, 16, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    expect(
        "read 0 bytes",
        sys(Syscall::Read, [0, p, 0, 0, 0, 0]),
        Ok(0),
    )?;
    for (name, bad) in bad_pointers() {
        expect(
            &format!("read into {name}"),
            sys(Syscall::Read, [0, bad, 16, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    expect(
        "read into own code (read-only)",
        sys(Syscall::Read, [0, own_code(), 16, 0, 0, 0]),
        Err(Error::BadAddress),
    )
}

fn time_and_yield() -> Outcome {
    let t0 = time::uptime_ms();
    expect("yield", sys(Syscall::Yield, [0; 6]), Ok(0))?;
    expect(
        "sleep 50 ms",
        sys(Syscall::Sleep, [50, 0, 0, 0, 0, 0]),
        Ok(0),
    )?;
    let t1 = time::uptime_ms();
    check(
        &format!("slept at least 50 ms ({t0} -> {t1})"),
        t1 >= t0 + 50,
    )?;
    expect("sleep 0", sys(Syscall::Sleep, [0; 6]), Ok(0))
}

fn map_unmap() -> Outcome {
    {
        let mut r = mem::Region::new(3 * 4096 - 100).map_err(|e| format!("map: {e:?}"))?;
        check("mapped memory is zero", r.iter().all(|&b| b == 0))?;
        check("rounded up to pages", r.len() == 3 * 4096)?;
        r[0] = 1;
        r[3 * 4096 - 1] = 2;
        check(
            "mapped memory is writable",
            r[0] == 1 && r[3 * 4096 - 1] == 2,
        )?;
        let a = r.addr();
        expect(
            "unmap unaligned",
            sys(Syscall::Unmap, [a + 1, 4096, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        expect(
            "unmap past the mapping",
            sys(Syscall::Unmap, [a, 1 << 30, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        expect(
            "unmap zero bytes",
            sys(Syscall::Unmap, [a, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        // The kernel sees the mapping too.
        expect(
            "write from mapped memory",
            sys(Syscall::Write, [1, a + 4096, 0, 0, 0, 0]),
            Ok(0),
        )?;
    }
    // Region's drop unmapped it; map once more to learn a fresh address, then unmap
    // by hand and check the kernel no longer reads it.
    let a = sys(Syscall::Map, [4096, 0, 0, 0, 0, 0]).map_err(|e| format!("map: {e:?}"))?;
    expect("unmap", sys(Syscall::Unmap, [a, 4096, 0, 0, 0, 0]), Ok(0))?;
    expect(
        "unmap twice",
        sys(Syscall::Unmap, [a, 4096, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "write from unmapped",
        sys(Syscall::Write, [1, a, 1, 0, 0, 0]),
        Err(Error::BadAddress),
    )?;
    expect(
        "map 0 bytes",
        sys(Syscall::Map, [0; 6]),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "map 1 TiB",
        sys(Syscall::Map, [1 << 40, 0, 0, 0, 0, 0]),
        Err(Error::NoMemory),
    )?;
    expect(
        "map u64::MAX",
        sys(Syscall::Map, [u64::MAX, 0, 0, 0, 0, 0]),
        Err(Error::NoMemory),
    )?;
    for (name, p) in [
        ("image", own_code() & !4095),
        ("stack", zen_abi::syscall::USER_STACK_TOP - 4096),
        ("kernel", KERNEL),
    ] {
        expect(
            &format!("unmap {name}"),
            sys(Syscall::Unmap, [p, 4096, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    Ok(())
}

fn heap() -> Outcome {
    // Grows the heap through `map` several times over.
    let mut v: Vec<u64> = Vec::new();
    for i in 0..300_000u64 {
        v.push(i * 3);
    }
    check(
        "a 2.4 MB vector holds its values",
        v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3),
    )?;
    let boxes: Vec<Box<[u8]>> = (1..200)
        .map(|n| vec![n as u8; n * 37].into_boxed_slice())
        .collect();
    check(
        "many boxes keep their contents",
        boxes
            .iter()
            .enumerate()
            .all(|(i, b)| b.iter().all(|&x| x == (i + 1) as u8)),
    )
}

fn spawn_and_wait() -> Outcome {
    check("exit code of a child", run_child("exit 7")? == 7)?;
    check(
        "a large exit code",
        run_child("exit 123456789")? == 123_456_789,
    )?;
    check(
        "a child sees its argument",
        run_child("arg hello world")? == 0,
    )?;
    let name = b"nope";
    expect(
        "spawn missing program",
        sys(Syscall::Spawn, [name.as_ptr() as u64, 4, 0, 0, 0, 0]),
        Err(Error::NoSuchProgram),
    )?;
    let long = [b'a'; 40];
    expect(
        "spawn name too long",
        sys(Syscall::Spawn, [long.as_ptr() as u64, 40, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    let bad = [0xffu8, 0xfe];
    expect(
        "spawn non-UTF-8 name",
        sys(Syscall::Spawn, [bad.as_ptr() as u64, 2, 0, 0, 0, 0]),
        Err(Error::InvalidArgument),
    )?;
    for (n, p) in bad_pointers() {
        expect(
            &format!("spawn name at {n}"),
            sys(Syscall::Spawn, [p, 4, 0, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
        let prog = b"usertests";
        expect(
            &format!("spawn arg at {n}"),
            sys(Syscall::Spawn, [prog.as_ptr() as u64, 9, p, 4, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    let prog = b"usertests";
    expect(
        "spawn huge argument",
        sys(
            Syscall::Spawn,
            [prog.as_ptr() as u64, 9, prog.as_ptr() as u64, 1 << 40, 0, 0],
        ),
        Err(Error::InvalidArgument),
    )?;
    let me = process::id() as u64;
    for pid in [me, 0, 9999, u32::MAX as u64, u64::MAX] {
        expect(
            &format!("wait {pid}"),
            sys(Syscall::Wait, [pid, 0, 0, 0, 0, 0]),
            Err(Error::NoSuchProcess),
        )?;
    }
    check(
        "a child cannot wait for its parent",
        run_child(&format!("wait {me}"))? == 0,
    )?;
    // A reaped child is gone.
    let pid = spawn("usertests", "exit 0")?;
    expect("wait", process::wait(pid), Ok(0))?;
    expect("wait again", process::wait(pid), Err(Error::NoSuchProcess))
}

fn getarg() -> Outcome {
    let mut small = [0u8; 2];
    // Our own argument is empty: fits anything.
    expect(
        "getarg",
        sys(Syscall::GetArg, [small.as_mut_ptr() as u64, 2, 0, 0, 0, 0]),
        Ok(0),
    )?;
    check(
        "child: getarg too small, bad pointers",
        run_child("getarg-errors")? == 0,
    )
}

fn faults_kill_only_the_process() -> Outcome {
    let before = mem::edges().map_err(|e| format!("{e:?}"))?.len();
    for mode in [
        "fault null",
        "fault kernel",
        "fault gp",
        "fault ud",
        "fault code",
        "fault stack",
    ] {
        let code = run_child(mode)?;
        check(
            &format!("{mode}: exit code {code:#x}, want FAULT_EXIT_CODE"),
            code == FAULT_EXIT_CODE,
        )?;
    }
    let after = mem::edges().map_err(|e| format!("{e:?}"))?;
    check(
        &format!(
            "each fault is in EDGE_REGISTRY ({} -> {})",
            before,
            after.len()
        ),
        after.len() >= before + 6,
    )?;
    let pf = after[before..].iter().filter(|e| e.kind == 1).count();
    check(&format!("page faults recorded: {pf}"), pf >= 4)
}

fn kill() -> Outcome {
    for mode in ["spin", "sleep"] {
        let pid = spawn("usertests", mode)?;
        time::sleep_ms(30);
        process::kill(pid).map_err(|e| format!("kill {mode}: {e:?}"))?;
        let code = process::wait(pid).map_err(|e| format!("wait: {e:?}"))?;
        check(
            &format!("killed {mode} child: exit code {code:#x}"),
            code == KILLED_EXIT_CODE,
        )?;
    }
    expect(
        "kill init",
        sys(Syscall::Kill, [1, 0, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    for pid in [9999, u64::MAX] {
        expect(
            &format!("kill {pid}"),
            sys(Syscall::Kill, [pid, 0, 0, 0, 0, 0]),
            Err(Error::NoSuchProcess),
        )?;
    }
    let me = process::id();
    check(
        "a child cannot kill its parent",
        run_child(&format!("kill {me}"))? == 0,
    )
}

fn listings() -> Outcome {
    let mut one = [0u8; 1];
    for call in [Syscall::Ps, Syscall::Programs, Syscall::Edges] {
        if call != Syscall::Edges || !mem::edges().map_err(|e| format!("{e:?}"))?.is_empty() {
            expect(
                &format!("{call:?} into 1 byte"),
                sys(call, [one.as_mut_ptr() as u64, 1, 0, 0, 0, 0]),
                Err(Error::BufferTooSmall),
            )?;
        }
        for (n, p) in bad_pointers() {
            expect(
                &format!("{call:?} into {n}"),
                sys(call, [p, 4096, 0, 0, 0, 0]),
                Err(Error::BadAddress),
            )?;
        }
        expect(
            &format!("{call:?} into own code"),
            sys(call, [own_code(), 4096, 0, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    let progs = process::programs().map_err(|e| format!("{e:?}"))?;
    check(
        &format!("programs {progs:?}"),
        ["init", "shell", "usertests"]
            .iter()
            .all(|p| progs.iter().any(|q| q == p)),
    )?;
    let m = mem::info().map_err(|e| format!("{e:?}"))?;
    check(
        "meminfo: free <= total, both positive",
        m.free_frames > 0 && m.free_frames <= m.total_frames,
    )?;
    for (n, p) in bad_pointers() {
        expect(
            &format!("meminfo into {n}"),
            sys(Syscall::MemInfo, [p, 0, 0, 0, 0, 0]),
            Err(Error::BadAddress),
        )?;
    }
    Ok(())
}

fn no_leaks() -> Outcome {
    // Warm up (first use of kernel paths may allocate lazily), then measure.
    run_child("exit 0")?;
    let before = mem::info().map_err(|e| format!("{e:?}"))?.free_frames;
    for mode in ["exit 0", "fault null", "map", "arg x"] {
        run_child(mode)?;
    }
    let pid = spawn("usertests", "spin")?;
    time::sleep_ms(20);
    let _ = process::kill(pid);
    let _ = process::wait(pid);
    let after = mem::info().map_err(|e| format!("{e:?}"))?.free_frames;
    check(
        &format!("free frames back where they were: {before} -> {after}"),
        before == after,
    )
}

fn process_limit() -> Outcome {
    let mut pids = Vec::new();
    let mut refused = None;
    for _ in 0..100 {
        match process::spawn("usertests", "sleep") {
            Ok(p) => pids.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    for &p in &pids {
        let _ = process::kill(p);
    }
    for &p in &pids {
        let _ = process::wait(p);
    }
    check(
        &format!(
            "the process table fills up cleanly ({} started, then {refused:?})",
            pids.len()
        ),
        refused == Some(Error::TooManyProcesses),
    )?;
    check("and works again after", run_child("exit 5")? == 5)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn attach_raw(t: &TokenSlot) -> Result<u64, Error> {
    let b = t.to_bytes();
    sys(Syscall::ChanAttach, [b.as_ptr() as u64, 0, 0, 0, 0, 0])
}

fn send_raw(t: &TokenSlot) -> Result<u64, Error> {
    let b = t.to_bytes();
    sys(Syscall::MsgSend, [b.as_ptr() as u64, 0, 0, 0, 0, 0])
}

/// Receives with a deadline, so a broken peer fails the test instead of hanging it.
pub(crate) fn recv_within(ch: &mut Channel, buf: &mut [u8], what: &str) -> Result<usize, String> {
    match chan::poll(&mut [ch], 5000) {
        Ok(0) => {}
        other => return Err(format!("{what}: nothing arrived ({other:?})")),
    }
    match ch.try_recv(buf) {
        Ok(Some(n)) => Ok(n),
        other => Err(format!("{what}: poll said ready, recv gave {other:?}")),
    }
}

fn ipc_round_trip() -> Outcome {
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

fn poll_many() -> Outcome {
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

fn capabilities_are_checked() -> Outcome {
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

fn cap_send_over_a_channel() -> Outcome {
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

/// The grant-peer child's answer to one message: its first byte (1: as expected).
fn grant_ask(
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
fn grant_session() -> Outcome {
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
        sys(Syscall::GrantMap, [id, 4096, Rights::READ.bits(), 0, 0, 0]),
        Err(Error::Denied),
    )?;
    expect(
        "grant_map of no grant",
        sys(Syscall::GrantMap, [u64::MAX, 4096, 1, 0, 0, 0]),
        Err(Error::Denied),
    )?;

    ch.send(b"quit").map_err(|e| format!("{e:?}"))?;
    expect("grant peer exit", process::wait(pid), Ok(0))
}

fn page_grants() -> Outcome {
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

/// (free frames, kernel heap blocks) once the dust has settled: an exited process's
/// last frames and blocks are freed when its thread has switched away on its CPU, just
/// after `wait` returns.
pub(crate) fn usage_settled() -> Result<(u64, u64), String> {
    time::sleep_ms(20);
    let m = mem::info().map_err(|e| format!("{e:?}"))?;
    Ok((m.free_frames, m.heap_allocations))
}

/// Waits (up to a second) until free frames are back to at least, and kernel heap
/// blocks to at most, what they were in `before`; fails naming `what` otherwise.
pub(crate) fn usage_back(before: (u64, u64), what: &str) -> Outcome {
    let back = |now: (u64, u64)| now.0 >= before.0 && now.1 <= before.1;
    let mut after = usage_settled()?;
    for _ in 0..50 {
        if back(after) {
            break;
        }
        after = usage_settled()?;
    }
    check(
        &format!(
            "after {what}: free frames {} -> {}, kernel heap blocks {} -> {}",
            before.0, after.0, before.1, after.1
        ),
        back(after),
    )
}

/// Runs child `mode` and checks that every frame and kernel heap block it used is
/// free again afterwards (after one warm-up run: first uses of kernel paths may
/// allocate for good). Free frames may also rise and blocks fall (something older was
/// freed meanwhile), never the other way.
fn frames_come_back(mode: &str) -> Outcome {
    check(&format!("warm-up {mode}"), run_child(mode)? == 0)?;
    let before = usage_settled()?;
    check(&format!("child {mode}"), run_child(mode)? == 0)?;
    usage_back(before, mode)
}

fn ipc_and_sleep_leak_nothing() -> Outcome {
    // A child runs a whole grant session with its own peer; afterwards every frame
    // either of them touched (shared, granted and never mapped, unmapped by the sender
    // first) must be free again. The same for a plain channel session.
    frames_come_back("grant-pair")?;
    frames_come_back("pair-echo")?;
    // A process killed in a long sleep: nothing of it may wait for the wake-up tick.
    frames_come_back("kill-sleeper")
}

fn grant_errors() -> Outcome {
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

fn threads() -> Outcome {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use zen_std::sync::Arc;
    // Four threads share a counter with the main thread; each returns its own code.
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for n in 0..4u64 {
        let c = counter.clone();
        let h = thread::spawn(move || {
            for i in 0..500 {
                c.fetch_add(1, SeqCst);
                if i % 100 == n {
                    process::yield_now();
                }
            }
            n * 10 + 1
        })
        .map_err(|e| format!("spawn thread {n}: {e:?}"))?;
        handles.push(h);
    }
    let ids: Vec<u64> = handles.iter().map(|h| h.id()).collect();
    check(
        &format!("distinct thread ids {ids:?}"),
        ids.iter().all(|&i| i > 1) && (1..ids.len()).all(|i| !ids[..i].contains(&ids[i])),
    )?;
    for (n, h) in handles.into_iter().enumerate() {
        expect(&format!("join thread {n}"), h.join(), Ok(n as u64 * 10 + 1))?;
    }
    check(
        &format!("every increment landed: {}", counter.load(SeqCst)),
        counter.load(SeqCst) == 2000,
    )?;
    // One thread blocks in the kernel on a channel while the other runs: an echo
    // between two threads of one process.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let echo = thread::spawn(move || {
        let Ok(mut ch) = Channel::attach(b) else {
            return 1;
        };
        let mut buf = [0u8; 64];
        match ch.recv(&mut buf) {
            Ok(n) if ch.send(&buf[..n]).is_ok() => 0,
            _ => 2,
        }
    })
    .map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    ch.send(b"between threads").map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 64];
    let n = recv_within(&mut ch, &mut buf, "echo thread")?;
    check(
        "echoed by the other thread",
        &buf[..n] == b"between threads",
    )?;
    expect("echo thread", echo.join(), Ok(0))?;
    // Bad arguments.
    let create = |rip: u64, rsp: u64| sys(Syscall::ThreadCreate, [rip, rsp, 0, 0, 0, 0]);
    expect(
        "kernel rip",
        create(KERNEL, 0x1000),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "non-canonical rip",
        create(NON_CANONICAL, 0x1000),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "kernel stack",
        create(own_code(), DIRECT_MAP),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "join of no thread",
        thread::join_id(999),
        Err(Error::NoSuchProcess),
    )?;
    expect(
        "join of itself",
        thread::join_id(1),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "join of a huge id",
        thread::join_id(u64::MAX),
        Err(Error::NoSuchProcess),
    )?;
    // An exit is reported once.
    let h = thread::spawn(|| 5).map_err(|e| format!("{e:?}"))?;
    let id = h.id();
    expect("join", h.join(), Ok(5))?;
    expect("join again", thread::join_id(id), Err(Error::NoSuchProcess))?;
    // The thread limit (16 with this one) is clean, and lifts again.
    let go = Arc::new(AtomicBool::new(false));
    let mut parked = Vec::new();
    let refused = loop {
        let g = go.clone();
        match thread::spawn(move || {
            while !g.load(SeqCst) {
                process::yield_now();
            }
            0
        }) {
            Ok(h) => parked.push(h),
            Err(e) => break e,
        }
        if parked.len() > 40 {
            break Error::InvalidArgument;
        }
    };
    go.store(true, SeqCst);
    let started = parked.len();
    for h in parked {
        expect("join a parked thread", h.join(), Ok(0))?;
    }
    check(
        &format!("thread limit: {started} started, then {refused:?}"),
        started == 15 && refused == Error::NoMemory,
    )?;
    expect(
        "a thread after the limit lifted",
        thread::spawn(|| 3).and_then(|h| h.join()),
        Ok(3),
    )?;
    // Moving a process between CPUs: not to a CPU that is not there, not with threads.
    // (`cargo xtask test` boots usertests on two CPUs; on one, CPU 1 is not there.)
    let two_cpus = sys(Syscall::SetCpu, [1, 0, 0, 0, 0, 0]);
    for cpu in [64, 4096, u64::MAX] {
        expect(
            &format!("set_cpu({cpu})"),
            sys(Syscall::SetCpu, [cpu, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
    }
    if two_cpus == Ok(0) {
        expect(
            "set_cpu(0)",
            sys(Syscall::SetCpu, [0, 0, 0, 0, 0, 0]),
            Ok(0),
        )?;
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let h = thread::spawn(move || {
            while !g.load(SeqCst) {
                process::yield_now();
            }
            0
        })
        .map_err(|e| format!("{e:?}"))?;
        expect(
            "set_cpu with two threads",
            sys(Syscall::SetCpu, [1, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )?;
        go.store(true, SeqCst);
        expect("join", h.join(), Ok(0))?;
    } else {
        expect(
            "set_cpu(1) on one CPU",
            two_cpus,
            Err(Error::InvalidArgument),
        )?;
        println!("usertests: one CPU, set_cpu between CPUs not tried");
    }
    // Two threads wait for one child: one gets its code, the other NoSuchProcess,
    // neither hangs.
    let pid = spawn("usertests", "nap")?;
    let other = thread::spawn(move || match process::wait(pid) {
        Ok(4) => 1,
        Err(Error::NoSuchProcess) => 2,
        _ => 3,
    })
    .map_err(|e| format!("{e:?}"))?;
    let mine = match process::wait(pid) {
        Ok(4) => 1,
        Err(Error::NoSuchProcess) => 2,
        _ => 3,
    };
    let theirs = other.join().map_err(|e| format!("{e:?}"))?;
    check(
        &format!("two waiters for one child: {mine} and {theirs}"),
        mine + theirs == 3 && mine != theirs,
    )?;
    // Ending a process from a thread, a fault in a thread, the last thread's code.
    check("process::exit in a thread", run_child("thread-exit")? == 7)?;
    check(
        "a fault in a thread ends the process",
        run_child("thread-fault")? == FAULT_EXIT_CODE,
    )?;
    check(
        "the last thread's code is the process's",
        run_child("last-thread")? == 9,
    )?;
    // Killed with threads asleep in the kernel: every frame comes back.
    frames_come_back("kill-threads")
}

fn exhaustion() -> Outcome {
    // Processes that each take all the threads and memory they may, until the kernel
    // refuses them (threads, the kernel heap, frames, the process table): it must say
    // no, never fall over, and get everything back when they are killed.
    let before = usage_settled()?;
    let mut pids = Vec::new();
    let refused = loop {
        match process::spawn("usertests", "hog") {
            Ok(p) => pids.push(p),
            Err(e) => break e,
        }
        if pids.len() == 40 {
            break Error::InvalidArgument;
        }
        // Let it take its share before the next one starts.
        time::sleep_ms(20);
    };
    let mem = mem::info().map_err(|e| format!("{e:?}"))?;
    println!(
        "usertests: {} hogs, then {refused:?}; {} frames free, kernel heap {} bytes",
        pids.len(),
        mem.free_frames,
        mem.heap_bytes_used
    );
    for &p in &pids {
        let _ = process::kill(p);
    }
    for &p in &pids {
        let _ = process::wait(p);
    }
    check(
        &format!(
            "{} hogs started before {refused:?}, {} frames free at the peak",
            pids.len(),
            mem.free_frames
        ),
        pids.len() >= 2,
    )?;
    check("the system works after them", run_child("exit 5")? == 5)?;
    usage_back(before, "the hogs")
}

const TESTS: &[(&str, fn() -> Outcome)] = &[
    ("unknown_calls", unknown_calls),
    ("getpid", getpid),
    ("write", write),
    ("read", read),
    ("time_and_yield", time_and_yield),
    ("map_unmap", map_unmap),
    ("heap", heap),
    ("spawn_and_wait", spawn_and_wait),
    ("getarg", getarg),
    ("faults_kill_only_the_process", faults_kill_only_the_process),
    ("kill", kill),
    ("listings", listings),
    ("no_leaks", no_leaks),
    ("process_limit", process_limit),
    ("ipc_round_trip", ipc_round_trip),
    ("poll_many", poll_many),
    ("capabilities_are_checked", capabilities_are_checked),
    ("cap_send_over_a_channel", cap_send_over_a_channel),
    ("page_grants", page_grants),
    ("grant_errors", grant_errors),
    ("ipc_and_sleep_leak_nothing", ipc_and_sleep_leak_nothing),
    ("threads", threads),
    ("rights::shared_pages_follow_rights", || {
        in_child("shared_pages_follow_rights")
    }),
    (
        "rights::revoke_takes_the_pages",
        rights::revoke_takes_the_pages,
    ),
    ("rights::revoke_races_attach", || {
        in_child("revoke_races_attach")
    }),
    (
        "rights::tokens_go_to_the_receiver",
        rights::tokens_go_to_the_receiver,
    ),
    (
        "rights::attach_twice_is_one_holding",
        rights::attach_twice_is_one_holding,
    ),
    (
        "rights::shutdown_needs_the_system_token",
        rights::shutdown_needs_the_system_token,
    ),
    (
        "limits::map_unmap_frees_page_tables",
        limits::map_unmap_frees_page_tables,
    ),
    (
        "limits::grants_are_charged_to_the_sender",
        limits::grants_are_charged_to_the_sender,
    ),
    (
        "waits::two_waiters_are_both_woken",
        waits::two_waiters_are_both_woken,
    ),
    (
        "waits::killed_waiter_leaves_nothing",
        waits::killed_waiter_leaves_nothing,
    ),
    (
        "waits::time_runs_while_a_cpu_prints",
        waits::time_runs_while_a_cpu_prints,
    ),
    (
        "waits::a_small_write_returns_while_another_cpu_floods",
        waits::a_small_write_returns_while_another_cpu_floods,
    ),
    (
        "waits::attach_while_mapping_does_not_hang",
        waits::attach_while_mapping_does_not_hang,
    ),
    ("fpu::state_is_per_thread", fpu::state_is_per_thread),
    ("fpu::new_threads_start_clean", fpu::new_threads_start_clean),
    ("exhaustion", exhaustion),
    ("fuzz", fuzz::fuzz),
];

/// Tests that make many channels (which live as long as their creator) run in a
/// child of their own; the table entry runs them there.
const IN_CHILD: &[(&str, fn() -> Outcome)] = &[
    (
        "shared_pages_follow_rights",
        rights::shared_pages_follow_rights,
    ),
    ("revoke_races_attach", rights::revoke_races_attach),
];

/// Runs test `name` of [`IN_CHILD`] in a child process.
fn in_child(name: &str) -> Outcome {
    match run_child(&format!("test {name}"))? {
        0 => Ok(()),
        code => Err(format!(
            "in a child: exit {code} (its reason is printed above)"
        )),
    }
}

fn main() -> i32 {
    let arg = process::arg();
    if let Some(n) = arg.strip_prefix("soak:") {
        let code = fuzz::soak(n.parse().unwrap_or(10_000_000));
        if process::id() == 1 {
            let e = process::shutdown(code as u64);
            println!("usertests: shutdown refused: {}", e.as_str());
        }
        return code;
    }
    if !arg.is_empty() {
        return child(&arg);
    }
    println!("zen-test: start {}", TESTS.len());
    let mut failed = 0;
    for (name, test) in TESTS {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    println!(
        "zen-test: done {} passed, {} failed",
        TESTS.len() - failed,
        failed
    );
    if process::id() == 1 {
        let e = process::shutdown(failed as u64);
        println!("usertests: shutdown refused: {}", e.as_str());
    }
    failed as i32
}

/// Recurses until the stack runs into its guard page. `black_box` keeps the compiler
/// from proving the recursion endless and replacing it with a loop.
fn recurse(n: u64) -> u64 {
    let pad = core::hint::black_box([n; 64]);
    if core::hint::black_box(n) == u64::MAX {
        return 0;
    }
    recurse(pad[(n % 64) as usize] + 1) + pad[0]
}

/// Helper modes, selected by the argument.
fn child(arg: &str) -> i32 {
    let mut words = arg.split(' ');
    let mode = words.next().unwrap_or("");
    let num = words
        .clone()
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0);
    if let Some(code) = rights::child(mode, arg).or_else(|| waits::child(mode)) {
        return code;
    }
    if mode == "test" {
        // One test of the table, in a process of its own (its channels die with it).
        let name = words.next().unwrap_or("");
        return match TESTS.iter().chain(IN_CHILD).find(|(n, _)| *n == name) {
            Some((_, t)) => match t() {
                Ok(()) => 0,
                Err(why) => {
                    eprintln!("{name}: {why}");
                    1
                }
            },
            None => 3,
        };
    }
    match mode {
        "exit" => process::exit(num),
        m if m.starts_with("fpu-") => fpu::child(m, num),
        "arg" => (arg != "arg hello world" && arg != "arg x") as i32,
        "wait" => (process::wait(num as u32) != Err(Error::NoSuchProcess)) as i32,
        "kill" => (process::kill(num as u32) != Err(Error::Denied)) as i32,
        "spin" => loop {
            core::hint::spin_loop();
        },
        "sleep" => {
            time::sleep_ms(3_600_000);
            1
        }
        "map" => {
            let r = mem::Region::new(1 << 20);
            // Exit with the mapping still there: exit must free it.
            process::exit(r.map(|r| r[100] as u64).unwrap_or(99))
        }
        "echo" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return 10;
            };
            let mut buf = [0u8; 128];
            loop {
                let Ok(n) = ch.recv(&mut buf) else { return 11 };
                if &buf[..n] == b"quit" {
                    return 0;
                }
                if ch.send(&buf[..n]).is_err() {
                    return 12;
                }
            }
        }
        "late-hello" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return 10;
            };
            time::sleep_ms(30);
            ch.send(b"hello").map_or(11, |()| 0)
        }
        "steal" => {
            let Some(bytes) = words.next().and_then(unhex) else {
                return 10;
            };
            let Ok(b) = <[u8; 64]>::try_from(bytes.as_slice()) else {
                return 11;
            };
            let t = TokenSlot::from_bytes(&b);
            (attach_raw(&t) != Err(Error::Denied) || send_raw(&t) != Err(Error::Denied)) as i32
        }
        "weak" => {
            let Ok(t) = Cap(0).token() else { return 10 };
            if Cap(0).rights() != Ok(Rights::RECV) {
                return 11;
            }
            if attach_raw(&t).is_err() {
                return 12;
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
                return 10;
            };
            if ch.send(b"ready").is_err() {
                return 11;
            }
            let mut buf = [0u8; 8];
            let Ok(1) = ch.recv(&mut buf) else { return 12 };
            let got = Cap(buf[0] as usize);
            match (got.token(), got.rights()) {
                (Ok(t), Ok(r)) if r == Rights::SEND && t.binding.holder == process::id() => {
                    // It works for this process: attach with it.
                    (attach_raw(&t).is_err()) as i32 * 13
                }
                _ => 14,
            }
        }
        "grant-peer" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return 10;
            };
            if ch.send(b"hello").is_err() {
                return 11;
            }
            let mut buf = [0u8; 96];
            loop {
                let Ok((n, g)) = ch.recv_grant(&mut buf) else {
                    return 12;
                };
                let cmd = &buf[..n];
                if cmd == b"quit" {
                    return 0;
                }
                let Some(g) = g else { return 13 };
                let reply: Vec<u8> = match cmd {
                    b"ignore" => vec![1],
                    b"sum" => match chan::accept(g) {
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
                    b"ro" => match chan::accept(g) {
                        Ok(m) => {
                            vec![(!m.writable() && m.write(0, b"x") == Err(Error::Denied)) as u8]
                        }
                        Err(_) => vec![0],
                    },
                    b"fill" => match chan::accept(g) {
                        Ok(m) => vec![m.write(0, &vec![0x5a; m.len()]).is_ok() as u8],
                        Err(_) => vec![0],
                    },
                    b"once" => {
                        let raw = |len: u64, rights: u64| {
                            sys(Syscall::GrantMap, [g.id, len, rights, 0, 0, 0])
                        };
                        let lies = raw(g.len + 4096, g.rights) == Err(Error::InvalidArgument)
                            && raw(g.len, g.rights | Rights::WRITE.bits())
                                == Err(Error::InvalidArgument);
                        let first = chan::accept(g).is_ok();
                        let again = chan::accept(g).err() == Some(Error::Denied);
                        vec![(lies && first && again) as u8]
                    }
                    _ => vec![0],
                };
                if ch.send(&reply).is_err() {
                    return 14;
                }
            }
        }
        "thread-exit" => {
            let _t = thread::spawn(|| process::exit(7));
            time::sleep_ms(10_000);
            1
        }
        "thread-fault" => {
            let _t = thread::spawn(|| {
                fault(Fault::NullWrite);
                0
            });
            time::sleep_ms(10_000);
            1
        }
        "last-thread" => match thread::spawn(|| {
            time::sleep_ms(20);
            9
        }) {
            Ok(_t) => thread::exit(0),
            Err(_) => 1,
        },
        "threads-sleep" => {
            for _ in 0..3 {
                if thread::spawn(|| {
                    time::sleep_ms(3_600_000);
                    1
                })
                .is_err()
                {
                    return 10;
                }
            }
            time::sleep_ms(3_600_000);
            1
        }
        "kill-threads" => {
            let Ok(pid) = process::spawn("usertests", "threads-sleep") else {
                return 10;
            };
            time::sleep_ms(30);
            let killed = process::kill(pid).is_ok();
            (!killed || process::wait(pid) != Ok(KILLED_EXIT_CODE)) as i32
        }
        "hog" => {
            // Threads until refused, then memory until refused; then wait to be killed.
            while thread::spawn(|| {
                time::sleep_ms(3_600_000);
                0
            })
            .map(core::mem::forget)
            .is_ok()
            {}
            let mut regions = Vec::new();
            while let Ok(r) = mem::Region::new(1 << 20) {
                regions.push(r);
            }
            time::sleep_ms(3_600_000);
            1
        }
        "fuzz" => fuzz::fuzz_calls(num),
        "nap" => {
            time::sleep_ms(50);
            4
        }
        "kill-sleeper" => {
            let Ok(pid) = process::spawn("usertests", "sleep") else {
                return 10;
            };
            time::sleep_ms(20);
            let killed = process::kill(pid).is_ok();
            (!killed || process::wait(pid) != Ok(KILLED_EXIT_CODE)) as i32
        }
        "pair-echo" => match ipc_round_trip() {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("pair-echo: {why}");
                1
            }
        },
        "grant-pair" => match grant_session() {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("grant-pair: {why}");
                1
            }
        },
        "grant-write-ro" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return 10;
            };
            let mut buf = [0u8; 8];
            if ch.send(b"hello").is_err() {
                return 11;
            }
            let Ok((_, Some(g))) = ch.recv_grant(&mut buf) else {
                return 12;
            };
            let Ok(m) = chan::accept(g) else { return 13 };
            // Past zen-std's check, straight at the page: the MMU must refuse.
            m.words()[0].store(1, core::sync::atomic::Ordering::Relaxed);
            14
        }
        "getarg-errors" => {
            let mut small = [0u8; 4];
            let ok = sys(Syscall::GetArg, [small.as_mut_ptr() as u64, 4, 0, 0, 0, 0])
                == Err(Error::BufferTooSmall)
                && bad_pointers().iter().all(|(_, p)| {
                    sys(Syscall::GetArg, [*p, 64, 0, 0, 0, 0]) == Err(Error::BadAddress)
                })
                && sys(Syscall::GetArg, [own_code(), 64, 0, 0, 0, 0]) == Err(Error::BadAddress);
            (!ok) as i32
        }
        "fault" => {
            match words.next() {
                Some("null") => fault(Fault::NullWrite),
                Some("kernel") => fault(Fault::KernelRead),
                Some("gp") => fault(Fault::Privileged),
                Some("ud") => fault(Fault::Undefined),
                Some("code") => fault(Fault::WriteCode),
                Some("stack") => {
                    recurse(1);
                }
                _ => {}
            }
            2
        }
        _ => {
            eprintln!("usertests: unknown mode {arg}");
            3
        }
    }
}
