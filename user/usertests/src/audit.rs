//! The audit log: who may read it (the system token's AUDIT right, nobody else), that
//! what happened is in it (a spawn, its exit, a refused token), and that the export
//! verifies, here with zen-audit's verifier, and fails to once a byte is changed.

use crate::{check, expect, run_child, spawn, Outcome};
use zen_abi::cap::Rights;
use zen_abi::syscall::{Error, Syscall, AUDIT_EXPORT_MAX};
use zen_audit::{verify, Kind};
use zen_std::chan;
use zen_std::prelude::*;
use zen_std::process;
use zen_std::sys::call_reading as sys;

pub fn the_audit_log_is_signed_and_needs_its_right() -> Outcome {
    check(
        "a child without the system token cannot read the log",
        run_child("audit-denied")? == 0,
    )?;
    let Some(sys_cap) = chan::system_cap() else {
        return Ok(()); // Not init: the rest needs the right.
    };
    // Passed on without AUDIT: refused too.
    let pid = chan::spawn_with_cap("usertests", "audit-denied", sys_cap, Rights::GRANT)
        .map_err(|e| format!("{e:?}"))?;
    expect("a system token without AUDIT", process::wait(pid), Ok(0))?;
    // Something to find: a child that exits with a known code, and a forged token.
    let child = spawn("usertests", "exit 90")?;
    let code = process::wait(child).map_err(|e| format!("{e:?}"))?;
    let mut t = sys_cap.token().map_err(|e| format!("{e:?}"))?;
    t.token.mac[3] ^= 1;
    let b = t.to_bytes();
    expect(
        "audit_read with a forged token",
        sys(Syscall::AuditRead, [0, 0, b.as_ptr() as u64, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    let real = sys_cap.token().map_err(|e| format!("{e:?}"))?.to_bytes();
    let small = [0u8; 16];
    expect(
        "a buffer below AUDIT_EXPORT_MAX",
        sys(
            Syscall::AuditRead,
            [
                small.as_ptr() as u64,
                AUDIT_EXPORT_MAX as u64 - 1,
                real.as_ptr() as u64,
                0,
                0,
                0,
            ],
        ),
        Err(Error::BufferTooSmall),
    )?;
    let log = process::audit_log(*b"a fresh nonce #1")
        .map_err(|e| format!("audit_log: {}", e.as_str()))?;
    let r = verify(&log, None).map_err(|t| format!("the export does not verify: {t:?}"))?;
    check(
        "the head is signed with our nonce",
        r.nonce == *b"a fresh nonce #1",
    )?;
    let mut other = log.clone();
    let nonce_at = other.len() - 64 - 16;
    other[nonce_at] ^= 1;
    check(
        "an export passed off with another nonce fails",
        verify(&other, None) == Err(zen_audit::Tamper::Signature),
    )?;
    let me = process::id();
    let has = |k: Kind, pid: u32, a0: u64| {
        r.entries
            .iter()
            .any(|e| e.kind == k && e.pid == pid && e.args[0] == a0)
    };
    check(
        "our child's spawn is recorded",
        has(Kind::Spawn, me, u64::from(child)),
    )?;
    check("its exit, with its code", has(Kind::Exit, child, code))?;
    check(
        "the forged token's refusal",
        r.entries.iter().any(|e| {
            e.kind == Kind::CapRefused && e.pid == me && e.args[0] == Syscall::AuditRead as u64
        }),
    )?;
    check(
        "sequence numbers run on without a gap",
        r.entries.windows(2).all(|w| w[1].seq == w[0].seq + 1),
    )?;
    // A child that fails 200 calls: 64 of them recorded, all 200 counted at its exit.
    let flood = spawn("usertests", "audit-flood")?;
    let fcode = process::wait(flood).map_err(|e| format!("{e:?}"))?;
    check("the flooding child ran", fcode == 0)?;
    let log = process::audit_log([2; 16]).map_err(|e| format!("audit_log: {}", e.as_str()))?;
    let r = verify(&log, None).map_err(|t| format!("the export does not verify: {t:?}"))?;
    let refusals = r
        .entries
        .iter()
        .filter(|e| e.kind == Kind::CapRefused && e.pid == flood)
        .count();
    let exit = r
        .entries
        .iter()
        .find(|e| e.kind == Kind::Exit && e.pid == flood);
    check(
        &format!("a flood of refusals is capped ({refusals} recorded) and counted at exit"),
        refusals == 64 && exit.is_some_and(|e| e.args[1] >= 200),
    )?;
    // One byte changed anywhere in an entry: refused.
    let mut bad = log.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    check("a changed byte is found", verify(&bad, None).is_err())?;
    Ok(())
}

/// Child mode: 0 if reading the log is refused with `Denied`.
pub fn child(mode: &str) -> Option<i32> {
    match mode {
        "audit-flood" => {
            let junk = [0u8; 64];
            for _ in 0..200 {
                let _ = sys(Syscall::MsgSend, [junk.as_ptr() as u64, 0, 0, 0, 0, 0]);
            }
            Some(0)
        }
        "audit-denied" => Some(match process::audit_log([0; 16]) {
            Err(zen_std::Error::Denied) => 0,
            Err(_) => 2,
            Ok(_) => 1,
        }),
        _ => None,
    }
}
