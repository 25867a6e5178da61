//! Tests of threads and the scheduler: counters, proportional share, real-time
//! priority, migration, sleep, and wake-ups under load.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{check, TestResult};
use crate::arch::percpu;
use crate::task::{self, Options};

pub fn edge_registry_empty() -> TestResult {
    let reg = &crate::edge::EDGE_REGISTRY;
    if !reg.is_empty() {
        for r in reg.iter() {
            crate::kprintln!("zen-test:   edge record {:?}", r);
        }
    }
    check(
        reg.is_empty() && reg.dropped() == 0,
        "EDGE_REGISTRY not empty after a clean boot",
    )
}

pub fn threads_bump_own_counters() -> TestResult {
    const N: usize = 8;
    const ROUNDS: u64 = 20_000;
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    let mut handles = Vec::new();
    for i in 0..N {
        let c = counters.clone();
        let h = task::spawn(Options::new("counter"), move || {
            for r in 0..ROUNDS {
                c[i].fetch_add(1, Ordering::Relaxed);
                if r % 1000 == 0 {
                    task::yield_now();
                }
            }
            i as u64 + 100
        })
        .map_err(|_| "spawn failed")?;
        handles.push(h);
    }
    for (i, h) in handles.into_iter().enumerate() {
        check(task::join(h) == i as u64 + 100, "wrong exit code")?;
    }
    check(
        counters.iter().all(|c| c.load(Ordering::Relaxed) == ROUNDS),
        "a counter is off",
    )?;
    check(task::thread_count() == 1, "threads not freed after join")
}

fn spinner(stop: Arc<AtomicBool>) -> impl FnOnce() -> u64 + Send {
    move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            core::hint::spin_loop();
        }
        n
    }
}

/// The CPU to run contention tests on: not the one this test thread sits on, if any.
fn other_cpu() -> usize {
    if percpu::online_count() > 1 {
        1
    } else {
        0
    }
}

pub fn proportional_share() -> TestResult {
    let cpu = other_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let a = task::spawn(
        Options::new("share-3").tickets(300).pin(cpu),
        spinner(stop.clone()),
    )
    .map_err(|_| "spawn")?;
    let b = task::spawn(
        Options::new("share-1").tickets(100).pin(cpu),
        spinner(stop.clone()),
    )
    .map_err(|_| "spawn")?;
    task::sleep_ticks(400);
    stop.store(true, Ordering::Relaxed);
    let (ta, tb) = (
        a.thread().ticks_run.load(Ordering::Relaxed),
        b.thread().ticks_run.load(Ordering::Relaxed),
    );
    task::join(a);
    task::join(b);
    crate::kprintln!("zen-test:   3:1 tickets got {}:{} quanta", ta, tb);
    check(tb > 0, "the 1-ticket thread never ran")?;
    let ratio_x1000 = ta * 1000 / tb;
    check(
        (2850..=3150).contains(&ratio_x1000),
        "share not within 5% of 3:1",
    )
}

pub fn realtime_runs_first() -> TestResult {
    let cpu = other_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let hog =
        task::spawn(Options::new("hog").pin(cpu), spinner(stop.clone())).map_err(|_| "spawn")?;
    task::sleep_ticks(5);
    // A real-time thread on the same CPU runs at once and to completion, and the stride
    // thread gets no quantum meanwhile.
    let hog_before = hog.thread().ticks_run.load(Ordering::Relaxed);
    let rt = task::spawn(Options::new("rt").pin(cpu).realtime(), || {
        let me = task::current();
        let start = crate::time::ticks();
        while crate::time::ticks() < start + 20 {
            core::hint::spin_loop();
        }
        me.ticks_run.load(Ordering::Relaxed)
    })
    .map_err(|_| "spawn")?;
    let rt_ticks = task::join(rt);
    let hog_during = hog.thread().ticks_run.load(Ordering::Relaxed) - hog_before;
    stop.store(true, Ordering::Relaxed);
    task::join(hog);
    crate::kprintln!(
        "zen-test:   real-time thread took {} ticks, stride hog {} meanwhile",
        rt_ticks,
        hog_during
    );
    check(rt_ticks >= 15, "real-time thread did not keep the CPU")?;
    check(
        hog_during <= 2,
        "stride thread ran while a real-time thread was runnable",
    )
}

pub fn migration() -> TestResult {
    let n = percpu::online_count();
    // Explicit moves: the thread re-pins itself to every CPU in turn.
    let h = task::spawn(Options::new("mover"), move || {
        let mut ok = 0;
        for target in (0..n).rev().chain(0..n) {
            if task::pin_current(target).is_ok() && percpu::current().id() == target {
                ok += 1;
            }
        }
        ok
    })
    .map_err(|_| "spawn")?;
    check(
        task::join(h) == 2 * n as u64,
        "a pinned thread did not run where it was pinned",
    )?;
    if n == 1 {
        return Ok(());
    }
    // Stealing: many threads queued on this CPU spread to the idle ones.
    let seen = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for _ in 0..2 * n {
        let seen = seen.clone();
        hs.push(
            task::spawn(Options::new("spread"), move || {
                let end = crate::time::ticks() + 10;
                while crate::time::ticks() < end {
                    seen.fetch_or(1 << percpu::current().id(), Ordering::Relaxed);
                    core::hint::spin_loop();
                }
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    for h in hs {
        task::join(h);
    }
    let cpus = seen.load(Ordering::Relaxed).count_ones() as usize;
    crate::kprintln!(
        "zen-test:   {} threads ran on {} of {} CPUs",
        2 * n,
        cpus,
        n
    );
    check(cpus == n, "idle CPUs did not steal work")
}

pub fn sleep_lasts() -> TestResult {
    let start = crate::time::ticks();
    task::sleep_ticks(10);
    let slept = crate::time::ticks() - start;
    check(
        (10..=30).contains(&slept),
        "sleep(10 ticks) was too short or far too long",
    )
}

pub fn no_lost_wakeups() -> TestResult {
    const ROUNDS: u64 = 3000;
    let n = percpu::online_count();
    let turn = Arc::new(AtomicU64::new(0));
    let peers: Arc<spin::Mutex<Vec<Arc<task::Thread>>>> = Arc::new(spin::Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for side in 0..2u64 {
        let (turn, peers) = (turn.clone(), peers.clone());
        let opts = Options::new("pingpong").pin(if n > 2 { 1 + side as usize } else { 0 });
        hs.push(
            task::spawn(opts, move || {
                // Wait until both threads are known.
                while peers.lock().len() < 2 {
                    task::yield_now();
                }
                let other = peers.lock()[1 - side as usize].clone();
                loop {
                    let t = turn.load(Ordering::Acquire);
                    if t >= 2 * ROUNDS {
                        break;
                    }
                    if t % 2 == side {
                        turn.store(t + 1, Ordering::Release);
                        task::unpark(&other);
                    } else {
                        task::park();
                    }
                }
                task::unpark(&other);
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    peers.lock().extend(hs.iter().map(|h| h.thread().clone()));
    // Watchdog: every 2 s there must be progress; a lost wake-up stalls both sides.
    let mut last = 0;
    loop {
        task::sleep_ticks(200);
        let t = turn.load(Ordering::Acquire);
        if t >= 2 * ROUNDS {
            break;
        }
        if t == last {
            crate::kprintln!("zen-test:   stalled at turn {}", t);
            return Err("ping-pong stalled: a wake-up was lost");
        }
        last = t;
    }
    for h in hs {
        task::join(h);
    }
    crate::kprintln!("zen-test:   {} park/unpark pairs", 2 * ROUNDS);
    Ok(())
}

/// A thread woken early from a long timed sleep leaves nothing behind in its CPU's
/// sleeper list: once it is joined nothing holds it (nor its stack), long before the
/// tick it asked for. (An entry left behind kept exited user threads, their stacks and
/// their processes alive until the tick: forever, for a long `msg_poll` timeout.)
pub fn early_wake_frees_sleeper() -> TestResult {
    let h = task::spawn(Options::new("sleeper"), || {
        task::park_until(crate::time::ticks() + 1_000_000);
        0
    })
    .map_err(|_| "spawn")?;
    let weak = Arc::downgrade(h.thread());
    task::sleep_ticks(2);
    task::unpark(h.thread());
    task::join(h);
    // The CPU that ran it drops its own reference at its next switch.
    for _ in 0..20 {
        if weak.strong_count() == 0 {
            break;
        }
        task::sleep_ticks(1);
    }
    check(
        weak.strong_count() == 0,
        "a thread woken from a timed sleep is still referenced",
    )
}

/// Switches that cross between CPUs, hammered: no CPU may wait forever for a thread
/// another CPU is still leaving. `schedule` waits (interrupts off) for `next.on_cpu`
/// while it still holds `cur.on_cpu` itself, so two CPUs that each picked the thread
/// the other is leaving would wait for each other: a parked thread woken by a third
/// CPU and stolen while its CPU is still switching away, or two threads that
/// `pin_current` to each other's CPU at once. A deadlock hangs the machine (the
/// harness's timeout); the counts show the paths were taken.
pub fn crossing_switches_do_not_deadlock() -> TestResult {
    let n = percpu::online_count();
    let stop = Arc::new(AtomicBool::new(false));
    let (parks, moves) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Unpinned parkers, woken at once by wakers on the lower half of the CPUs: the
    // other CPUs idle and steal them.
    let mut parkers = Vec::new();
    for _ in 0..2 * n {
        let (stop, parks) = (stop.clone(), parks.clone());
        parkers.push(
            task::spawn(Options::new("parker"), move || {
                while !stop.load(Ordering::Relaxed) {
                    task::park();
                    parks.fetch_add(1, Ordering::Relaxed);
                }
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    let targets: Arc<Vec<Arc<task::Thread>>> =
        Arc::new(parkers.iter().map(|h| h.thread().clone()).collect());
    let mut others = Vec::new();
    for cpu in 0..n.div_ceil(2) {
        let (stop, targets) = (stop.clone(), targets.clone());
        others.push(
            task::spawn(Options::new("waker").pin(cpu), move || {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    task::unpark(&targets[i % targets.len()]);
                    i += 1;
                    if i % 8 == 0 {
                        task::yield_now();
                    }
                }
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    // Movers: pairs that swap CPUs 2p and 2p+1 over and over in opposite phase (so
    // their re-pins cross), and on an odd CPU count one that walks every CPU.
    for k in 0..n {
        let (stop, moves) = (stop.clone(), moves.clone());
        let (here, there) = if k + 1 == n && n % 2 == 1 {
            (k, 0)
        } else {
            (k, k ^ 1)
        };
        others.push(
            task::spawn(Options::new("mover").pin(here), move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let to = if n % 2 == 1 && here + 1 == n {
                        i % n
                    } else if i % 2 == 0 {
                        there
                    } else {
                        here
                    };
                    i += 1;
                    if task::pin_current(to).is_ok() {
                        moves.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    // Then widen the windows: every switch starts late, so wake-ups, steals and
    // re-pins land in the middle of other CPUs' switches.
    task::sleep_ticks(30);
    task::SCHEDULE_DELAY.store(20_000, Ordering::Relaxed);
    task::sleep_ticks(30);
    task::SCHEDULE_DELAY.store(0, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for h in others {
        task::join(h);
    }
    for h in parkers {
        task::unpark(h.thread());
        task::join(h);
    }
    let (parks, moves) = (parks.load(Ordering::Relaxed), moves.load(Ordering::Relaxed));
    crate::kprintln!("zen-test:   {} parks woken, {} moves", parks, moves);
    check(parks > 0 && moves > 0, "the hammer did not run")?;
    check(task::thread_count() == 1, "threads not freed after join")
}
