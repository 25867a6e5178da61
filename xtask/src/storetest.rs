//! `qemu::store`: the store through the shell, across reboots, on the scratch disk's
//! TagFS root partition (tagfsd formats it on the first boot).
//!
//! 1. A fresh disk: the shell creates, lists, reads, tags and queries an object (a
//!    query that does not parse shows where), then syncs and shuts down.
//! 2. The same disk, with two programs put in the store on the host (`hello`, built
//!    but in no boot archive, and `broken`): the object is there, found by a query,
//!    with its content; `programs` lists the store's, `run hello` starts it from the
//!    store, `run broken` is refused with the kernel's reason.
//!    Then xtask mounts the partition from the disk file with the same engine and
//!    checks it (`Fs::check`, what `tagfs fsck` runs).
//! 3. The same disk with its superblocks overwritten: tagfsd refuses it with its
//!    reason, the shell starts anyway and says the store is unavailable.
//!
//! `qemu::powercut`: usertests' `powercut` writer (booted as init) creates, writes,
//! tags and syncs in a loop and says what each sync made durable; QEMU is killed at
//! a random moment, 20 times over on one disk file. After each cut the host mounts
//! the partition, checks it, and finds every acknowledged object as written; the next
//! boot must mount it and go on. (QEMU's raw disk file keeps every write it
//! completed, so this cuts power between and during requests but cannot lose a
//! completed write; the engine's own crash tests drop and reorder unflushed ones.)

use crate::build::Artifacts;
use crate::harness::{failure_notes, Job, Verdict};
use crate::qemu::{Reply, Vm, EXIT_SUCCESS};
use crate::util::{target, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
/// The scratch disk's root partition, in 512-byte sectors (`disk::scratch_image`).
const ROOT_FIRST: usize = 40960;
const ROOT_SECTORS: usize = 16384;

/// One exchange: the keys to type, and what the lines since must show.
struct Step {
    keys: &'static str,
    what: &'static str,
    done: fn(&[String]) -> bool,
}

fn any(lines: &[String], f: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|l| f(l.trim_end()))
}

/// What a boot that went silent between the kernel's `zen: ready` and its start of
/// init reports. Seen twice in many runs, only with the host loaded, and not yet
/// explained (the kernel stops printing, or stops, while it starts init); such a
/// boot is tried once more, and the verdict says so. Twice in a row fails.
const STALLED: &str = "the console went silent before init started";

/// `session`, tried once more if the boot stalled before init (see `STALLED`); the
/// note of a retry, if one was needed.
fn session_once_more(
    vm: &Vm,
    boot: fn(&[String]) -> bool,
    steps: &[Step],
) -> std::result::Result<Option<String>, String> {
    match session(vm, boot, steps) {
        Err(e) if e.contains(STALLED) => {
            session(vm, boot, steps).map(|()| Some(format!("a boot was tried again ({STALLED})")))
        }
        r => r.map(|()| None),
    }
}

/// Boots `vm`, checks `boot` on the lines before the shell's banner, runs `steps`,
/// then `shutdown`. `Err` names the step that failed.
fn session(
    vm: &Vm,
    boot: fn(&[String]) -> bool,
    steps: &[Step],
) -> std::result::Result<(), String> {
    let mut at: Option<usize> = None; // None: waiting for the shell
    let mut since: Vec<String> = Vec::new();
    let mut failed: Option<String> = None;
    let cap = vm.run_scripted(TIMEOUT, |l| {
        since.push(l.to_string());
        match at {
            None if l.contains("Zen OS shell.") => {
                if !boot(&since) {
                    failed = Some("the boot did not say what it should".into());
                    return Reply::Stop;
                }
                since.clear();
                at = Some(0);
                Reply::Send(steps.first().map_or("shutdown\r", |s| s.keys).into())
            }
            None => Reply::Wait,
            Some(i) if i < steps.len() => {
                if !(steps[i].done)(&since) {
                    return Reply::Wait;
                }
                since.clear();
                at = Some(i + 1);
                Reply::Send(steps.get(i + 1).map_or("shutdown\r", |s| s.keys).into())
            }
            Some(_) => Reply::Wait,
        }
    })?;
    let stalled = at.is_none()
        && cap.timed_out
        && any(&cap.lines, |l| l.starts_with("zen: ready"))
        && !any(&cap.lines, |l| l.starts_with("zen: started "));
    let why = match (failed, at) {
        (Some(f), _) => Some(f),
        (None, None) if stalled => Some(format!("{STALLED}: the shell never started")),
        (None, None) => Some("the shell never started".into()),
        (None, Some(i)) if i < steps.len() => {
            Some(format!("step `{}` never saw its output", steps[i].what))
        }
        _ if cap.status.and_then(|s| s.code()) != Some(EXIT_SUCCESS) => {
            Some("`shutdown` did not end QEMU with success".into())
        }
        _ => None,
    };
    match why {
        None => Ok(()),
        Some(w) => Err(failure_notes(vm, &cap, vec![w]).join("\n")),
    }
}

const FIRST: &[Step] = &[
    Step {
        keys: "new note:hello owner:ada < hello from the store\r",
        what: "new makes an object",
        done: |l| any(l, |l| l.starts_with("created object ")),
    },
    Step {
        keys: "ls owner:ada\r",
        what: "ls finds it by a tag",
        done: |l| any(l, |l| l.ends_with("note:hello owner:ada")) && any(l, |l| l == "1 object"),
    },
    Step {
        keys: "cat note:hello\r",
        what: "cat shows its content",
        done: |l| any(l, |l| l == "hello from the store"),
    },
    Step {
        keys: "tag note:hello year:2026\r",
        what: "tag",
        done: |l| any(l, |l| l.starts_with("zen> ")),
    },
    Step {
        keys: "meta note:hello\r",
        what: "meta shows size and tags",
        done: |l| any(l, |l| l.ends_with(": 21 bytes, 3 tags")) && any(l, |l| l == "  year:2026"),
    },
    Step {
        keys: "ls owner:ada AND (\r",
        what: "a query that does not parse shows where",
        done: |l| {
            any(l, |l| l == "ls: query does not parse")
                // The caret under the end, where an expression is missing.
                && any(l, |l| l.trim_start() == "^" && l.len() == "  owner:ada AND (".len() + 1)
        },
    },
    Step {
        keys: "tags \r",
        what: "tags lists them with counts",
        done: |l| any(l, |l| l.trim_start() == "1  year:2026"),
    },
    Step {
        keys: "sync\r",
        what: "sync",
        done: |l| any(l, |l| l == "synced"),
    },
];

const SECOND: &[Step] = &[
    Step {
        keys: "cat owner:ada AND year:2026\r",
        what: "after a reboot the object is there",
        done: |l| any(l, |l| l == "hello from the store"),
    },
    Step {
        keys: "programs\r",
        what: "programs lists the store's too",
        done: |l| {
            any(l, |l| {
                l.starts_with("in the store: ") && l.contains("hello") && l.contains("broken")
            })
        },
    },
    Step {
        keys: "run hello world\r",
        what: "a program from the store runs",
        done: |l| {
            any(l, |l| {
                l.starts_with("hello from the store (process ") && l.ends_with("argument `world`)")
            })
        },
    },
    Step {
        keys: "run broken\r",
        what: "a damaged program from the store is refused",
        done: |l| any(l, |l| l.starts_with("run: broken: from the store: ")),
    },
    Step {
        keys: "run nosuch\r",
        what: "a program in neither place",
        done: |l| {
            any(l, |l| {
                l == "run: nosuch: no such program, in the boot archive or the store"
            })
        },
    },
    Step {
        keys: "df\r",
        what: "df",
        done: |l| {
            any(l, |l| {
                l.starts_with("3 objects, 6 tags; ") && l.contains("segments free")
            })
        },
    },
];

const DAMAGED: &[Step] = &[Step {
    keys: "ls\r",
    what: "the shell says the store is unavailable",
    done: |l| any(l, |l| l.starts_with("ls: the store is unavailable")),
}];

/// The root partition of the disk file, mounted by the host with the engine.
fn host_mount(path: &Path) -> std::result::Result<zen_tagfs::Fs<zen_tagfs::MemDevice>, String> {
    use zen_tagfs::{BlockDevice, Config, Fs, MemDevice};
    let disk = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let part = disk
        .get(ROOT_FIRST * 512..(ROOT_FIRST + ROOT_SECTORS) * 512)
        .ok_or("the disk file is too short")?;
    let mut dev = MemDevice::new((part.len() / 4096) as u64);
    for (i, b) in part.chunks_exact(4096).enumerate() {
        if b.iter().any(|&x| x != 0) {
            dev.write_block(i as u64, b).map_err(|e| e.to_string())?;
        }
    }
    Fs::mount(dev, Config::default()).map_err(|e| format!("host mount: {e}"))
}

/// Mounts the root partition of the disk file with the engine and checks it;
/// a note with what it found.
fn host_check(path: &Path) -> std::result::Result<String, String> {
    let mut fs = host_mount(path)?;
    let report = fs.check().map_err(|e| format!("host check: {e}"))?;
    let found = fs
        .query("note:hello AND owner:ada AND year:2026")
        .map_err(|e| e.to_string())?;
    let [id] = found.as_slice() else {
        return Err(format!(
            "the host finds {} objects for the query",
            found.len()
        ));
    };
    let content = fs.read_all(*id).map_err(|e| e.to_string())?;
    if content != b"hello from the store\n" {
        return Err(format!(
            "its content on the host: {:?}",
            String::from_utf8_lossy(&content)
        ));
    }
    Ok(format!(
        "host check clean: {} objects, {} tag pairs",
        report.objects, report.tag_pairs
    ))
}

/// Puts programs in the store on the disk file, as `cargo xtask image` does: `hello`
/// (built, in no boot archive) and `broken` (not an ELF).
fn add_programs(path: &Path) -> std::result::Result<(), String> {
    let mut fs = host_mount(path)?;
    let hello = std::fs::read(crate::build::program("hello")).map_err(|e| format!("hello: {e}"))?;
    let programs = [
        ("hello".to_string(), hello),
        (
            "broken".to_string(),
            b"\x7fELF, but no more of one".to_vec(),
        ),
    ];
    crate::rootfs::add_programs(&mut fs, &programs).map_err(|e| e.to_string())?;
    fs.sync().map_err(|e| e.to_string())?;
    let dev = fs.unmount().map_err(|e| e.to_string())?;
    let mut disk = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for lba in dev.written().collect::<Vec<_>>() {
        let at = ROOT_FIRST * 512 + lba as usize * 4096;
        if let Some(b) = dev.block(lba) {
            disk[at..at + 4096].copy_from_slice(b);
        }
    }
    std::fs::write(path, disk).map_err(|e| format!("{}: {e}", path.display()))
}

fn damage(path: &Path) -> std::result::Result<(), String> {
    let mut disk = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    disk[ROOT_FIRST * 512..ROOT_FIRST * 512 + 8192].fill(0x5a);
    std::fs::write(path, disk).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn store_job(a: &Artifacts) -> Result<Job> {
    let esp = crate::usertest::test_esp(a, "esp-store", None)?;
    let scratch: PathBuf = target().join("store-nvme.img");
    std::fs::write(&scratch, crate::disk::scratch_image()?)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    Ok(Box::new(move || {
        let vm = Vm {
            nvme: Some(scratch.clone()),
            ..Vm::new("store", &esp)
        };
        let name = "qemu::store".to_string();
        let mut retried: Vec<String> = Vec::new();
        let r = (|| {
            retried.extend(
                session_once_more(
                    &vm,
                    |l| {
                        any(l, |l| {
                            l.contains(
                            "tagfsd: the root partition (8 MiB) is empty: formatting it as TagFS",
                        )
                        })
                    },
                    FIRST,
                )
                .map_err(|e| format!("first boot: {e}"))?,
            );
            add_programs(&scratch)?;
            retried.extend(
                session_once_more(
                    &vm,
                    |l| {
                        any(l, |l| {
                            l.contains("tagfsd: store ready (8 MiB): 3 objects, 6 tags")
                        })
                    },
                    SECOND,
                )
                .map_err(|e| format!("second boot: {e}"))?,
            );
            let note = host_check(&scratch)?;
            damage(&scratch)?;
            retried.extend(session_once_more(
                &vm,
                |l| {
                    any(l, |l| {
                        l.contains("tagfsd: the store is unavailable: the root partition is not a TagFS store, or is damaged")
                    })
                },
                DAMAGED,
            )
            .map_err(|e| format!("damaged boot: {e}"))?);
            Ok::<String, String>(note)
        })();
        vec![match r {
            Ok(note) => Verdict {
                name,
                ok: true,
                notes: vec![format!(
                    "three boots; {note}; the damaged store refused{}",
                    retried.iter().map(|r| format!("; {r}")).collect::<String>()
                )],
            },
            Err(e) => Verdict {
                name,
                ok: false,
                notes: e.lines().map(String::from).collect(),
            },
        }]
    }))
}

/// Boots of the power-cut test.
const CUTS: usize = 20;

/// usertests' `powercut::content`.
fn content(n: u64) -> Vec<u8> {
    let len = 100 + (n * 997 % 20_000) as usize;
    format!("object {n} ").bytes().cycle().take(len).collect()
}

/// After a cut: the partition mounts and checks clean on the host, and objects
/// 0..acked are there, complete and as written. How many complete ones there are.
fn after_cut(path: &Path, acked: u64) -> std::result::Result<u64, String> {
    let mut fs = host_mount(path)?;
    fs.check().map_err(|e| format!("host check: {e}"))?;
    let done = fs.query("powercut AND done").map_err(|e| e.to_string())?;
    for n in 0..acked {
        let ids = fs
            .query(&format!("seq:{n} AND done"))
            .map_err(|e| e.to_string())?;
        let [id] = ids.as_slice() else {
            return Err(format!("acknowledged object {n}: {} on disk", ids.len()));
        };
        if fs.read_all(*id).map_err(|e| e.to_string())? != content(n) {
            return Err(format!("acknowledged object {n}: its content differs"));
        }
    }
    Ok(done.len() as u64)
}

pub fn powercut_job(a: &Artifacts) -> Result<Job> {
    let esp = crate::usertest::test_esp(a, "esp-powercut", Some("init=usertests arg=powercut"))?;
    let scratch: PathBuf = target().join("powercut-nvme.img");
    std::fs::write(&scratch, crate::disk::scratch_image()?)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    Ok(Box::new(move || {
        let vm = Vm {
            nvme: Some(scratch.clone()),
            smp: 2,
            ..Vm::new("powercut", &esp)
        };
        let name = "qemu::powercut".to_string();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut acked = 0u64;
        let mut complete = 0;
        let r = (|| {
            for cut in 0..CUTS {
                // Cut after 1 to 4 acknowledgements of this boot, 0 to 40 ms later.
                let mut left = 1 + next() % 4;
                let delay = Duration::from_millis(next() % 40);
                let mut resumed = None;
                let cap = vm.run_scripted(TIMEOUT, |l| {
                    if let Some(n) = l.trim().strip_prefix("powercut: resume at ") {
                        resumed = n.parse::<u64>().ok();
                    }
                    if let Some(n) = l.trim().strip_prefix("powercut: acked ") {
                        acked = acked.max(n.parse().unwrap_or(0));
                        left -= 1;
                        if left == 0 {
                            std::thread::sleep(delay);
                            return Reply::Stop;
                        }
                    }
                    Reply::Wait
                })?;
                if !cap.stopped {
                    return Err(failure_notes(
                        &vm,
                        &cap,
                        vec![format!("boot {cut}: the writer did not get going")],
                    )
                    .join("\n"));
                }
                match resumed {
                    // The OS mounts what the host found: as many complete objects.
                    Some(n) if n == complete => {}
                    other => {
                        return Err(format!(
                            "boot {cut}: resumed at {other:?}, {complete} were complete"
                        ))
                    }
                }
                complete =
                    after_cut(&scratch, acked).map_err(|e| format!("after cut {cut}: {e}"))?;
            }
            Ok::<(), String>(())
        })();
        vec![match r {
            Ok(()) => Verdict {
                name,
                ok: true,
                notes: vec![format!(
                    "{CUTS} cuts (seed {seed:#x}); every one of {acked} acknowledged objects there, the store clean after each"
                )],
            },
            Err(e) => Verdict {
                name,
                ok: false,
                notes: e.lines().map(String::from).chain([format!("seed {seed:#x}")]).collect(),
            },
        }]
    }))
}
