//! Fuzzing the system-call layer: children that make random calls with arguments
//! that break kernels, mixed with the sequences that found real defects (attach and
//! unmap of channel pages, map/unmap cycling, killing threads blocked in msg_recv,
//! revoking a channel while a peer uses it). The test (`fuzz`) runs a short round;
//! `cargo xtask soak` boots usertests with `arg=soak:N` for N calls (10 million by
//! default) and reports calls per second, failures and what was lost.

use crate::{
    check, run_child, spawn, usage_back, usage_settled, Outcome, DIRECT_MAP, KERNEL, NON_CANONICAL,
};
use zen_abi::cap::Rights;
use zen_abi::syscall::{Syscall, KILLED_EXIT_CODE, SYSCALL_COUNT};
use zen_std::chan::{self, Cap};
use zen_std::prelude::*;
use zen_std::testing::raw_syscall;
use zen_std::{mem, process, time};

/// Calls one fuzz child makes.
const CHILD_CALLS: u64 = 20_000;

/// Runs 8 fuzz children with seeds from `first`, each for at most `limit_ms`; their
/// exit codes (a child still blocked at the limit is killed).
fn round(first: u64, limit_ms: u64) -> Result<Vec<u64>, String> {
    let mut pids = Vec::new();
    for seed in first..first + 8 {
        pids.push(spawn("usertests", &format!("fuzz {seed}"))?);
    }
    let t0 = time::uptime_ms();
    let mut codes = Vec::new();
    for pid in pids {
        while time::uptime_ms() < t0 + limit_ms {
            let ended = process::list()
                .map(|l| l.iter().any(|p| p.pid == pid && p.state != 0))
                .unwrap_or(true);
            if ended {
                break;
            }
            time::sleep_ms(20);
        }
        // A child still blocked now is killed (that path is exercised too).
        let _ = process::kill(pid);
        codes.push(process::wait(pid).map_err(|e| format!("wait fuzz child {pid}: {e:?}"))?);
    }
    Ok(codes)
}

pub fn fuzz() -> Outcome {
    // Children that make thousands of system calls with random numbers and arguments
    // drawn from the values that break kernels (null, kernel, non-canonical and
    // unaligned pointers, real tokens, huge lengths, all ones). Each runs until it is
    // done, dies of its own damage, or 5 s pass; the kernel must carry on and give
    // everything back.
    run_child("fuzz 99")?;
    let before = usage_settled()?;
    let codes = round(1, 5000)?;
    println!("usertests: fuzz children ended with {codes:x?}");
    check(
        &format!("most fuzz children made all their calls: {codes:x?}"),
        codes.iter().filter(|&&c| c == 0).count() >= 4,
    )?;
    check("the system works after them", run_child("exit 5")? == 5)?;
    usage_back(before, "fuzzing")
}

/// `arg=soak:N`: fuzz rounds until N calls were made; prints one `zen-soak:` line.
pub fn soak(total: u64) -> i32 {
    // Warm-up, a whole round: first uses of kernel paths (and the first time eight
    // fuzzers run at once) may allocate for good.
    if round(1, 10_000).is_err() {
        return 1;
    }
    let before = match usage_settled() {
        Ok(b) => b,
        Err(_) => return 1,
    };
    let t0 = time::uptime_ms();
    let (mut calls, mut rounds, mut killed, mut failed) = (0u64, 0u64, 0u64, 0u64);
    while calls < total {
        let codes = match round(1000 + rounds * 8, 10_000) {
            Ok(c) => c,
            Err(why) => {
                eprintln!("zen-soak: {why}");
                return 1;
            }
        };
        for c in codes {
            match c {
                0 => calls += CHILD_CALLS,
                KILLED_EXIT_CODE => killed += 1,
                // Killed by its own damage (a fault) is a fuzz child's right; any
                // other code is a sequence that went wrong.
                zen_abi::syscall::FAULT_EXIT_CODE => {}
                _ => failed += 1,
            }
        }
        rounds += 1;
        if rounds % 25 == 0 {
            println!(
                "zen-soak: progress {calls} calls in {} s",
                (time::uptime_ms() - t0) / 1000
            );
        }
    }
    let ms = (time::uptime_ms() - t0).max(1);
    let works = run_child("exit 5") == Ok(5);
    let mut after = usage_settled().unwrap_or((0, u64::MAX));
    for _ in 0..50 {
        if after.0 >= before.0 && after.1 <= before.1 {
            break;
        }
        after = usage_settled().unwrap_or(after);
    }
    let lost_frames = before.0.saturating_sub(after.0);
    let lost_blocks = after.1.saturating_sub(before.1);
    println!(
        "zen-soak: calls={calls} ms={ms} calls_per_s={} children={} killed={killed} failed={failed} works={works} lost_frames={lost_frames} lost_heap_blocks={lost_blocks}",
        calls * 1000 / ms,
        rounds * 8
    );
    (failed != 0 || !works || lost_frames != 0 || lost_blocks != 0) as i32
}

/// A fuzz child: `CHILD_CALLS` random system calls from a xorshift generator seeded
/// with `seed`, and every 512 calls one of the sequences above. Calls that would end
/// the test rather than exercise the kernel (exit, shutdown, reading the console,
/// starting threads at random addresses, starting programs) are skipped; blocking
/// calls get short timeouts. Exits 0 when done, 20+ if a sequence misbehaved.
pub fn fuzz_calls(seed: u64) -> i32 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // The buffer valid pointers point into: larger than any length the kernel will
    // write (MAX_IO), so lying lengths damage nothing but it.
    let Ok(buf) = mem::Shared::new(2 << 20) else {
        return 10;
    };
    let (base, end) = (buf.addr(), buf.addr() + buf.len() as u64);
    let me = process::id() as u64;
    // Real tokens to aim at: a channel of our own, kept for the sequences.
    let Ok((a, b)) = chan::create() else {
        return 11;
    };
    for i in 0..CHILD_CALLS {
        if i % 512 == 511 {
            if let Err(code) = sequence(next() % 4, a, b, base) {
                return code;
            }
            continue;
        }
        let valid = base;
        let nr = next() % (SYSCALL_COUNT + 3);
        // Spawn is skipped too: the kernel writes program names into the buffer
        // (`programs`), and a random spawn of `ipcbench` would power the machine off.
        let skip = [
            Syscall::Exit,
            Syscall::ThreadExit,
            Syscall::Shutdown,
            Syscall::Read,
            Syscall::ThreadCreate,
            Syscall::Spawn,
            // These two write r12-r15, which `raw` does not declare: calls.rs tests
            // them with their own register contract.
            Syscall::Call,
            Syscall::ReplyRecv,
        ];
        if skip.iter().any(|c| *c as u64 == nr) {
            continue;
        }
        let mut a = [0u64; 6];
        for v in a.iter_mut() {
            let r = next();
            *v = match r % 14 {
                0 => 0,
                1 => r % 64,
                2 => 4096,
                3 => u64::MAX,
                4 => valid,
                5 => valid + (r >> 8) % 4096,
                6 => KERNEL,
                7 => NON_CANONICAL,
                8 => zen_abi::syscall::TOKEN_PAGE + 64 * ((r >> 8) % 4),
                9 => zen_abi::syscall::USER_MAP_BASE + 4096 * ((r >> 8) % 64),
                10 => 1 << ((r >> 8) % 64),
                11 => r >> 16,
                12 => DIRECT_MAP,
                _ => r,
            };
        }
        // Short waits only: sleep, poll and wait-for-room get small bounds; waiting
        // for a process or a message may still block, and the parent's kill ends that.
        match nr {
            // A sleep takes whole ticks whatever its argument: not worth the time.
            n if n == Syscall::Sleep as u64 => continue,
            n if n == Syscall::MsgPoll as u64 => a[2] = 0,
            // An odd count never equals an idle ring's: these return at once.
            n if n == Syscall::MsgRecv as u64
                || n == Syscall::MsgWaitRoom as u64
                || n == Syscall::MsgCall as u64 =>
            {
                a[1] |= 1
            }
            n if n == Syscall::Kill as u64 && a[0] == me => continue,
            // Unmapping our own heap or code only kills us: aim at the buffer.
            n if n == Syscall::Unmap as u64 && !(base..end).contains(&a[0]) => continue,
            // Console output would be noise in the test log.
            n if n == Syscall::Write as u64 && (a[0] == 1 || a[0] == 2) => continue,
            _ => {}
        }
        raw_syscall(nr, a);
    }
    0
}

fn sys(call: Syscall, a: [u64; 6]) -> Result<u64, zen_std::Error> {
    zen_std::Error::from_ret(raw_syscall(call as u64, a))
}

/// One of the sequences that found defects, on our channel (`a`, `b`); `Err(code)`
/// if the kernel answered wrongly.
fn sequence(which: u64, a: Cap, b: Cap, buf: u64) -> Result<(), i32> {
    // The random calls may have dropped a token (cap_drop) or revoked a channel:
    // then there is nothing to check in this sequence.
    let tok = |c: Cap| c.token().map(|t| t.to_bytes()).ok();
    match which {
        0 => {
            // Attach, then try to unmap the channel's pages: refused, nothing grows.
            let Some(t) = tok(a) else { return Ok(()) };
            if let Ok(va) = sys(Syscall::ChanAttach, [t.as_ptr() as u64, 0, 0, 0, 0, 0]) {
                if sys(Syscall::Unmap, [va, 4096, 0, 0, 0, 0]).is_ok() {
                    return Err(21);
                }
            }
        }
        1 => {
            // Map and unmap a few pages: the tables come and go.
            if let Ok(va) = sys(Syscall::Map, [3 * 4096, 0, 0, 0, 0, 0]) {
                if sys(Syscall::Unmap, [va, 3 * 4096, 0, 0, 0, 0]).is_err() {
                    return Err(22);
                }
            }
        }
        2 => {
            // A child blocked in msg_recv on our channel, killed there.
            if let Ok(pid) =
                chan::spawn_with_cap("usertests", "block-recv", b, Rights::SEND | Rights::RECV)
            {
                time::sleep_ms(2);
                let _ = process::kill(pid);
                // Killed in its wait, or ended first by what the random calls did to
                // the channel (a revoke, a full ring): either way it is reaped.
                if process::wait(pid).is_err() {
                    return Err(23);
                }
            }
        }
        _ => {
            // Revoke while a peer uses a channel (a new one: revoking makes both ends'
            // other tokens stale): the peer's calls turn Denied (or it faults on its
            // old pages); we keep working with the fresh token.
            let Ok((c, d)) = chan::create() else {
                return Ok(()); // out of channels: the random calls made many
            };
            if let Ok(pid) =
                chan::spawn_with_cap("usertests", "echo", d, Rights::SEND | Rights::RECV)
            {
                time::sleep_ms(1);
                if c.revoke().is_err() {
                    return Err(24);
                }
                let _ = process::kill(pid);
                let _ = process::wait(pid);
                let Some(t) = tok(c) else { return Ok(()) };
                if sys(Syscall::MsgSend, [t.as_ptr() as u64, 0, 0, 0, 0, 0]) != Ok(0) {
                    return Err(25);
                }
            }
        }
    }
    let _ = buf;
    Ok(())
}
