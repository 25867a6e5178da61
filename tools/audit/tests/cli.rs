//! The tool as a user runs it: an export and a console log in files, checked with the
//! boot's key, a nonce and the console's checkpoints; exit 0 when all agree, 1 naming
//! what does not.

use std::path::PathBuf;
use std::process::Command;
use zen_audit::{Kind, Log};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("zen-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs the tool; (exit code, stdout).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zen-audit"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn an_export_is_checked_against_its_nonce_and_the_consoles_checkpoints() {
    let d = dir();
    let mut log = Log::new([9; 32], 100, 64);
    let key = hex(&log.public_key());
    for i in 0..10 {
        log.record(Kind::Spawn, 1, [i, 0, 0, 0], 500 + i);
    }
    let cp = log.checkpoint().sign();
    for i in 0..5 {
        log.record(Kind::Exit, 2, [i, 0, 0, 0], 900 + i);
    }
    let nonce = 0x1234_5678u128;
    let export = d.join("log.bin");
    std::fs::write(&export, log.export(nonce.to_be_bytes()).unwrap()).unwrap();
    log.record(Kind::Shutdown, 0, [0; 4], 1000);
    let later = log.checkpoint().sign();
    // A console: the kernel's checkpoint, a line a program printed to look like one,
    // and a line with the marker inside (not at the start): not checkpoints.
    let console = d.join("console.log");
    std::fs::write(
        &console,
        format!(
            "zen: ready\nzen: audit checkpoint {cp}\n\
             zen: audit checkpoint count=1 lost=0 hash={} sig={}\n\
             shell> echo zen: audit checkpoint count=2\n\
             audit-export: 00\nzen: audit checkpoint {later}\n",
            "0".repeat(64),
            "0".repeat(128)
        ),
    )
    .unwrap();
    let (e, c) = (export.to_str().unwrap(), console.to_str().unwrap());
    let (code, out) = run(&[e, &key, "--nonce", "12345678", "--console", c]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("fresh") && out.contains("1 checkpoints (1 still in it)"),
        "{out}"
    );
    assert!(
        out.contains(":3: a checkpoint not signed for this log"),
        "{out}"
    );
    // Another nonce: an older export, or not the one asked for.
    let (code, out) = run(&[e, &key, "--nonce", "12345679"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED"), "{out}");
    assert_eq!(
        run(&[e, &key, "--nonce", "0"]).0,
        2,
        "a zero nonce is refused"
    );
    // A console whose later checkpoint is not cut off at the export: the export is
    // older than it.
    let late = d.join("late.log");
    std::fs::write(&late, format!("zen: audit checkpoint {later}\n")).unwrap();
    let (code, out) = run(&[e, &key, "--console", late.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ends before the console's checkpoint at 16"),
        "{out}"
    );
    std::fs::remove_dir_all(&d).ok();
}
