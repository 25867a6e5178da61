//! The audit log (brief item 15): every security-relevant event, kept by zen-audit in
//! a ring of `AUDIT_ENTRIES` hash-chained entries after a genesis entry that holds this
//! boot's ed25519 public key (printed at boot). `audit_read` exports it with the head
//! signed over the reader's nonce; `zen-audit` on the host verifies an export offline.
//!
//! The head is also signed at intervals, every [`CHECKPOINT_EVERY`] entries (fewer
//! with `audit_every=N` on the command line), at most one a second (`NOT_BEFORE`)
//! unless the ring is about to overwrite an entry no checkpoint covers (`URGENT`),
//! and at shutdown. The system call that records the entry that makes a checkpoint
//! due signs it on its way out, holding no lock, so whoever makes entries fast pays
//! for the checkpoints; the `audit` thread looks every 100 ms for checkpoints due
//! that no call made (the kernel's own entries, or the second not yet over). and the checkpoint is
//! printed on the console (`zen: audit checkpoint count=... sig=...`): a record of the
//! chain outside the machine's memory, made before the ring can overwrite the entries
//! it covers, that any later export must agree with (`zen-audit --console LOG`).
//!
//! Recording is a leaf: it takes only the log's own lock and allocates nothing (the
//! ring is made at boot), so it is safe from any system call, under other locks.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use zen_audit::{Kind, Log};

use crate::sync::IrqMutex;

static LOG: IrqMutex<Option<Log>> = IrqMutex::new(None);

/// Makes the log with a fresh per-boot key and prints its public half; `cmdline` may
/// set how often checkpoints are made.
pub fn init(cmdline: &str) {
    if let Some(n) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("audit_every="))
        .and_then(|n| n.parse::<u64>().ok())
    {
        EVERY.store(n.clamp(1, CHECKPOINT_EVERY), Ordering::Relaxed);
    }
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

/// Entries between checkpoints: half the ring (fewer with `audit_every=N`).
pub const CHECKPOINT_EVERY: u64 = (zen_abi::syscall::AUDIT_ENTRIES / 2) as u64;

/// Entries since the last checkpoint at which one is made whatever the time: the ring
/// is about to overwrite an entry no checkpoint covers (the margin: what other CPUs
/// record before the call that got here is on its way out). So every entry is covered
/// by a printed checkpoint while it is still in the ring.
const URGENT: u64 = zen_abi::syscall::AUDIT_ENTRIES as u64 - 64;

/// Entries between checkpoints in this boot (`audit_every=N`, at most the above).
static EVERY: AtomicU64 = AtomicU64::new(CHECKPOINT_EVERY);

/// A checkpoint is due (set by `record_for`, cleared when one is made): 0 none, 1 due
/// when its time comes, 2 urgent (`URGENT`). One load on every system call's way out.
static DUE: AtomicU8 = AtomicU8::new(0);

/// The process whose entry made the checkpoint due: its own system call signs it on
/// the way out (whoever makes entries pays for them); a checkpoint nobody's call
/// makes, the `audit` thread makes within 100 ms.
static DUE_BY: AtomicU32 = AtomicU32::new(0);

/// The TSC before which no checkpoint is made unless it is urgent (or at shutdown).
/// A signature costs about a million instructions (`cargo xtask bench --only
/// ipc-profile`; ed25519-compact built for size, five times slower than with its
/// tables, which would add 66 KB of kernel code). Checkpoints come at most once a
/// second for every 512 entries between them (`spacing`), or when urgent: so a flood
/// of entries pays one signature every 960 entries, about a thousand instructions an
/// entry, and a steady trickle one a second at most.
static NOT_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Makes the checkpoint the caller's entries made due, if its time has come or it is
/// urgent (from a system call's way out, where the caller holds no lock).
#[inline]
pub fn checkpoint_if_due(pid: u32) {
    let due = DUE.load(Ordering::Relaxed);
    if due != 0
        && DUE_BY.load(Ordering::Relaxed) == pid
        && (due == 2 || crate::arch::cpu::rdtsc() >= NOT_BEFORE.load(Ordering::Relaxed))
    {
        checkpoint(false);
    }
}

/// TSC ticks between checkpoints: a second for every 512 entries between them.
fn spacing() -> u64 {
    let hz = crate::arch::apic::tsc_hz();
    hz.saturating_mul(EVERY.load(Ordering::Relaxed)) / CHECKPOINT_EVERY
}

/// Signs and prints a checkpoint if one is due and its time has come (or it is
/// urgent), or at once if `now`. The signature is made after the lock is let go
/// (recording never waits on it).
pub fn checkpoint(now: bool) {
    let signer = {
        let mut log = LOG.lock();
        let Some(log) = log.as_mut() else { return };
        let time = crate::arch::cpu::rdtsc();
        let early = time < NOT_BEFORE.load(Ordering::Relaxed) && !log.checkpoint_due(URGENT);
        if !now && (early || !log.checkpoint_due(EVERY.load(Ordering::Relaxed))) {
            return;
        }
        DUE.store(0, Ordering::Relaxed);
        NOT_BEFORE.store(time.saturating_add(spacing()), Ordering::Relaxed);
        log.checkpoint()
    };
    crate::prof::mark(crate::prof::Step::BeforeSign);
    let cp = signer.sign();
    crate::prof::mark(crate::prof::Step::Sign);
    crate::kprintln!("zen: audit checkpoint {}", cp);
}

/// The `audit` kernel thread: a checkpoint whenever one is due.
pub fn checkpoints() -> u64 {
    loop {
        let next = crate::time::ticks().saturating_add(crate::time::ms_to_ticks(100));
        crate::task::sleep_until(next, || false);
        checkpoint(false);
    }
}

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
        let level = if l.checkpoint_due(URGENT) {
            2
        } else {
            u8::from(l.checkpoint_due(EVERY.load(Ordering::Relaxed)))
        };
        if level > 0 {
            // The latest caller to add an entry pays (a process that exits, or the
            // kernel itself, leaves it to the next one or to the thread).
            let payer = crate::task::current_owner().map_or(0, |o| o.pid());
            DUE_BY.store(payer, Ordering::Relaxed);
            DUE.store(level, Ordering::Relaxed);
        }
    }
}

/// The export (`None` before `init`, or without the memory for it). The buffer is
/// made before the lock is taken (nothing allocates under it), and the head is
/// signed after it is let go (a signature is slow; recording must not wait on it).
pub fn export(nonce: [u8; zen_audit::NONCE_LEN]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(zen_abi::syscall::AUDIT_EXPORT_MAX)
        .ok()?;
    let signer = {
        let log = LOG.lock();
        let log = log.as_ref()?;
        debug_assert!(log.export_len() <= zen_abi::syscall::AUDIT_EXPORT_MAX);
        log.export_unsigned(&mut out, nonce)
    };
    signer.finish(&mut out);
    Some(out)
}
