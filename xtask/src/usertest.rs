//! The user-space suites of `cargo xtask test`:
//!
//! - `qemu::user::*`: boots with `init=usertests`, the in-OS test program that calls
//!   every system call with good and bad arguments; it speaks the kernel's test
//!   protocol and shuts the machine down with its verdict.
//! - `qemu::shell`: boots to the shell and drives it over the serial port like a
//!   person at a terminal: commands, tab completion, history, a background program
//!   killed, an unknown command, `shutdown`.

use crate::build::Artifacts;
use crate::harness::{failure_notes, protocol_verdicts, Job, Verdict};
use crate::image::{esp_dir, EspContents};
use crate::protocol::Ktest;
use crate::qemu::{Reply, Vm, EXIT_SUCCESS};
use crate::util::{read, target, Result};
use std::time::Duration;

/// usertests spawns ~100 processes; under TCG that is well under a minute.
const USER_TIMEOUT: Duration = Duration::from_secs(240);
const SHELL_TIMEOUT: Duration = Duration::from_secs(180);

/// An ESP with `zenos-test.bin`: both usertests and the shell session run test
/// programs.
fn esp(a: &Artifacts, name: &str, cmdline: Option<&str>) -> Result<std::path::PathBuf> {
    esp_dir(
        &target().join(name),
        &EspContents {
            stub: &a.stub,
            zenos_bin: &read(&a.zenos_test_bin)?,
            cmdline,
        },
    )
}

/// An ESP with the test archive and `cmdline` (for the store suites).
pub fn test_esp(a: &Artifacts, name: &str, cmdline: Option<&str>) -> Result<std::path::PathBuf> {
    esp(a, name, cmdline)
}

pub fn usertests_job(a: &Artifacts) -> Result<Job> {
    let esp = esp(a, "esp-usertests", Some("init=usertests"))?;
    let scratch = target().join("usertests-nvme.img");
    Ok(Box::new(move || {
        // A fresh scratch disk each run: what the tests wrote is checked below.
        let made = crate::disk::scratch_image()
            .and_then(|d| std::fs::write(&scratch, d).map_err(|e| e.to_string()));
        if let Err(e) = made {
            return vec![Verdict {
                name: "qemu::user".into(),
                ok: false,
                notes: vec![format!("cannot write {}: {e}", scratch.display())],
            }];
        }
        let vm = Vm {
            smp: 2,
            nvme: Some(scratch.clone()),
            ..Vm::new("usertests", &esp)
        };
        let mut k = Ktest::default();
        let mut failures = Vec::new();
        let mut told: Option<usize> = None;
        let cap = vm.run_captured(USER_TIMEOUT, |l| {
            if let Some(n) = l.split("usertests: nvme tagged blocks ").nth(1) {
                if let Ok(n) = n.trim().parse::<usize>() {
                    told = Some(told.unwrap_or(0) + n);
                }
            }
            // Booted on two CPUs: the one-CPU fallback of the threads test is a failure.
            if l.contains("... FAILED") || l.contains("one CPU, set_cpu") {
                failures.push(l.to_string());
            }
            k.feed(l);
            false
        });
        let on_host = blocks_on_host(&scratch, told);
        let mut v = protocol_verdicts("qemu::user", &vm, &k, cap);
        v.push(on_host);
        if failures.iter().any(|l| l.contains("one CPU, set_cpu")) {
            if let Some(t) = v.iter_mut().find(|v| v.name == "qemu::user::threads") {
                t.ok = false;
                t.notes
                    .push("booted on two CPUs, yet set_cpu(1) was refused".to_string());
            }
        }
        // Put each failure's reason under its test line.
        for verdict in v.iter_mut().filter(|v| !v.ok) {
            let short = verdict.name.trim_start_matches("qemu::user::");
            if let Some(l) = failures
                .iter()
                .find(|l| l.contains(&format!("test {short} ...")))
            {
                verdict.notes.push(l.clone());
            }
        }
        v
    }))
}

/// After the VM: every block the disk tests tagged is on the disk file as written
/// (its own LBA, the tag, the pattern of its LBA), and there are as many as the
/// guest said it wrote.
fn blocks_on_host(path: &std::path::Path, told: Option<usize>) -> Verdict {
    let name = "qemu::user::nvme_blocks_on_host".to_string();
    let fail = |why: String| Verdict {
        name: name.clone(),
        ok: false,
        notes: vec![why],
    };
    let Some(told) = told else {
        return fail("the guest never said how many blocks it wrote".into());
    };
    let disk = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    let mut found = 0;
    for (lba, block) in disk.chunks_exact(512).enumerate() {
        if &block[8..16] != b"zenblock" {
            continue;
        }
        found += 1;
        let lba = lba as u64;
        let want = |i: usize| match i {
            0..=7 => lba.to_le_bytes()[i],
            8..=15 => b"zenblock"[i - 8],
            _ => (lba.wrapping_mul(31) as usize + i * 7 + (lba >> 8) as usize) as u8,
        };
        if let Some(i) = (0..512).find(|&i| block[i] != want(i)) {
            return fail(format!(
                "block {lba} byte {i}: {:#x}, want {:#x}",
                block[i],
                want(i)
            ));
        }
    }
    if found != told {
        return fail(format!(
            "{found} tagged blocks on the disk file, the guest wrote {told}"
        ));
    }
    Verdict {
        name,
        ok: true,
        notes: vec![format!("{found} blocks, each as written")],
    }
}

/// One exchange with the shell: what to type, and a test of the output lines that
/// must pass before the next step (it sees every line since the keys were typed).
struct Step {
    what: &'static str,
    keys: &'static str,
    done: fn(&[String]) -> bool,
}

const fn step(what: &'static str, keys: &'static str, done: fn(&[String]) -> bool) -> Step {
    Step { what, keys, done }
}

fn any(lines: &[String], f: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|l| f(l.trim_end()))
}

/// The session. `kill` needs the pid the shell printed, so it is typed by `shell_job`
/// itself after the `run ... &` step.
const SCRIPT: &[Step] = &[
    step("echo", "echo hello from the shell\r", |l| {
        any(l, |l| l == "hello from the shell")
    }),
    step("ps lists init and the shell", "ps\r", |l| {
        any(l, |l| l.contains("running") && l.ends_with(" init"))
            && any(l, |l| l.contains("running") && l.ends_with(" shell"))
    }),
    step("tab completes `upt` to uptime", "upt\t\r", |l| {
        any(l, |l| l.starts_with("up ") && l.ends_with(" s"))
    }),
    step(
        "history: three times up is the echo again",
        "\x1b[A\x1b[A\x1b[A\r",
        |l| any(l, |l| l == "hello from the shell"),
    ),
    step("mem", "mem\r", |l| {
        any(l, |l| {
            l.starts_with("memory: ") && l.contains("KiB free of")
        })
    }),
    step("help", "help\r", |l| {
        any(l, |l| l.contains("shutdown") && l.contains("power off"))
    }),
    step("programs", "programs\r", |l| {
        any(l, |l| {
            l.contains("init") && l.contains("shell") && l.contains("usertests")
        })
    }),
    step(
        "run waits and reports the exit code",
        "run usertests exit 3\r",
        |l| any(l, |l| l == "usertests: exit code 3"),
    ),
    step(
        "a faulting program is reported, the shell lives on",
        "run usertests fault null\r",
        |l| {
            any(l, |l| l.contains("killed: page fault"))
                && any(l, |l| l == "usertests: killed by a fault")
        },
    ),
    step("edges shows the fault", "edges\r", |l| {
        any(l, |l| l.starts_with("page fault"))
    }),
    step("the shell holds only init's system token", "caps\r", |l| {
        // POWER passed on by init, without GRANT: the shell cannot pass it further.
        any(l, |l| {
            l.contains("system") && l.trim_end().ends_with(" power|audit")
        }) && !any(l, |l| l.contains("channel"))
    }),
    step("audit shows the log, verified", "audit 5\r", |l| {
        any(l, |l| {
            l.starts_with("audit log intact (signed head checked): ")
        }) && any(l, |l| l.contains("started process"))
    }),
    step(
        "audit export prints the log for the host",
        "audit export 5eed0000000000000000000000c0ffee\r",
        |l| any(l, |l| l.starts_with("audit-export: end (")),
    ),
    step("channel makes two tokens", "channel\r", |l| {
        any(l, |l| {
            l.starts_with("channel created: end tokens in slots ")
        })
    }),
    step("caps lists them", "caps\r", |l| {
        let row = |l: &str, end: &str| {
            l.contains("channel")
                && l.contains(end)
                && l.contains("read|write|execute|map|send|recv|grant|revoke|destroy")
        };
        any(l, |l| l.starts_with("SLOT TYPE"))
            && any(l, |l| row(l, "end A"))
            && any(l, |l| row(l, "end B"))
    }),
    step(
        "devices lists the NVMe controller, driven by nvmed",
        "devices\r",
        |l| {
            any(l, |l| l.starts_with("ADDRESS"))
                && any(l, |l| {
                    l.contains("NVMe controller") && l.contains("confined") && l.contains("(nvmed)")
                })
        },
    ),
    step(
        "disks lists the scratch disk's partitions",
        "disks\r",
        |l| {
            any(l, |l| {
                l.starts_with("disk 0: 65536 blocks of 512 bytes") && l.ends_with("read-only")
            }) && any(l, |l| l.contains("EFI system") && l.contains("scratch ESP"))
                && any(l, |l| {
                    l.contains("TagFS root") && l.contains("scratch root")
                })
        },
    ),
    step("unknown command", "frobnicate\r", |l| {
        any(l, |l| l.starts_with("frobnicate: unknown command"))
    }),
    step("kill of a missing process", "kill 999\r", |l| {
        any(l, |l| l == "kill: 999: no such process")
    }),
    step("background run", "run usertests spin &\r", |l| {
        any(l, |l| l.starts_with("started usertests as process "))
    }),
];

pub fn shell_job(a: &Artifacts) -> Result<Job> {
    // Checkpoints every 8 entries, so the session prints some before its export.
    let esp = esp(a, "esp-shell", Some("audit_every=8"))?;
    let scratch = target().join("shell-nvme.img");
    std::fs::write(&scratch, crate::disk::scratch_image()?)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    Ok(Box::new(move || {
        // The scratch disk (its GPT) for `disks`; init's nvmed drives it.
        let vm = Vm {
            nvme: Some(scratch.clone()),
            ..Vm::new("shell", &esp)
        };
        let name = "qemu::shell".to_string();
        let mut at = 0; // index of the step whose output we wait for
        let mut since: Vec<String> = Vec::new();
        let mut started = false;
        let mut bg_pid: Option<u32> = None;
        let mut passed: Vec<&str> = Vec::new();
        // After the script: kill the background program, then shut down.
        let mut phase = 0;
        let cap = vm.run_scripted(SHELL_TIMEOUT, |l| {
            if !started {
                if l.contains("Zen OS shell.") {
                    started = true;
                    return Reply::Send(SCRIPT[0].keys.into());
                }
                return Reply::Wait;
            }
            since.push(l.to_string());
            if at < SCRIPT.len() {
                if !(SCRIPT[at].done)(&since) {
                    return Reply::Wait;
                }
                passed.push(SCRIPT[at].what);
                if at == SCRIPT.len() - 1 {
                    bg_pid = since.iter().find_map(|l| {
                        l.trim()
                            .strip_prefix("started usertests as process ")?
                            .parse()
                            .ok()
                    });
                }
                since.clear();
                at += 1;
                return match SCRIPT.get(at) {
                    Some(s) => Reply::Send(s.keys.into()),
                    None => match bg_pid {
                        Some(p) => Reply::Send(format!("kill {p}\r").into_bytes()),
                        None => Reply::Stop,
                    },
                };
            }
            match phase {
                0 if any(&since, |l| {
                    l.starts_with(&format!("killed {} (", bg_pid.unwrap_or(0)))
                }) =>
                {
                    passed.push("kill of the background program");
                    phase = 1;
                    since.clear();
                    Reply::Send(b"shutdown\r".to_vec())
                }
                _ => Reply::Wait,
            }
        });
        let cap = match cap {
            Ok(c) => c,
            Err(e) => {
                return vec![Verdict {
                    name,
                    ok: false,
                    notes: vec![e],
                }]
            }
        };
        let exited_ok = cap.status.and_then(|s| s.code()) == Some(EXIT_SUCCESS);
        // The log the shell exported, checked here as `zen-audit` would, against
        // the key the kernel printed at boot.
        let audit = audit_offline(&cap.lines);
        let ok = at == SCRIPT.len() && phase == 1 && exited_ok && audit.is_ok();
        let notes = if ok {
            vec![format!(
                "{} steps and shutdown, {}; {}",
                passed.len(),
                cap.ending(),
                audit.as_deref().unwrap_or("")
            )]
        } else {
            let why = match SCRIPT.get(at) {
                Some(s) => format!("step `{}` never saw its output", s.what),
                None if phase == 0 => "the background program was not killed".to_string(),
                None if !exited_ok => "`shutdown` did not end QEMU with success".to_string(),
                None => audit.err().unwrap_or_default(),
            };
            failure_notes(&vm, &cap, vec![why])
        };
        vec![Verdict { name, ok, notes }]
    }))
}

/// The nonce the script's `audit export` asks for.
const NONCE: u128 = 0x5eed_0000_0000_0000_0000_0000_00c0_ffee;

/// Verifies the audit log the shell printed (`audit export NONCE`) offline with the
/// public key of the boot's `zen: audit log key` line: it must verify, with the nonce,
/// and agree with every checkpoint the kernel printed before it (at least one still
/// in it); the checkpoint made at shutdown, after it, must find it too old; and a copy
/// with one byte changed must not verify.
fn audit_offline(lines: &[String]) -> std::result::Result<String, String> {
    let key = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("zen: audit log key "))
        .and_then(|h| hex(h.get(..64)?))
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or("no `zen: audit log key` line at boot")?;
    let mut log = Vec::new();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for l in lines {
        if let Some(cp) = l
            .trim_start()
            .starts_with("zen: audit checkpoint ")
            .then(|| zen_audit::Checkpoint::parse(l))
            .flatten()
        {
            if log.is_empty() {
                before.push(cp);
            } else {
                after.push(cp);
            }
        }
        if let Some(h) = l.trim().strip_prefix("audit-export: ") {
            if !h.starts_with("end") {
                log.extend(hex(h).ok_or_else(|| format!("bad hex in `{l}`"))?);
            }
        }
    }
    let r = zen_audit::verify(&log, Some(&key))
        .map_err(|t| format!("the exported audit log does not verify offline: {t:?}"))?;
    if r.nonce != NONCE.to_be_bytes() {
        return Err("the export's head is not signed with the nonce asked for".into());
    }
    let mut matched = 0;
    for cp in &before {
        match r.check(cp) {
            Ok(zen_audit::Standing::Matches) => matched += 1,
            Ok(zen_audit::Standing::Overwritten) => {}
            Err(t) => return Err(format!("checkpoint {}: {t:?}", cp.count)),
        }
    }
    if matched == 0 {
        return Err(format!(
            "none of the {} checkpoints before the export is in it",
            before.len()
        ));
    }
    let last = after.last().ok_or("no checkpoint at shutdown")?;
    if !matches!(
        r.check(last),
        Err(zen_audit::Tamper::BehindCheckpoint { .. })
    ) {
        return Err("the shutdown's checkpoint does not find the export older".into());
    }
    let forged = zen_audit::Checkpoint {
        hash: [0; 32],
        ..before[0]
    };
    if r.check(&forged).is_ok() {
        return Err("a forged checkpoint is accepted".into());
    }
    let mut bad = log.clone();
    let at = log.len() / 3;
    bad[at] ^= 0x40;
    if zen_audit::verify(&bad, Some(&key)).is_ok() {
        return Err(format!(
            "an audit log with byte {at} changed still verifies"
        ));
    }
    Ok(format!(
        "audit log of {} bytes, {} entries, verified offline with the boot's key and \
         the nonce, agreeing with {matched} of {} checkpoints before it",
        log.len(),
        r.entries.len(),
        before.len()
    ))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
