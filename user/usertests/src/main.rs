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

mod audit;
mod calls;
mod capabilities;
mod disk;
mod fpu;
mod fuzz;
mod grants;
mod ipc;
mod memory;
mod policy;
mod powercut;
mod processes;
mod regcalls;
mod store;
mod threads;

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
pub(crate) fn bad_pointers() -> [(&'static str, u64); 6] {
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

/// Kills and reaps every process of `pids` (the hogs a limits test started).
pub(crate) fn kill_all(pids: &[u32]) {
    for &p in pids {
        let _ = process::kill(p);
    }
    for &p in pids {
        let _ = process::wait(p);
    }
}

pub(crate) fn run_child(arg: &str) -> Result<u64, String> {
    let pid = spawn("usertests", arg)?;
    process::wait(pid).map_err(|e| format!("wait {pid}: {}", e.as_str()))
}

pub(crate) fn own_code() -> u64 {
    main as fn() -> i32 as usize as u64
}

pub(crate) fn attach_raw(t: &TokenSlot) -> Result<u64, Error> {
    let b = t.to_bytes();
    sys(Syscall::ChanAttach, [b.as_ptr() as u64, 0, 0, 0, 0, 0])
}

pub(crate) fn send_raw(t: &TokenSlot) -> Result<u64, Error> {
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
pub(crate) fn frames_come_back(mode: &str) -> Outcome {
    check(&format!("warm-up {mode}"), run_child(mode)? == 0)?;
    let before = usage_settled()?;
    check(&format!("child {mode}"), run_child(mode)? == 0)?;
    usage_back(before, mode)
}

const TESTS: &[(&str, fn() -> Outcome)] = &[
    // First: they make channels, which live as long as their creator (at most 128).
    ("disk::devices_are_listed", disk::devices_are_listed),
    ("disk::blocks_round_trip", disk::blocks_round_trip),
    (
        "disk::bad_requests_are_refused",
        disk::bad_requests_are_refused,
    ),
    (
        "disk::drivers_get_only_their_device",
        disk::drivers_get_only_their_device,
    ),
    (
        "disk::a_driver_gets_bounded_vectors_and_its_own_window",
        disk::a_driver_gets_bounded_vectors_and_its_own_window,
    ),
    // The store before the partition test: tagfsd formats the scratch root
    // partition, which that test then fills with blocks xtask counts on the host.
    (
        "store::spawn_image_refuses_bad_images",
        store::spawn_image_refuses_bad_images,
    ),
    ("store::the_store_serves_programs", || {
        in_child_with_system("the_store_serves_programs")
    }),
    (
        "disk::partitions_confine_clients",
        disk::partitions_confine_clients,
    ),
    ("disk::stray_dma_is_stopped", disk::stray_dma_is_stopped),
    (
        "disk::lost_commands_are_aborted_then_reset",
        disk::lost_commands_are_aborted_then_reset,
    ),
    (
        "disk::hostile_clients_cost_only_themselves",
        disk::hostile_clients_cost_only_themselves,
    ),
    ("disk::killed_driver_restarts", disk::killed_driver_restarts),
    ("processes::unknown_calls", processes::unknown_calls),
    (
        "processes::registers_across_a_call",
        processes::registers_across_a_call,
    ),
    ("processes::getpid", processes::getpid),
    ("processes::write", processes::write),
    ("processes::read", processes::read),
    ("processes::time_and_yield", processes::time_and_yield),
    ("memory::map_unmap", memory::map_unmap),
    ("memory::heap", memory::heap),
    ("processes::spawn_and_wait", processes::spawn_and_wait),
    ("processes::getarg", processes::getarg),
    (
        "processes::faults_kill_only_the_process",
        processes::faults_kill_only_the_process,
    ),
    ("processes::kill", processes::kill),
    ("processes::listings", processes::listings),
    ("processes::no_leaks", processes::no_leaks),
    ("processes::process_limit", processes::process_limit),
    ("ipc::ipc_round_trip", ipc::ipc_round_trip),
    ("ipc::poll_many", ipc::poll_many),
    ("ipc::destroy_ends_a_channel", ipc::destroy_ends_a_channel),
    ("calls::call_and_reply", calls::call_and_reply),
    (
        "calls::call_needs_send_and_recv",
        calls::call_needs_send_and_recv,
    ),
    (
        "calls::a_dropped_slot_keeps_the_channel",
        calls::a_dropped_slot_keeps_the_channel,
    ),
    (
        "calls::killed_caller_leaves_nothing",
        calls::killed_caller_leaves_nothing,
    ),
    (
        "calls::revoke_ends_a_waiting_call",
        calls::revoke_ends_a_waiting_call,
    ),
    (
        "regcalls::round_trips_on_one_and_two_cpus",
        regcalls::round_trips_on_one_and_two_cpus,
    ),
    (
        "regcalls::rights_are_checked_each_side",
        regcalls::rights_are_checked_each_side,
    ),
    (
        "regcalls::reply_handles_work_once",
        regcalls::reply_handles_work_once,
    ),
    (
        "regcalls::a_server_that_ends_fails_its_calls",
        regcalls::a_server_that_ends_fails_its_calls,
    ),
    (
        "regcalls::revoke_and_destroy_end_every_wait",
        regcalls::revoke_and_destroy_end_every_wait,
    ),
    (
        "regcalls::killed_callers_and_servers_leave_nothing",
        regcalls::killed_callers_and_servers_leave_nothing,
    ),
    ("regcalls::a_full_end_is_busy", regcalls::a_full_end_is_busy),
    (
        "regcalls::a_killed_server_passes_its_call_on",
        regcalls::a_killed_server_passes_its_call_on,
    ),
    (
        "capabilities::capabilities_are_checked",
        capabilities::capabilities_are_checked,
    ),
    (
        "capabilities::cap_send_over_a_channel",
        capabilities::cap_send_over_a_channel,
    ),
    ("grants::page_grants", grants::page_grants),
    ("grants::grant_errors", grants::grant_errors),
    ("grants::grants_die_with_their_sender", || {
        in_child("grants_die_with_their_sender")
    }),
    (
        "ipc::ipc_and_sleep_leak_nothing",
        ipc::ipc_and_sleep_leak_nothing,
    ),
    ("threads::threads", threads::threads),
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
        "rights::revoke_after_a_silent_publish_says_denied",
        rights::revoke_after_a_silent_publish_says_denied,
    ),
    (
        "rights::revoke_while_the_peer_maps_and_faults",
        rights::revoke_while_the_peer_maps_and_faults,
    ),
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
        "audit::the_audit_log_is_signed_and_needs_its_right",
        audit::the_audit_log_is_signed_and_needs_its_right,
    ),
    (
        "policy::each_rule_kind_refuses_as_written",
        policy::each_rule_kind_refuses_as_written,
    ),
    (
        "limits::map_unmap_frees_page_tables",
        limits::map_unmap_frees_page_tables,
    ),
    (
        "limits::revoke_in_a_loop_leaves_no_tables",
        limits::revoke_in_a_loop_leaves_no_tables,
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
    ("limits::exhaustion", limits::exhaustion),
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
    ("policy::rules", policy::rules),
    (
        "the_store_serves_programs",
        store::the_store_serves_programs,
    ),
    (
        "grants_die_with_their_sender",
        grants::grants_die_with_their_sender,
    ),
];

/// Runs test `name` of [`IN_CHILD`] in a child process given the system token (to
/// open devices).
fn in_child_with_system(name: &str) -> Outcome {
    let sys = chan::system_cap().ok_or("no system token")?;
    let pid = chan::spawn_with_cap("usertests", &format!("test {name}"), sys, Rights::DEVICE)
        .map_err(|e| format!("spawn: {e:?}"))?;
    match process::wait(pid).map_err(|e| format!("wait: {e:?}"))? {
        0 => Ok(()),
        code => Err(format!(
            "in a child: exit {code} (its reason is printed above)"
        )),
    }
}

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

/// Helper modes, selected by the argument.
fn child(arg: &str) -> i32 {
    let mut words = arg.split(' ');
    let mode = words.next().unwrap_or("");
    let num = words
        .clone()
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0);
    match mode {
        "disk-client" => return disk::client(num),
        "disk-steal" => return disk::steal(words.next().unwrap_or("")),
        "disk-open" => return disk::open_and_exit(),
        "disk-vectors" => return disk::bind_vectors(),
        "store-steal" => return store::steal(words.next().unwrap_or("")),
        "store-client" => return store::client(num),
        "powercut" => return powercut::writer(),
        _ => {}
    }
    let found = rights::child(mode, arg)
        .or_else(|| audit::child(mode))
        .or_else(|| policy::child(mode))
        .or_else(|| waits::child(mode))
        .or_else(|| processes::child(mode, arg, &mut words, num))
        .or_else(|| memory::child(mode))
        .or_else(|| ipc::child(mode))
        .or_else(|| capabilities::child(mode, &mut words))
        .or_else(|| grants::child(mode))
        .or_else(|| threads::child(mode))
        .or_else(|| limits::child(mode))
        .or_else(|| calls::child(mode, words.clone().next().and_then(|w| w.parse().ok())))
        .or_else(|| regcalls::child(mode, words.clone().next().and_then(|w| w.parse().ok())));
    if let Some(code) = found {
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
        m if m.starts_with("fpu-") => fpu::child(m, num),
        "fuzz" => fuzz::fuzz_calls(num),
        _ => {
            eprintln!("usertests: unknown mode {arg}");
            3
        }
    }
}
