//! The test harness the QEMU suites share: a [`Job`] (one VM run, prepared up front)
//! yields [`Verdict`]s, one per test line of `cargo xtask test`. Helpers turn a
//! capture into verdicts: [`protocol_verdicts`] for runs that speak the kernel's test
//! protocol, [`failure_notes`] for what to show under a failed test.
//!
//! It sits below the suites (`test`, `usertest`, `imgtest`) so they share it without
//! importing each other: `test` runs the jobs the others prepare.

use crate::protocol::Ktest;
use crate::qemu::{Capture, Vm};
use crate::util::Result;

/// Serial lines shown when a QEMU test fails.
const TAIL: usize = 20;

/// One QEMU test's verdict.
pub struct Verdict {
    pub name: String,
    pub ok: bool,
    /// Shown under the test line (why it failed, serial tail).
    pub notes: Vec<String>,
}

/// One suite's run, built while preparing (so a preparation error is reported before
/// any VM starts) and run later on a worker thread of `test`.
pub type Job = Box<dyn FnOnce() -> Vec<Verdict> + Send>;

/// Notes for a failed run: how it ended, the serial tail, where the full log is.
pub fn failure_notes(vm: &Vm, cap: &Capture, why: Vec<String>) -> Vec<String> {
    let mut notes = why;
    notes.push(cap.ending());
    notes.push(format!(
        "last serial lines (all in target/qemu/{}.log):",
        vm.name
    ));
    notes.extend(cap.tail(TAIL).iter().map(|l| format!("| {l}")));
    notes
}

/// Verdicts of a run that spoke the test protocol (kernel tests, usertests): one per
/// reported test, one per test that never reported, and `<prefix>_protocol` for the
/// run as a whole (announced count, done line, QEMU's exit status).
pub fn protocol_verdicts(prefix: &str, vm: &Vm, k: &Ktest, cap: Result<Capture>) -> Vec<Verdict> {
    let cap = match cap {
        Ok(c) => c,
        Err(e) => {
            return vec![Verdict {
                name: prefix.into(),
                ok: false,
                notes: vec![e],
            }]
        }
    };
    let mut out: Vec<Verdict> = k
        .results
        .iter()
        .map(|r| Verdict {
            name: format!("{prefix}::{}", r.name),
            ok: r.ok,
            notes: vec![],
        })
        .collect();
    for i in 0..k.unreported() {
        let name = match (&k.pending, i) {
            (Some(p), 0) => format!("{prefix}::{p}"),
            _ => format!("{prefix}::<unreported #{}>", i + 1),
        };
        out.push(Verdict {
            name,
            ok: false,
            notes: vec!["never reported a result".into()],
        });
    }
    let problems = k.problems(cap.status.and_then(|s| s.code()));
    let ok = problems.is_empty();
    let notes = if ok {
        // Detail lines the run printed (the kernel's `zen-test:   3:1 tickets got
        // 300:100 quanta`).
        let details = cap
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("zen-test:   ").map(str::to_string));
        std::iter::once(format!(
            "{} tests on {} CPUs, {}",
            k.results.len(),
            vm.smp,
            cap.ending()
        ))
        .chain(details)
        .collect()
    } else {
        failure_notes(vm, &cap, problems)
    };
    out.push(Verdict {
        name: format!("{prefix}_protocol"),
        ok,
        notes,
    });
    out
}
