//! x87/SSE state isolation: every thread keeps its own XMM registers, MXCSR and x87
//! control word across context switches, and a new process or thread starts from
//! the clean default state, never with another thread's values.
//!
//! The children pin themselves to CPU 0, so they are switched against each other
//! there (on one CPU as on two), and make system calls that check capability tokens,
//! so kernel code that used the vector registers would be caught as well.

use crate::{check, expect, run_child, spawn, Outcome};
use zen_std::prelude::*;
use zen_std::simd::{fill_vector_registers, vector_registers_hold, vector_state_is_default};
use zen_std::{chan, process, thread, time};

/// Yields (with a sleep now and then) per thread of an `fpu-hold` child.
const ROUNDS: u32 = 1500;
/// New processes and threads an `fpu-dirty` child starts.
const STARTS: u32 = 4;

/// Two processes of two threads each on one CPU, each thread with its own pattern in
/// its registers, switched against each other many times: each must find its own. A
/// third does the same on CPU 1 (when there is one): every CPU must allow SSE.
pub fn state_is_per_thread() -> Outcome {
    let a = spawn("usertests", "fpu-hold 81985529216486895")?; // 0x0123456789abcdef
    let b = spawn("usertests", "fpu-hold 18364758544493064720")?; // 0xfedcba9876543210
    let c = spawn("usertests", "fpu-hold-cpu1 1311768467463790320")?; // 0x123456789abcdef0
    let (wa, wb, wc) = (process::wait(a), process::wait(b), process::wait(c));
    expect("first fpu-hold child", wa, Ok(0))?;
    expect("second fpu-hold child", wb, Ok(0))?;
    expect("fpu-hold child on CPU 1", wc, Ok(0))
}

/// A process with dirty registers starts processes and threads on its CPU: each must
/// begin with zero XMM registers and the default MXCSR and x87 control word, and the
/// starter must keep its own values.
pub fn new_threads_start_clean() -> Outcome {
    // Before anything of ours runs on a CPU, a fresh process must be clean as well.
    check("a new process starts clean", run_child("fpu-clean")? == 0)?;
    let code = run_child("fpu-dirty 6510615555426900570")?; // 0x5a5a5a5a5a5a5a5a
    check(
        &format!("fpu-dirty child: {}", dirty_failure(code)),
        code == 0,
    )
}

fn dirty_failure(code: u64) -> &'static str {
    match code {
        0 => "ok",
        1 => "set_cpu(0) failed",
        2 => "a new process did not start clean",
        3 => "a new thread did not start clean",
        4 => "its own registers changed",
        _ => "it died",
    }
}

/// The child modes: `fpu-hold PATTERN`, `fpu-hold-cpu1 PATTERN`, `fpu-dirty PATTERN`,
/// `fpu-clean`.
pub fn child(mode: &str, pattern: u64) -> i32 {
    match mode {
        // First thing, before any other code of ours could run: the state it began with.
        "fpu-clean" => (!vector_state_is_default()) as i32,
        "fpu-hold" => hold(0, pattern),
        // CPU 0 if there is no CPU 1.
        "fpu-hold-cpu1" => hold(1, pattern),
        "fpu-dirty" => dirty(pattern),
        _ => 3,
    }
}

/// Fills the registers with `pattern` and checks them over many switches; a second
/// thread does the same with the complement.
fn hold(cpu: usize, pattern: u64) -> i32 {
    if process::set_cpu(cpu).is_err() && process::set_cpu(0).is_err() {
        return 2;
    }
    let other = thread::spawn(move || hold_rounds(!pattern) as u64);
    let mine = hold_rounds(pattern);
    let theirs = other.and_then(|h| h.join()) == Ok(1);
    (!(mine && theirs)) as i32
}

fn hold_rounds(pattern: u64) -> bool {
    // A token for the kernel to check and re-mint now and then: its capability MACs
    // (BLAKE3) must not use the vector registers either.
    let Ok((cap, _)) = chan::create() else {
        return false;
    };
    fill_vector_registers(pattern);
    for i in 0..ROUNDS {
        let ok = match i % 128 {
            127 => {
                time::sleep_ms(1);
                true
            }
            n if n % 16 == 5 => cap.revoke().is_ok(),
            _ => {
                process::yield_now();
                true
            }
        };
        if !ok || !vector_registers_hold(pattern) {
            return false;
        }
    }
    true
}

fn dirty(pattern: u64) -> i32 {
    if process::set_cpu(0).is_err() {
        return 1;
    }
    fill_vector_registers(pattern);
    for _ in 0..STARTS {
        let clean = spawn("usertests", "fpu-clean")
            .and_then(|pid| process::wait(pid).map_err(|e| format!("{e:?}")));
        if clean != Ok(0) {
            return 2;
        }
        let t = thread::spawn(|| vector_state_is_default() as u64);
        if t.and_then(|h| h.join()) != Ok(1) {
            return 3;
        }
        if !vector_registers_hold(pattern) {
            return 4;
        }
    }
    0
}
