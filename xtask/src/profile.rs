//! `cargo xtask bench --only ipc-profile`: where a call round trip's and a page
//! grant's instructions go, step by step, from a kernel built with the `profile`
//! feature (kernel/src/prof.rs), and what an audit checkpoint's signature costs.

use crate::build::{self, Artifacts, Kernel};
use crate::image::{esp_dir, EspContents};
use crate::qemu::Vm;
use crate::row::Row;
use crate::util::{read, target, Result};
use std::time::Duration;

/// Where a call round trip's instructions go, and a page grant's: the kernel built
/// with the `profile` feature (kernel/src/prof.rs) counts each step of `msg_call`
/// (and the user-mode part between calls) and of grant_create; two boots of
/// `ipcbench profile:N` (or `profile-grants:N`), with N and 2N operations, give one
/// operation's share of each step as (T(2N) - T(N)) / N, with boot, set-up and
/// warm-up cancelled out. Both sides of a round trip are in each step (a client's
/// call and the server's reply_recv).
pub fn ipc_profile(_ctx: &mut crate::bench::Ctx) -> Result<Vec<Row>> {
    crate::setup::ensure()?;
    let a = build::build(Kernel::Profile)?;
    let mut rows = Vec::new();
    // Call round trips, then page grants (64 KiB, the receiver maps and reads each).
    for (mode, n, what, steps) in [
        (
            "profile",
            10_000u64,
            "call round trip",
            &PROFILE_STEPS[..11],
        ),
        (
            "profile-regs",
            10_000,
            "register call round trip",
            &PROFILE_STEPS[..11],
        ),
        (
            "profile-grants",
            1_000,
            "64 KiB page grant",
            &PROFILE_STEPS[11..],
        ),
    ] {
        let runs = profile_runs(&a, mode, n)?;
        let get = |run: &[(String, u64)], key: &str| -> Result<u64> {
            run.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("the profile run printed no {key}="))
        };
        let mut sum = 0;
        for step in steps {
            let key = format!("prof_{step}");
            let (t1, t2) = (get(&runs[0], &key)?, get(&runs[1], &key)?);
            let m = format!("{key}_marks");
            let marks = get(&runs[1], &m)?.saturating_sub(get(&runs[0], &m)?);
            let per = t2.saturating_sub(t1) / n;
            sum += per;
            rows.push(Row {
                suite: "ipc-profile",
                name: format!("{what}, step `{step}`"),
                value: per as f64,
                unit: "instr/op",
                note: format!("{} marks each", marks as f64 / n as f64),
            });
        }
        rows.push(Row {
            suite: "ipc-profile",
            name: format!("{what}, these steps together"),
            value: sum as f64,
            unit: "instr/op",
            note: "the sum of the steps above, as the kernel's marks see them".into(),
        });
        if mode == "profile-grants" {
            // Every checkpoint's signature (at least the one at shutdown), on average.
            let (t, m) = (
                get(&runs[1], "prof_sign")?,
                get(&runs[1], "prof_sign_marks")?,
            );
            rows.push(Row {
                suite: "ipc-profile",
                name: "an audit checkpoint's ed25519 signature".into(),
                value: (t / m.max(1)) as f64,
                unit: "instr/op",
                note: format!("{m} signatures in the boot (ed25519-compact built for size)"),
            });
        }
    }
    Ok(rows)
}

/// Two boots of `ipcbench MODE:N` and `MODE:2N` on the profiling kernel: their
/// figures.
fn profile_runs(a: &Artifacts, mode: &str, n: u64) -> Result<Vec<Vec<(String, u64)>>> {
    let mut runs = Vec::new();
    for count in [n, 2 * n] {
        let esp = esp_dir(
            &target().join(format!("esp-bench-{mode}-{count}")),
            &EspContents {
                stub: &a.stub,
                zenos_bin: &read(&a.zenos_test_bin)?,
                cmdline: Some(&format!("init=ipcbench arg={mode}:{count}")),
            },
        )?;
        let vm = Vm {
            icount: true,
            smp: 1,
            ..Vm::new(&format!("bench-{mode}-{count}"), &esp)
        };
        let found = crate::protocol::bench_figures(&vm, Duration::from_secs(300), |l| {
            l.contains("zen: bench profile done")
        })?;
        // A run whose work failed prints no count: its figures would be of nothing.
        if !found.iter().any(|(k, v)| k == "rounds" && *v == count) {
            return Err(format!(
                "{mode}:{count} did not finish its work (see target/qemu/{}.log)",
                vm.name
            ));
        }
        runs.push(found);
    }
    Ok(runs)
}

/// The steps kernel/src/prof.rs counts, in its order.
const PROFILE_STEPS: [&str; 15] = [
    "user", "dispatch", "token", "check", "wake", "prepare", "park", "swap", "switch", "resume",
    "tail", "grant", "policy", "share", "audit",
];
// (kernel/src/prof.rs also counts `presign` and `sign`: an audit checkpoint's
// signature, reported on its own below.)
