//! The audit log (brief item 15): every security-relevant event, kept by zen-audit in
//! a ring of `AUDIT_ENTRIES` hash-chained entries after a genesis entry that holds this
//! boot's ed25519 public key (printed at boot). `audit_read` exports it with the head
//! signed; `zen-audit` on the host verifies an export offline.
//!
//! Recording is a leaf: it takes only the log's own lock and allocates nothing (the
//! ring is made at boot), so it is safe from any system call, under other locks.

use alloc::vec::Vec;
use zen_audit::{Kind, Log};

use crate::sync::IrqMutex;

static LOG: IrqMutex<Option<Log>> = IrqMutex::new(None);

/// Makes the log with a fresh per-boot key and prints its public half.
pub fn init() {
    let mut seed = [0u8; 32];
    let mut hw = true;
    for chunk in seed.chunks_mut(8) {
        let v = crate::arch::cpu::random_u64().unwrap_or_else(|| {
            hw = false;
            crate::arch::cpu::rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let log = Log::new(
        seed,
        crate::arch::cpu::rdtsc(),
        zen_abi::syscall::AUDIT_ENTRIES,
    );
    let mut hex = [0u8; 64];
    for (i, b) in log.public_key().iter().enumerate() {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex[2 * i] = DIGITS[usize::from(b >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    crate::kprintln!(
        "zen: audit log key {}{}",
        core::str::from_utf8(&hex).unwrap_or("?"),
        if hw {
            ""
        } else {
            " (no hardware random numbers: guessable)"
        }
    );
    *LOG.lock() = Some(log);
}

/// Records an event of the calling process (pid 0: the kernel itself).
pub fn record(kind: Kind, args: [u64; 4]) {
    let pid = crate::task::current_owner().map_or(0, |o| o.pid());
    record_for(kind, pid, args);
}

/// Records an event of process `pid`.
pub fn record_for(kind: Kind, pid: u32, args: [u64; 4]) {
    let time = crate::arch::cpu::rdtsc();
    if let Some(l) = LOG.lock().as_mut() {
        l.record(kind, pid, args, time);
    }
}

/// The export (`None` before `init`).
pub fn export() -> Option<Vec<u8>> {
    LOG.lock().as_ref().map(|l| l.export())
}
