//! `audit [N]`: the kernel's audit log, checked (zen-audit's verifier: the chain and
//! the head's signature) and shown readably, the newest `N` entries (20 by default);
//! `audit export`: the export itself, in hex, for the host's `zen-audit`.

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
        k => format!("{k:?} {args:x?}"),
    }
}

pub fn show(rest: &[&str]) {
    let log = match process::audit_log() {
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
