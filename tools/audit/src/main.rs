//! `zen-audit FILE [KEY] [--nonce HEX] [--console LOG]`: verifies an exported audit
//! log (the kernel's `Log::export`) offline, against the public key the boot printed
//! (64 hex digits; without it, only the log's own consistency is checked), then prints
//! its entries one a line. With `--nonce`, the head must be signed with the nonce the
//! reader asked for (`audit export NONCE` in the shell), so an older export cannot
//! pass for this one; with `--console`, the export must agree with every
//! `zen: audit checkpoint` line of that console log printed before it (up to the
//! shell's `audit-export:` lines; a log that goes on past the export must be cut
//! there, or its later checkpoints find the export too old). Exits
//! 1 naming the first entry that was altered, removed or reordered.
#![deny(unsafe_code)]

use std::process::ExitCode;
use zen_audit::{verify, Checkpoint, Standing, Tamper};

fn hex_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

/// The command line: FILE [KEY] [--nonce HEX] [--console LOG].
struct Args {
    file: String,
    key: Option<[u8; 32]>,
    nonce: Option<[u8; 16]>,
    console: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    let mut a = Args {
        file: it.next().ok_or("no FILE")?.clone(),
        key: None,
        nonce: None,
        console: None,
    };
    while let Some(w) = it.next() {
        match w.as_str() {
            "--nonce" => {
                let h = it.next().ok_or("--nonce needs a value")?;
                let v = u128::from_str_radix(h, 16)
                    .ok()
                    .filter(|_| h.len() <= 32)
                    .ok_or("the nonce is up to 32 hex digits")?;
                if v == 0 {
                    return Err("a zero nonce proves nothing fresh: choose another".into());
                }
                a.nonce = Some(v.to_be_bytes());
            }
            "--console" => a.console = Some(it.next().ok_or("--console needs a file")?.clone()),
            k if a.key.is_none() => {
                a.key = Some(hex_key(k).ok_or("the key is 64 hex digits, as the boot printed it")?)
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Args {
        file,
        key,
        nonce,
        console,
    } = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zen-audit: {e}");
            eprintln!("usage: zen-audit FILE [PUBLIC-KEY-HEX] [--nonce HEX] [--console LOG]");
            return ExitCode::from(2);
        }
    };
    let file = &file;
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("zen-audit: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    // The checkpoints the kernel printed on the console before this export was made:
    // lines that start with the marker (the kernel starts each message on a line of
    // its own), up to the shell's first `audit-export:` line if the log has one.
    let checkpoints: Vec<(usize, Option<Checkpoint>)> = match &console {
        Some(c) => match std::fs::read_to_string(c) {
            Ok(t) => t
                .lines()
                .enumerate()
                .take_while(|(_, l)| !l.trim_start().starts_with("audit-export: "))
                .filter(|(_, l)| l.trim_start().starts_with("zen: audit checkpoint "))
                .map(|(i, l)| (i + 1, Checkpoint::parse(l)))
                .collect(),
            Err(e) => {
                eprintln!("zen-audit: {c}: {e}");
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    let checked = verify(&bytes, key.as_ref()).and_then(|r| {
        if nonce.is_some_and(|n| n != r.nonce) {
            return Err(Tamper::Signature);
        }
        let (mut matched, mut held) = (0, 0);
        for (line, cp) in &checkpoints {
            // A line a program printed to look like one, or another boot's: not this
            // log's, so nothing to hold it to (a real one always verifies).
            let Some(cp) = cp else {
                println!("zen-audit: {}:{line}: not a checkpoint line, ignored", console.as_deref().unwrap_or(""));
                continue;
            };
            match r.check(cp) {
                Ok(Standing::Matches) => (matched, held) = (matched + 1, held + 1),
                Ok(Standing::Overwritten) => held += 1,
                Err(Tamper::CheckpointSignature) => println!(
                    "zen-audit: {}:{line}: a checkpoint not signed for this log (printed by a program, or another boot's), ignored",
                    console.as_deref().unwrap_or("")
                ),
                Err(t) => return Err(t),
            }
        }
        Ok((r, matched, held))
    });
    match checked {
        Ok((r, matched, held)) => {
            let k: String = r.key.iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "audit log of key {k}: intact, {} entries kept, {} lost{}{}",
                r.entries.len(),
                r.lost,
                if nonce.is_some() {
                    ", fresh (the nonce given)"
                } else {
                    ""
                },
                if console.is_some() {
                    format!(
                        ", agrees with the console's {held} checkpoints ({matched} still in it)"
                    )
                } else {
                    String::new()
                }
            );
            for e in &r.entries {
                println!(
                    "{:>8}  t={:<14} {:<15} pid {:<5} {:x?}",
                    e.seq,
                    e.time,
                    format!("{:?}", e.kind),
                    e.pid,
                    e.args
                );
            }
            ExitCode::SUCCESS
        }
        Err(t) => {
            let why = match t {
                Tamper::Malformed(m) => format!("not an audit log: {m}"),
                Tamper::WrongKey => "the log is another key's (not this boot's)".into(),
                Tamper::Genesis => "the genesis entry was altered".into(),
                Tamper::Entry { index, seq } => format!(
                    "entry {index} (seq {seq}) was altered, or entries before it removed or reordered"
                ),
                Tamper::Head => "the entries do not end where the signed head says: some were rewritten, cut off, or claimed lost".into(),
                Tamper::Signature if nonce.is_some() => "the head's signature does not verify, or it is not for the nonce given (an older export)".into(),
                Tamper::Signature => "the head's signature does not verify".into(),
                Tamper::CheckpointSignature => "a console checkpoint is not this log's".into(),
                Tamper::BehindCheckpoint { count } => format!(
                    "the export ends before the console's checkpoint at {count}: entries were cut off, or it is an older export"
                ),
                Tamper::Checkpoint { count } => format!(
                    "entry {count} is not the one the console's checkpoint signed: the log was rewritten since"
                ),
            };
            println!("zen-audit: TAMPERED: {why}");
            ExitCode::from(1)
        }
    }
}
