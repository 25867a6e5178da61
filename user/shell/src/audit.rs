//! `audit [N]`: the kernel's audit log, checked (zen-audit's verifier: the chain and
//! the head's signature) and shown readably, the newest `N` entries (20 by default);
//! `audit export [NONCE]`: the export itself, in hex, for the host's `zen-audit`, its
//! head signed with NONCE (up to 32 hex digits) for the host to check it is fresh.

use zen_audit::{verify, Kind};
use zen_std::prelude::*;
use zen_std::process;

fn what(kind: Kind, args: &[u64; 4]) -> String {
    match kind {
        Kind::Spawn => format!("started process {}", args[0]),
        Kind::Exit if args[1] > 0 => {
            format!("exited with code {:#x} ({} refusals)", args[0], args[1])
        }
        Kind::Exit => format!("exited with code {:#x}", args[0]),
        Kind::Kill if args[1] == 0 => format!("killed process {}", args[0]),
        Kind::Kill => format!("refused to kill process {} (error {})", args[0], args[1]),
        Kind::CapPassed => format!(
            "passed object {:#x} (type {}) with rights {:#x} (slot {} there)",
            args[0], args[1], args[2], args[3]
        ),
        Kind::CapRevoked => format!("revoked object {:#x}", args[0]),
        Kind::CapRefused => format!(
            "refused: call {}, object {:#x}, reason {}",
            args[0], args[1], args[2]
        ),
        Kind::GrantMade => format!("page grant {} of {} bytes", args[0], args[1]),
        Kind::GrantRefused => format!(
            "page grant of {} bytes refused (error {})",
            args[0], args[2]
        ),
        Kind::DeviceClaimed => format!(
            "claimed PCI device {:02x}:{:02x}.{}",
            args[0] >> 8,
            (args[0] >> 3) & 31,
            args[0] & 7
        ),
        Kind::Shutdown => format!("shut the machine down, code {:#x}", args[0]),
        Kind::PolicyDecision => policy(args),
        k => format!("{k:?} {args:x?}"),
    }
}

/// A policy refusal (kernel/src/policy.rs gives the layout).
fn policy(args: &[u64; 4]) -> String {
    let name: String = args[3]
        .to_le_bytes()
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    let what = match (args[0] & 0xff, args[0] >> 8) {
        (1, 1) => format!("spawn_image under {name}, a boot program's name"),
        (1, _) => format!("spawn {name}"),
        (2, k) => format!(
            "pass a {} token to process {} ({name})",
            ["channel", "device", "system"]
                .get(k as usize)
                .unwrap_or(&"?"),
            args[2]
        ),
        (3, c) => format!("claim device class {:02x}:{:02x}", c >> 8, c & 0xff),
        (4, _) => format!("grant pages to process {} ({name})", args[2]),
        _ => format!("{args:x?}"),
    };
    let by = match args[1] {
        0 => String::from("the default"),
        u64::MAX => String::from("no policy"),
        l => format!("policy line {l}"),
    };
    format!("refused by {by}: {what}")
}

/// `hex` (up to 32 digits, not all zero: that proves nothing fresh) as a nonce.
fn parse_nonce(hex: &str) -> Option<[u8; 16]> {
    let v = u128::from_str_radix(hex, 16).ok()?;
    (hex.len() <= 32 && v != 0).then(|| v.to_be_bytes())
}

pub fn show(rest: &[&str]) {
    let nonce = match rest {
        ["export", n] => match parse_nonce(n) {
            Some(n) => n,
            None => return println!("audit: the nonce is 1 to 32 hex digits, not all zero"),
        },
        // For the view: something this read alone asks for, checked below.
        _ => {
            (u128::from(zen_std::time::uptime_ms()) ^ u128::from(process::id()) << 64).to_be_bytes()
        }
    };
    let log = match process::audit_log(nonce) {
        Ok(l) => l,
        Err(e) => return println!("audit: {}", e.as_str()),
    };
    if rest.first() == Some(&"export") {
        // For checking elsewhere (`zen-audit FILE KEY` on the host): hex, 64 bytes a
        // line, between markers.
        for chunk in log.chunks(64) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            println!("audit-export: {hex}");
        }
        return println!("audit-export: end ({} bytes)", log.len());
    }
    let n = rest
        .first()
        .and_then(|w| w.parse::<usize>().ok())
        .unwrap_or(20);
    match verify(&log, None) {
        Ok(r) if r.nonce != nonce => println!("audit: the log's head is not for this read"),
        Ok(r) => {
            let key: String = r.key.iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "audit log intact (signed head checked): {} entries kept, {} lost; key {key}",
                r.entries.len(),
                r.lost
            );
            for e in r.entries.iter().skip(r.entries.len().saturating_sub(n)) {
                println!(
                    "{:>6}  process {:<4} {}",
                    e.seq,
                    e.pid,
                    what(e.kind, &e.args)
                );
            }
        }
        Err(t) => println!("audit: the log does not verify: {t:?}"),
    }
}
