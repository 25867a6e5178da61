//! Processes: the basic calls (getpid, write, read, time), spawn and wait, arguments, faults that kill only the process, kill, listings, and the process limit.

use crate::*;

pub(crate) fn registers_across_a_call() -> Outcome {
    use zen_std::testing::{registers_across, KEEP};
    // docs/abi.md: rbx, rbp and r12-r15 are kept; the argument registers come back
    // zeroed, whatever went in, on a call that works, one that fails and one the
    // kernel does not know.
    let args = [u64::MAX, 0xdead_beef, 7, 1 << 63, 42, 0x4000];
    for (what, nr) in [
        ("getpid", Syscall::GetPid as u64),
        ("a failing map", Syscall::Map as u64),
        ("an unknown call", SYSCALL_COUNT + 7),
    ] {
        let after = registers_across(nr, args);
        if after.kept != KEEP || after.args != [0; 6] {
            return Err(format!(
                "{what}: kept {:x?} (want {KEEP:x?}), arguments {:x?} (want zeroes)",
                after.kept, after.args
            ));
        }
    }
    Ok(())
}

pub(crate) fn unknown_calls() -> Outcome {
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

pub(crate) fn getpid() -> Outcome {
    let pid = sys(Syscall::GetPid, [0; 6]).map_err(|e| format!("{e:?}"))?;
    check("pid is positive", pid > 0)?;
    let list = process::list().map_err(|e| format!("ps: {e:?}"))?;
    check(
        "ps lists this pid as usertests",
        list.iter()
            .any(|p| p.pid as u64 == pid && p.name() == "usertests"),
    )
}

pub(crate) fn write() -> Outcome {
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

pub(crate) fn read() -> Outcome {
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

pub(crate) fn time_and_yield() -> Outcome {
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

pub(crate) fn spawn_and_wait() -> Outcome {
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

pub(crate) fn getarg() -> Outcome {
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

pub(crate) fn faults_kill_only_the_process() -> Outcome {
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

pub(crate) fn kill() -> Outcome {
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

pub(crate) fn listings() -> Outcome {
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

pub(crate) fn no_leaks() -> Outcome {
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
    // A process's last frames go once its thread has switched away on its CPU, just
    // after `wait` returns (the other CPU may be busy): give it up to a second.
    let mut after = 0;
    for _ in 0..100 {
        after = mem::info().map_err(|e| format!("{e:?}"))?.free_frames;
        if after >= before {
            break;
        }
        time::sleep_ms(10);
    }
    check(
        &format!("free frames back where they were: {before} -> {after}"),
        before == after,
    )
}

pub(crate) fn process_limit() -> Outcome {
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
    kill_all(&pids);
    check(
        &format!(
            "the process table fills up cleanly ({} started, then {refused:?})",
            pids.len()
        ),
        refused == Some(Error::TooManyProcesses),
    )?;
    check("and works again after", run_child("exit 5")? == 5)
}

/// Recurses until the stack runs into its guard page. `black_box` keeps the compiler
/// from proving the recursion endless and replacing it with a loop.
pub(crate) fn recurse(n: u64) -> u64 {
    let pad = core::hint::black_box([n; 64]);
    if core::hint::black_box(n) == u64::MAX {
        return 0;
    }
    recurse(pad[(n % 64) as usize] + 1) + pad[0]
}

/// Child modes of this area; `None` if `mode` is not one of them (`arg` is the whole
/// argument, `words` what follows the mode, `num` its first word as a number).
pub(crate) fn child(
    mode: &str,
    arg: &str,
    words: &mut core::str::Split<'_, char>,
    num: u64,
) -> Option<i32> {
    Some(match mode {
        "exit" => process::exit(num),
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
        "nap" => {
            time::sleep_ms(50);
            4
        }
        "kill-sleeper" => {
            let Ok(pid) = process::spawn("usertests", "sleep") else {
                return Some(10);
            };
            time::sleep_ms(20);
            let killed = process::kill(pid).is_ok();
            (!killed || process::wait(pid) != Ok(KILLED_EXIT_CODE)) as i32
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
        _ => return None,
    })
}
