//! `zen-audit FILE [KEY]`: verifies an exported audit log (the kernel's `Log::export`)
//! offline, against the public key the boot printed (64 hex digits; without it, only
//! the log's own consistency is checked), then prints its entries one a line. Exits 1
//! naming the first entry that was altered, removed or reordered.
#![deny(unsafe_code)]

use std::process::ExitCode;
use zen_audit::{verify, Tamper};

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, key) = match args.as_slice() {
        [f] => (f, None),
        [f, k] => match hex_key(k) {
            Some(k) => (f, Some(k)),
            None => {
                eprintln!("zen-audit: the key is 64 hex digits, as the boot printed it");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: zen-audit FILE [PUBLIC-KEY-HEX]");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("zen-audit: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match verify(&bytes, key.as_ref()) {
        Ok(r) => {
            let k: String = r.key.iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "audit log of key {k}: intact, {} entries kept, {} lost",
                r.entries.len(),
                r.lost
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
                Tamper::Signature => "the head's signature does not verify".into(),
            };
            println!("zen-audit: TAMPERED: {why}");
            ExitCode::from(1)
        }
    }
}
