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
    let (seed, hw) = crate::arch::cpu::random_seed();
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

/// Refusals one process may add to the log. Refusals are the one kind of entry a
/// process makes as fast as it can fail calls; past its budget they are only counted
/// (its Exit entry says how many), so no process can push everyone's entries out of
/// the ring with a loop of bad calls.
pub const REFUSALS_PER_PROCESS: u32 = 64;

/// Records an event of the calling process (pid 0: the kernel itself).
pub fn record(kind: Kind, args: [u64; 4]) {
    let pid = crate::task::current_owner().map_or(0, |o| o.pid());
    record_for(kind, pid, args);
}

/// Records a refusal of the calling process, within its budget.
pub fn refused(kind: Kind, args: [u64; 4]) {
    let owner = crate::task::current_owner();
    if owner.as_ref().is_some_and(|o| !o.audit_refusal()) {
        return;
    }
    record_for(kind, owner.map_or(0, |o| o.pid()), args);
}

/// Records an event of process `pid`.
pub fn record_for(kind: Kind, pid: u32, args: [u64; 4]) {
    let time = crate::arch::cpu::rdtsc();
    if let Some(l) = LOG.lock().as_mut() {
        l.record(kind, pid, args, time);
    }
}

/// The export (`None` before `init`, or without the memory for it). The buffer is
/// made before the lock is taken (nothing allocates under it), and the head is
/// signed after it is let go (a signature is slow; recording must not wait on it).
pub fn export() -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(zen_abi::syscall::AUDIT_EXPORT_MAX)
        .ok()?;
    let signer = {
        let log = LOG.lock();
        let log = log.as_ref()?;
        debug_assert!(log.export_len() <= zen_abi::syscall::AUDIT_EXPORT_MAX);
        log.export_unsigned(&mut out)
    };
    signer.finish(&mut out);
    Some(out)
}
