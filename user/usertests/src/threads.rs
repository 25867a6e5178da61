//! Threads: create, join, exit, a fault or kill ending all of them, limits and leaks.

use crate::*;

pub(crate) fn threads() -> Outcome {
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
    // Moving a process between CPUs, in a fresh process (this one has had threads).
    let code = run_child("set-cpu-rules")?;
    check(&format!("set_cpu's rules (child exit {code})"), code == 0)?;
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

/// The `set-cpu-rules` child: not to a CPU that is not there, not with threads, and
/// not once it has ever had a second thread.
fn set_cpu_rules() -> Outcome {
    use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use zen_std::sync::Arc;
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
        expect(
            "set_cpu after a second thread ended",
            sys(Syscall::SetCpu, [0, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
        )
    } else {
        expect(
            "set_cpu(1) on one CPU",
            two_cpus,
            Err(Error::InvalidArgument),
        )?;
        println!("usertests: one CPU, set_cpu between CPUs not tried");
        Ok(())
    }
}

/// Child modes of this area; `None` if `mode` is not one of them.
pub(crate) fn child(mode: &str) -> Option<i32> {
    Some(match mode {
        "set-cpu-rules" => match set_cpu_rules() {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("set-cpu-rules: {why}");
                1
            }
        },
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
                    return Some(10);
                }
            }
            time::sleep_ms(3_600_000);
            1
        }
        "kill-threads" => {
            let Ok(pid) = process::spawn("usertests", "threads-sleep") else {
                return Some(10);
            };
            time::sleep_ms(30);
            let killed = process::kill(pid).is_ok();
            (!killed || process::wait(pid) != Ok(KILLED_EXIT_CODE)) as i32
        }
        _ => return None,
    })
}
