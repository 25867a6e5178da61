//! `cargo xtask verify`: the checks that cover every input or every interleaving up to a
//! bound, at full length (`cargo xtask test` runs the fast part: the proofs and the
//! loom models):
//!
//! 1. the SMT proofs of tools/prove (Z3 over bit-vectors), one line each;
//! 2. the loom model checks (every `lib/*/tests/loom.rs`, each at the preemption bound
//!    its file states);
//! 3. mutation testing (cargo-mutants) of lib/ipc, lib/sched, lib/cap and lib/frames:
//!    each crate's mutants caught by its own tests, as a share (installs cargo-mutants
//!    with `cargo install` when it is missing; `--no-mutants` skips this part, which
//!    takes the longest).

use std::process::Command;

use crate::util::{root, target, Result};

/// The crates mutation testing covers (the list).
const MUTATED: &[&str] = &["zen-ipc", "zen-sched", "zen-cap", "zen-frames"];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(what: &str, c: &mut Command) -> Result {
    println!("xtask verify: {what}");
    let s = c
        .current_dir(root())
        .status()
        .map_err(|e| format!("{what}: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({s})"))
    }
}

pub fn run_all(mutants: bool) -> Result {
    crate::setup::ensure()?;
    run(
        "SMT proofs (tools/prove)",
        cargo().args(["run", "--release", "-q", "-p", "zen-prove"]),
    )?;
    if let Some(mut c) = crate::test::loom_run() {
        run("loom model checks", &mut c)?;
    }
    if mutants {
        mutation()?;
    }
    Ok(())
}

/// cargo-mutants over each crate of `MUTATED`, with a summary line per crate.
fn mutation() -> Result {
    let have = cargo()
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        run(
            "installing cargo-mutants (cargo install cargo-mutants --locked)",
            cargo().args(["install", "cargo-mutants", "--locked"]),
        )?;
    }
    let mut lines = Vec::new();
    for p in MUTATED {
        let out = target().join("mutants").join(p);
        // cargo-mutants exits non-zero when a mutant survives: the counts are the
        // result, read from its outcome files, not from its status.
        let _ = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["mutants", "--no-shuffle", "-j", "2", "-p", p, "--output"])
            .arg(&out)
            .current_dir(root())
            .status();
        let read = |f: &str| {
            std::fs::read_to_string(out.join("mutants.out").join(f))
                .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0)
        };
        let (caught, missed, timeout, unviable) = (
            read("caught.txt"),
            read("missed.txt"),
            read("timeout.txt"),
            read("unviable.txt"),
        );
        let viable = caught + missed + timeout;
        let share = if viable == 0 {
            0.0
        } else {
            100.0 * (caught + timeout) as f64 / viable as f64
        };
        lines.push(format!(
            "{p}: {share:.1}% caught ({caught} caught, {timeout} timed out, {missed} missed, \
             {unviable} unviable); survivors in {}",
            out.join("mutants.out/missed.txt").display()
        ));
    }
    for l in &lines {
        println!("xtask verify: mutants: {l}");
    }
    Ok(())
}
