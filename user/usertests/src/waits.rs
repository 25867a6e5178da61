//! Waits that end however they end: every thread waiting on a channel is woken, a
//! killed waiter leaves nothing behind, and time goes on for everyone while one CPU
//! is busy printing.

extern crate alloc;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::{check, expect, recv_within, sys, usage_back, usage_settled, Outcome};
use zen_abi::cap::Rights;
use zen_abi::syscall::{Syscall, KILLED_EXIT_CODE};
use zen_std::chan::{self, Cap, Channel};
use zen_std::prelude::*;
use zen_std::{process, thread, time};

pub fn two_waiters_are_both_woken() -> Outcome {
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let ta = a.token().map_err(|e| format!("{e:?}"))?.to_bytes();
    let mut tx = Channel::attach(b).map_err(|e| format!("{e:?}"))?;
    // Both threads sleep on end A's consumed ring (ring 1), raw: head seen 0.
    let woken = Arc::new(AtomicU32::new(0));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let w = woken.clone();
        let t = thread::spawn(move || {
            let r = sys(Syscall::MsgRecv, [ta.as_ptr() as u64, 0, 0, 0, 0, 0]);
            if r == Ok(0) {
                w.fetch_add(1, Ordering::SeqCst);
            }
            0
        })
        .map_err(|e| format!("thread: {e:?}"))?;
        threads.push(t);
    }
    time::sleep_ms(30);
    check(
        "both threads sleep before the message",
        woken.load(Ordering::SeqCst) == 0,
    )?;
    tx.send(b"one message").map_err(|e| format!("{e:?}"))?;
    let tb = tx.token().to_bytes();
    // The raw sleepers set no waiting flag: wake them explicitly.
    expect(
        "msg_send",
        sys(Syscall::MsgSend, [tb.as_ptr() as u64, 0, 0, 0, 0, 0]),
        Ok(0),
    )?;
    let t0 = time::uptime_ms();
    while woken.load(Ordering::SeqCst) < 2 && time::uptime_ms() < t0 + 2000 {
        time::sleep_ms(5);
    }
    check(
        &format!(
            "both waiters woke ({} of 2 within 2 s)",
            woken.load(Ordering::SeqCst)
        ),
        woken.load(Ordering::SeqCst) == 2,
    )?;
    for t in threads {
        t.join().map_err(|e| format!("join: {e:?}"))?;
    }
    Ok(())
}

/// Spawns `block-recv` on end B, waits for its ready, kills it while it sleeps in
/// msg_recv, and reaps it.
fn kill_blocked_receiver(b: chan::Cap, ch: &mut Channel) -> Outcome {
    let pid = chan::spawn_with_cap("usertests", "block-recv", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("{e:?}"))?;
    let mut buf = [0u8; 8];
    recv_within(ch, &mut buf, "block-recv's ready")?;
    time::sleep_ms(20);
    process::kill(pid).map_err(|e| format!("kill: {e:?}"))?;
    expect(
        "the blocked receiver is killed",
        process::wait(pid),
        Ok(KILLED_EXIT_CODE),
    )
}

pub fn killed_waiter_leaves_nothing() -> Outcome {
    // The channel outlives the child: nothing of the child may stay in its queues.
    let (a, b) = chan::create().map_err(|e| format!("{e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("{e:?}"))?;
    // Warm-ups: a queue or list that grows its capacity on a first use keeps it (the
    // one extra block a CI run once saw after a single warm-up).
    kill_blocked_receiver(b, &mut ch)?;
    kill_blocked_receiver(b, &mut ch)?;
    let before = usage_settled()?;
    kill_blocked_receiver(b, &mut ch)?;
    usage_back(before, "a receiver killed in msg_recv")
}

pub fn time_runs_while_a_cpu_prints() -> Outcome {
    // A printer pinned to CPU 0 writes big buffers; a timer on CPU 1 sleeps 20 ms
    // meanwhile: its sleep must not wait for the printing to end.
    let printer = crate::spawn("usertests", "flood")?;
    time::sleep_ms(5);
    let timer = crate::spawn("usertests", "timer")?;
    let t = process::wait(timer).map_err(|e| format!("{e:?}"))?;
    let p = process::wait(printer).map_err(|e| format!("{e:?}"))?;
    check(&format!("the printer finished (exit {p})"), p == 0)?;
    check(
        &format!("a 20 ms sleep on CPU 1 took {t} ms while CPU 0 printed"),
        t < 500,
    )
}

pub fn attach_while_mapping_does_not_hang() -> Outcome {
    // Two threads of one process on one CPU: one maps and unmaps (holding its
    // address space's lock, preemptible), the other attaches (taking its holdings'
    // lock, then the address space's). Neither may spin with interrupts off on a
    // lock the other holds preempted. A hang here is a timeout of the whole run.
    let code = crate::run_child("map-and-attach")?;
    check(
        &format!("map/unmap and attach in two threads (exit {code})"),
        code == 0,
    )
}

pub fn a_small_write_returns_while_another_cpu_floods() -> Outcome {
    let printer = crate::spawn("usertests", "flood")?;
    time::sleep_ms(5);
    let writer = crate::spawn("usertests", "small-writes")?;
    let worst = process::wait(writer).map_err(|e| format!("{e:?}"))?;
    let p = process::wait(printer).map_err(|e| format!("{e:?}"))?;
    check(&format!("the printer finished (exit {p})"), p == 0)?;
    check(
        &format!("the slowest one-line write on CPU 1 took {worst} ms while CPU 0 flooded"),
        worst < 500,
    )
}

/// Bytes per write of `flood`, and writes: long enough that the old console (IRQs off
/// for a whole write) stopped time for longer than the bound above.
const FLOOD_BYTES: usize = 256 * 1024;
const FLOODS: usize = 8;

/// Child modes of this area; `None` if `mode` is not one of them.
pub fn child(mode: &str) -> Option<i32> {
    Some(match mode {
        "block-recv" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            if ch.send(b"ready").is_err() {
                return Some(11);
            }
            let mut buf = [0u8; 8];
            let _ = ch.recv(&mut buf);
            12
        }
        "flood" => {
            if process::set_cpu(0).is_err() {
                return Some(10);
            }
            // Blanks, then a newline: the test log stays readable.
            let mut buf = vec![b' '; FLOOD_BYTES];
            buf[FLOOD_BYTES - 1] = b'\n';
            let s = core::str::from_utf8(&buf).unwrap_or("");
            for _ in 0..FLOODS {
                print!("{s}");
            }
            0
        }
        "small-writes" => {
            if process::set_cpu(1).is_err() {
                return Some(0);
            }
            let mut worst = 0;
            for _ in 0..20 {
                let t0 = time::uptime_ms();
                println!("usertests: a small write");
                worst = worst.max(time::uptime_ms() - t0);
                time::sleep_ms(5);
            }
            worst.min(1000) as i32
        }
        "map-and-attach" => {
            let Ok((a, _b)) = chan::create() else {
                return Some(10);
            };
            let Ok(t) = a.token() else { return Some(11) };
            let mapper = thread::spawn(|| {
                let t0 = time::uptime_ms();
                while time::uptime_ms() < t0 + 1000 {
                    let Ok(r) = zen_std::mem::Region::new(4 << 20) else {
                        return 1;
                    };
                    drop(r);
                }
                0
            });
            let Ok(mapper) = mapper else { return Some(12) };
            let tb = t.to_bytes();
            let t0 = time::uptime_ms();
            while time::uptime_ms() < t0 + 1000 {
                if sys(Syscall::ChanAttach, [tb.as_ptr() as u64, 0, 0, 0, 0, 0]).is_err() {
                    return Some(13);
                }
            }
            mapper.join().map_or(14, |c| c as i32)
        }
        "timer" => {
            if process::set_cpu(1).is_err() {
                // One CPU: nothing to show; report a pass.
                return Some(0);
            }
            let t0 = time::uptime_ms();
            time::sleep_ms(20);
            (time::uptime_ms() - t0).min(1000) as i32
        }
        _ => return None,
    })
}
