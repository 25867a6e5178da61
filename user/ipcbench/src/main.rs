//! ipcbench: the system-call and IPC figures of `cargo xtask bench --only ipc`. Boot it
//! as init (`init=ipcbench` on the kernel command line): it measures, prints
//! `zen: bench <key>=<value>` lines and `zen: bench done`, and shuts the machine down.
//!
//! Figures are TSC deltas read in user mode (`time::cycles`); under QEMU
//! `-icount shift=0` the TSC advances once per guest instruction, so they are exact
//! instruction counts, and the same in every boot. Each figure is measured after a
//! warm-up, so the first-touch costs (page faults on the rings, the heap) stay out.
//!
//! With an argument it is the peer of a channel benchmark instead (see `peer`).
//!
//! On two CPUs the same program runs, but see `TWO_CPU_NOTE` in xtask's bench.rs for
//! why its two processes still share one CPU under `-icount`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;
use zen_abi::cap::Rights;
use zen_abi::syscall::Syscall;
use zen_std::call::{Msg, Server};
use zen_std::chan::{self, Cap, Channel};
use zen_std::mem::Shared;
use zen_std::prelude::*;
use zen_std::testing::raw_syscall;
use zen_std::{process, time, Error};

zen_std::main!(main);

/// The message size of every channel benchmark: a typical small request.
const MSG: usize = 64;
/// A message of another length ends a run of messages (see `peer`).
const END: &[u8] = b"end";

const GETPID_CALLS: u64 = 100_000;
const CHAN_CALLS: u64 = 10_000;
const ROUND_TRIPS: u64 = 10_000;
const STREAM_MSGS: u64 = 100_000;
/// Each page grant shares GRANT_BYTES; the receiver maps a fresh address range for
/// every one (the map area is never reused), so this also bounds its page tables.
const GRANTS: u64 = 5_000;
const GRANT_BYTES: usize = 64 << 10;
/// Warm-up before each measurement (see the module comment).
const WARM_CALLS: u64 = 1_000;
const WARM_TRIPS: u64 = 1_000;
const WARM_MSGS: u64 = 1_000;
const WARM_GRANTS: u64 = 100;

fn main() -> i32 {
    let arg = process::arg();
    if let Some(n) = arg.strip_prefix("profile:") {
        return profile(n.parse().unwrap_or(0), Profiled::Calls);
    }
    if let Some(n) = arg.strip_prefix("profile-grants:") {
        return profile(n.parse().unwrap_or(0), Profiled::Grants);
    }
    if let Some(n) = arg.strip_prefix("profile-regs:") {
        return profile(n.parse().unwrap_or(0), Profiled::Registers);
    }
    if let Some(cpu) = arg.strip_prefix("rserve") {
        return reg_serve(cpu.trim());
    }
    if !arg.is_empty() {
        return peer(&arg);
    }
    let r = bench();
    if let Err(e) = &r {
        println!("ipcbench: {e}");
    }
    println!("zen: bench done");
    let e = process::shutdown(r.is_err() as u64);
    eprintln!("ipcbench: shutdown refused: {}", e.as_str());
    1
}

fn bench() -> Result<(), String> {
    println!("zen: bench getpid={}", getpid());
    println!("zen: bench chancall={}", chan_call()?);
    let (total, n) = round_trips("serve", call)?;
    println!("zen: bench roundtrip={}", total / n);
    let (total, n) = round_trips("echo", ping)?;
    println!("zen: bench roundtrip_rings={}", total / n);
    let (total, n) = reg_round_trips("rserve", ROUND_TRIPS)?;
    println!("zen: bench roundtrip_regs={}", total / n);
    // With a second CPU: the same with each process pinned to its own CPU.
    if process::set_cpu(1).is_ok() {
        process::set_cpu(0).map_err(|e| format!("set_cpu(0): {e:?}"))?;
        let (total, n) = round_trips("serve 1", call)?;
        println!("zen: bench roundtrip_cross={}", total / n);
        let (total, n) = round_trips("echo 1", ping)?;
        println!("zen: bench roundtrip_rings_cross={}", total / n);
        let (total, n) = reg_round_trips("rserve 1", ROUND_TRIPS)?;
        println!("zen: bench roundtrip_regs_cross={}", total / n);
    }
    let (total, n) = stream()?;
    println!("zen: bench stream_instr={total} stream_msgs={n}");
    let (total, n) = grants()?;
    println!("zen: bench grant_instr={total} grant_count={n}");
    Ok(())
}

/// `rounds` call round trips (or page grants, or calls in registers) and nothing else, for the kernel's per-step profile
/// (`cargo xtask bench --only ipc-profile`: a kernel built with the `profile`
/// feature prints its totals at shutdown; two boots with different `rounds` give the
/// cost of one round trip, everything before and after cancelled out).
fn profile(rounds: u64, work: Profiled) -> i32 {
    let r = match work {
        Profiled::Grants => grants_n(rounds).map(|_| ()),
        Profiled::Registers => reg_round_trips("rserve", rounds).map(|_| ()),
        Profiled::Calls => start_peer("serve").and_then(|(mut ch, pid)| {
            call(&mut ch, rounds)?;
            stop_peer(&mut ch, pid)
        }),
    };
    match &r {
        Err(e) => println!("ipcbench: {e}"),
        // Only a run that did all of its work says how much.
        Ok(()) => println!("zen: bench rounds={rounds}"),
    }
    let e = process::shutdown(r.is_err() as u64);
    eprintln!("ipcbench: shutdown refused: {}", e.as_str());
    1
}

/// What a profile boot does `rounds` times.
#[derive(Clone, Copy)]
enum Profiled {
    /// Round trips through a ring's `msg_call` (`profile:N`).
    Calls,
    /// Page grants (`profile-grants:N`: the grant steps of kernel/src/prof.rs).
    Grants,
    /// Round trips in registers, `call` / `reply_recv` (`profile-regs:N`).
    Registers,
}

/// The request a register call carries in round `i`: 64 bytes, all of them checked
/// in the answer.
fn reg_msg(i: u64) -> Msg {
    core::array::from_fn(|k| i ^ (k as u64) << 40)
}

/// Register-call round trips with an `ipcbench rserve` peer (`rserve 1`: on CPU 1):
/// (instructions, round trips) for `rounds` after a warm-up. `Cap::call` against
/// `Server`: one trap per side and trip, a direct switch each way on one CPU, the
/// 64 bytes in registers.
fn reg_round_trips(peer: &str, rounds: u64) -> Result<(u64, u64), String> {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap("ipcbench", peer, b, Rights::RECV)
        .map_err(|e| format!("spawn {peer}: {e:?}"))?;
    let trips = |n: u64| -> Result<(), String> {
        for i in 0..n {
            let m = reg_msg(i);
            let r = a.call(&m).map_err(|e| format!("call {i}: {e:?}"))?;
            if r != m {
                return Err(format!("call {i}: wrong answer"));
            }
        }
        Ok(())
    };
    trips(WARM_TRIPS)?;
    let t0 = time::cycles();
    trips(rounds)?;
    let t1 = time::cycles();
    a.call(&[u64::MAX; 8]).map_err(|e| format!("quit: {e:?}"))?;
    match process::wait(pid) {
        Ok(0) => {}
        r => return Err(format!("peer {pid}: {r:?}")),
    }
    a.destroy_channel().map_err(|e| format!("destroy: {e:?}"))?;
    Ok((t1 - t0, rounds))
}

/// The `rserve [CPU]` peer: answers each register call with its own words, until the
/// all-ones request, answered without waiting again.
fn reg_serve(cpu: &str) -> i32 {
    if let Ok(c) = cpu.parse() {
        if process::set_cpu(c).is_err() {
            return 9;
        }
    }
    let s = Server::new(Cap(0));
    let Ok(mut req) = s.recv() else { return 10 };
    loop {
        if req.msg == [u64::MAX; 8] {
            return if s.reply(&req, &[0; 8]).is_ok() {
                0
            } else {
                11
            };
        }
        req = match s.reply_recv_to(&req, &req.msg) {
            Ok(r) => r,
            Err(_) => return 12,
        };
    }
}

/// Guest instructions per `getpid`, the cheapest system call (loop included).
fn getpid() -> u64 {
    let mut sum = 0u64;
    for _ in 0..WARM_CALLS {
        sum = sum.wrapping_add(process::id() as u64);
    }
    let t0 = time::cycles();
    for _ in 0..GETPID_CALLS {
        sum = sum.wrapping_add(process::id() as u64);
    }
    let t1 = time::cycles();
    // Use the results, so no call can be optimised away.
    core::hint::black_box(sum);
    (t1 - t0) / GETPID_CALLS
}

/// Guest instructions per `msg_send` with nobody to wake: the fixed cost of a system
/// call that names a channel (the token by its slot, as zen-std does: the kernel
/// checks its own copy), which every sleep and wake-up of the benchmarks below pays.
fn chan_call() -> Result<u64, String> {
    let (a, _b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let token = ch.cap().addr();
    let send = || raw_syscall(Syscall::MsgSend as u64, [token, 0, 0, 0, 0, 0]);
    for _ in 0..WARM_CALLS / 10 {
        send();
    }
    let t0 = time::cycles();
    for _ in 0..CHAN_CALLS {
        if let Err(e) = Error::from_ret(send()) {
            return Err(format!("msg_send: {e:?}"));
        }
    }
    let t1 = time::cycles();
    Ok((t1 - t0) / CHAN_CALLS)
}

/// A channel to a new `ipcbench <mode>` process: our end, and its pid.
fn start_peer(mode: &str) -> Result<(Channel, u32), String> {
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let pid = chan::spawn_with_cap("ipcbench", mode, b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn {mode}: {e:?}"))?;
    let ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    Ok((ch, pid))
}

/// Ends the peer with END and waits for it; it must exit with 0.
fn stop_peer(ch: &mut Channel, pid: u32) -> Result<(), String> {
    ch.send(END).map_err(|e| format!("send end: {e:?}"))?;
    match process::wait(pid) {
        Ok(0) => Ok(()),
        r => Err(format!("peer {pid}: {r:?}")),
    }
}

/// `rounds` pings of MSG bytes, each answered by a pong of MSG bytes that must carry
/// the ping's number back.
fn ping(ch: &mut Channel, rounds: u64) -> Result<(), String> {
    let mut msg = [0u8; MSG];
    for i in 0..rounds {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        ch.send(&msg).map_err(|e| format!("send: {e:?}"))?;
        let n = ch.recv(&mut msg).map_err(|e| format!("recv: {e:?}"))?;
        if n != MSG || msg[..8] != i.to_le_bytes() {
            return Err(format!("round trip {i}: wrong pong ({n} bytes)"));
        }
    }
    Ok(())
}

/// `rounds` requests of MSG bytes by `Channel::call` (send and wait in one system
/// call), each answered with MSG bytes that must carry the request's number back.
fn call(ch: &mut Channel, rounds: u64) -> Result<(), String> {
    let mut msg = [0u8; MSG];
    let mut answer = [0u8; MSG];
    for i in 0..rounds {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let n = ch
            .call(&msg, &mut answer)
            .map_err(|e| format!("call: {e:?}"))?;
        if n != MSG || answer[..8] != i.to_le_bytes() {
            return Err(format!("call {i}: wrong answer ({n} bytes)"));
        }
    }
    Ok(())
}

/// Round trips with an `ipcbench serve` or `echo` peer (`... 1`: on CPU 1) driven by
/// `trips` (`call`, or `ping`): (instructions, round trips). `call` against `serve`
/// is the request/reply path: one system call per side and trip, and on one CPU each
/// a direct switch to the other; `ping` against `echo` uses the rings' send and recv:
/// two system calls per side and trip, through the scheduler.
fn round_trips(
    peer: &str,
    trips: fn(&mut Channel, u64) -> Result<(), String>,
) -> Result<(u64, u64), String> {
    let (mut ch, pid) = start_peer(peer)?;
    trips(&mut ch, WARM_TRIPS)?;
    let t0 = time::cycles();
    trips(&mut ch, ROUND_TRIPS)?;
    let t1 = time::cycles();
    stop_peer(&mut ch, pid)?;
    Ok((t1 - t0, ROUND_TRIPS))
}

/// `n` messages of MSG bytes to a `sink` peer, then END; returns when the sink has
/// answered with how many it received, which must be `n`.
fn send_all(ch: &mut Channel, n: u64) -> Result<(), String> {
    let mut msg = [0u8; MSG];
    for i in 0..n {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        ch.send(&msg).map_err(|e| format!("send: {e:?}"))?;
    }
    ch.send(END).map_err(|e| format!("send end: {e:?}"))?;
    let got = ch
        .recv(&mut msg)
        .map_err(|e| format!("recv count: {e:?}"))?;
    let count = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if got != 8 || count != n {
        return Err(format!("the sink received {count} of {n} messages"));
    }
    Ok(())
}

/// One-way messages to an `ipcbench sink` peer: (instructions, messages). The clock
/// stops when the sink has confirmed the last one (one extra round trip in all).
fn stream() -> Result<(u64, u64), String> {
    let (mut ch, pid) = start_peer("sink")?;
    send_all(&mut ch, WARM_MSGS)?;
    let t0 = time::cycles();
    send_all(&mut ch, STREAM_MSGS)?;
    let t1 = time::cycles();
    stop_peer(&mut ch, pid)?;
    Ok((t1 - t0, STREAM_MSGS))
}

/// Word `k` of the granted memory, so the receiver can check what it read.
fn pattern(k: usize) -> u64 {
    (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The sum of every word of the granted memory.
fn pattern_sum() -> u64 {
    (0..GRANT_BYTES / 8).fold(0, |s, k| s.wrapping_add(pattern(k)))
}

/// `n` page grants of `mem` (read-only) to a `grants` peer, then END; returns when the
/// peer has answered with how many it mapped and read, which must be `n`.
fn grant_all(ch: &mut Channel, mem: &Shared, n: u64) -> Result<(), String> {
    for i in 0..n {
        ch.send_grant(mem, Rights::READ, &i.to_le_bytes())
            .map_err(|e| format!("send_grant: {e:?}"))?;
    }
    ch.send(END).map_err(|e| format!("send end: {e:?}"))?;
    let mut msg = [0u8; MSG];
    let got = ch
        .recv(&mut msg)
        .map_err(|e| format!("recv count: {e:?}"))?;
    let count = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if got != 8 || count != n {
        return Err(format!("the peer read {count} of {n} grants"));
    }
    Ok(())
}

/// The same GRANT_BYTES of memory granted over and over to an `ipcbench grants` peer,
/// which maps each grant, reads all of it and unmaps it: (instructions, grants). The
/// clock stops when the peer has confirmed the last one.
fn grants() -> Result<(u64, u64), String> {
    grants_n(GRANTS)
}

/// [`grants`] with `n` grants measured.
fn grants_n(n: u64) -> Result<(u64, u64), String> {
    let mem = Shared::new(GRANT_BYTES).map_err(|e| format!("map: {e:?}"))?;
    for (k, w) in mem.words().iter().enumerate() {
        w.store(pattern(k), Relaxed);
    }
    let (mut ch, pid) = start_peer("grants")?;
    // A grant is made for the process attached at the other end: wait until it is.
    let mut hello = [0u8; MSG];
    ch.recv(&mut hello)
        .map_err(|e| format!("recv hello: {e:?}"))?;
    grant_all(&mut ch, &mem, WARM_GRANTS)?;
    let t0 = time::cycles();
    grant_all(&mut ch, &mem, n)?;
    let t1 = time::cycles();
    stop_peer(&mut ch, pid)?;
    Ok((t1 - t0, n))
}

/// The other end of a benchmark's channel (our `Cap(0)`). `echo` sends every MSG-byte
/// message back; `sink` counts MSG-byte messages, and `grants` page grants (see
/// `grant_peer`). On END a counting peer answers with the count (8 bytes) and counts
/// again; END with nothing counted (or any END, for `echo`) ends it with 0. Any error
/// is a non-zero exit code.
fn peer(arg: &str) -> i32 {
    // `MODE [CPU]`: with a CPU, the peer runs there.
    let mut words = arg.split(' ');
    let mode = words.next().unwrap_or("");
    if let Some(cpu) = words.next() {
        match cpu.parse() {
            Ok(cpu) if process::set_cpu(cpu).is_ok() => {}
            _ => return 9,
        }
    }
    let Ok(mut ch) = Channel::attach(Cap(0)) else {
        return 10;
    };
    if mode == "grants" {
        return grant_peer(&mut ch);
    }
    if mode == "serve" {
        return serve(&mut ch);
    }
    let mut buf = [0u8; MSG];
    let mut count = 0u64;
    loop {
        let Ok(n) = ch.recv(&mut buf) else { return 11 };
        match (mode, n == MSG) {
            ("echo", true) => {
                if ch.send(&buf).is_err() {
                    return 12;
                }
            }
            ("sink", true) => count += 1,
            (_, false) if mode == "echo" || count == 0 => return 0,
            ("sink", false) => {
                if !answer(&mut ch, &mut count) {
                    return 12;
                }
            }
            _ => return 2,
        }
    }
}

/// `peer` for `serve`: answers each MSG-byte request with itself through
/// `Channel::serve` (the answer and the wait for the next request in one system
/// call); anything else ends it with 0.
fn serve(ch: &mut Channel) -> i32 {
    let r = ch.serve(|req, reply| {
        (req.len() == MSG).then(|| {
            reply[..MSG].copy_from_slice(req);
            MSG
        })
    });
    if r.is_ok() {
        0
    } else {
        12
    }
}

/// Sends the count back and restarts it.
fn answer(ch: &mut Channel, count: &mut u64) -> bool {
    let ok = ch.send(&count.to_le_bytes()).is_ok();
    *count = 0;
    ok
}

/// `peer` for grants: maps each one, reads all of it (checking the sum), unmaps it.
fn grant_peer(ch: &mut Channel) -> i32 {
    if ch.send(b"attached").is_err() {
        return 12;
    }
    let want = pattern_sum();
    let mut buf = [0u8; MSG];
    let mut count = 0u64;
    loop {
        match ch.recv_grant(&mut buf) {
            Ok((_, Some(g))) => {
                let Ok(mem) = ch.accept(g) else { return 13 };
                let sum = mem
                    .words()
                    .iter()
                    .fold(0u64, |s, w| s.wrapping_add(w.load(Relaxed)));
                if sum != want {
                    return 14;
                }
                count += 1;
                // `mem` drops here: unmapped.
            }
            Ok((_, None)) if count == 0 => return 0,
            Ok((_, None)) => {
                if !answer(ch, &mut count) {
                    return 12;
                }
            }
            Err(_) => return 11,
        }
    }
}
