//! The security policy as the kernel enforces it: the test image's policy
//! (`policy.zen` followed by `policy-tests.zen`) has one refusing rule of each kind,
//! about `probe` (this program's code under a second archive name) or `blkbench`. Each is refused with `Denied` and a PolicyDecision audit entry naming the
//! rule's line, while the same call the policy allows goes through; `probe` gets the
//! kernel-memory quota its `memory` rule gives; spawn_image cannot take an archive
//! program's name.

use crate::*;
use zen_audit::{verify, Kind};

/// The joined text the test image's table was compiled from, to find rules' lines.
const POLICY: &str = concat!(
    include_str!("../../../policy.zen"),
    include_str!("../../../policy-tests.zen")
);

/// The line (from 1) of the rule `text` in the test image's policy.
fn line_of(text: &str) -> u64 {
    POLICY
        .lines()
        .position(|l| l.trim() == text)
        .map_or(0, |i| i as u64 + 1)
}

/// The audit entries' query codes (kernel/src/policy.rs).
const SPAWN: u64 = 1;
const SEND: u64 = 2;
const CLAIM: u64 = 3;
const GRANT: u64 = 4;

/// Runs [`rules`] in a child with the system token (to pass it, open a device and
/// read the log) and a refusal budget of its own, untouched by the tests before.
pub fn each_rule_kind_refuses_as_written() -> Outcome {
    let Some(system) = chan::system_cap() else {
        return Ok(()); // Not init: passing the system token needs it.
    };
    let rights = Rights::DEVICE | Rights::GRANT | Rights::AUDIT;
    let pid = chan::spawn_with_cap("usertests", "test policy::rules", system, rights)
        .map_err(|e| format!("spawn: {e:?}"))?;
    match process::wait(pid).map_err(|e| format!("wait: {e:?}"))? {
        0 => Ok(()),
        code => Err(format!(
            "in a child: exit {code} (its reason is printed above)"
        )),
    }
}

pub fn rules() -> Outcome {
    let system = chan::system_cap().ok_or("no system token")?;
    // spawn: a rule refuses one program; one no rule refuses is allowed (and then
    // not found).
    expect(
        "spawn of a program a rule refuses",
        process::spawn("blkbench", "").map(u64::from),
        Err(Error::Denied),
    )?;
    expect(
        "spawn of a name no rule refuses",
        process::spawn("nothing-by-this-name", "").map(u64::from),
        Err(Error::NoSuchProgram),
    )?;
    // spawn_image under an archive program's name: never (its rules are for its code).
    let junk = vec![0x7fu8; 4096];
    expect(
        "spawn_image named as an archive program",
        chan::spawn_image("probe", &junk, "", None).map(u64::from),
        Err(Error::Denied),
    )?;
    expect(
        "spawn_image under a free name gets as far as the loader",
        chan::spawn_image("free-name", &junk, "", None).map(u64::from),
        Err(Error::BadExecutable),
    )?;

    // probe, at the other end of a channel (a channel token to it is allowed).
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let probe = chan::spawn_with_cap("probe", "grant-peer", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn probe: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    let mut buf = [0u8; 128];
    recv_within(&mut ch, &mut buf, "probe's hello")?;
    let limit = process::list()
        .map_err(|e| format!("ps: {e:?}"))?
        .into_iter()
        .find(|p| p.pid == probe)
        .map(|p| p.kmem_limit);
    check(
        &format!("probe's kernel-memory quota is its rule's 512 KiB: {limit:?}"),
        limit == Some(512 << 10),
    )?;
    // send: the system token to probe is refused, over a channel and at spawn; a
    // channel token is not.
    expect(
        "the system token passed to probe",
        system.send_over(&ch, Rights::GRANT).map(|c| c.0 as u64),
        Err(Error::Denied),
    )?;
    expect(
        "probe spawned with the system token",
        chan::spawn_with_cap("probe", "exit 0", system, Rights::POWER).map(u64::from),
        Err(Error::Denied),
    )?;
    // A forged system token is refused as forged, before any policy question (the
    // count of policy refusals below would be three otherwise).
    let mut forged = system.token().map_err(|e| format!("{e:?}"))?;
    forged.token.mac[0] ^= 1;
    let (f, over) = (forged.to_bytes(), ch.token().to_bytes());
    expect(
        "a forged system token passed to probe",
        zen_std::sys::call_reading(
            Syscall::CapSend,
            [
                over.as_ptr() as u64,
                f.as_ptr() as u64,
                Rights::POWER.bits(),
                0,
                0,
                0,
            ],
        ),
        Err(Error::Denied),
    )?;
    let (c, d) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    check(
        "a channel token passed to probe",
        c.send_over(&ch, Rights::SEND).is_ok(),
    )?;
    // grant: pages to probe are refused (to a usertests child they are allowed:
    // grants::grant_session).
    let m = mem::Shared::new(8192).map_err(|e| format!("{e:?}"))?;
    expect(
        "pages granted to probe",
        ch.send_grant(&m, Rights::READ, b"sum").map(|()| 0),
        Err(Error::Denied),
    )?;
    ch.send(b"quit").map_err(|e| format!("quit: {e:?}"))?;
    expect("probe ends", process::wait(probe), Ok(0))?;
    for cap in [c, d] {
        cap.drop_token().map_err(|e| format!("drop: {e:?}"))?;
    }
    // probe itself may spawn nothing, and no rule lets it grant pages to usertests:
    // the default refuses.
    let pid = process::spawn("probe", "policy-spawn").map_err(|e| format!("{e:?}"))?;
    expect("probe's spawn was refused", process::wait(pid), Ok(0))?;
    let (a, b) = chan::create().map_err(|e| format!("create: {e:?}"))?;
    let granter = chan::spawn_with_cap("probe", "policy-grant", b, Rights::SEND | Rights::RECV)
        .map_err(|e| format!("spawn probe: {e:?}"))?;
    let mut ch = Channel::attach(a).map_err(|e| format!("attach: {e:?}"))?;
    // Attached: now there is a receiver for its grant to be refused to.
    ch.send(b"go").map_err(|e| format!("go: {e:?}"))?;
    expect(
        "probe's grant to usertests was refused by the default",
        process::wait(granter),
        Ok(0),
    )?;
    drop(ch);

    // claim: the host bridge (class 06:00) is refused before it becomes ours.
    let bridge = zen_std::dev::list()
        .map_err(|e| format!("dev_list: {e:?}"))?
        .into_iter()
        .find(|d| (d.class, d.subclass) == (6, 0) && d.holder == 0)
        .ok_or("no host bridge")?;
    let tok = zen_std::dev::open(system, bridge.address).map_err(|e| format!("open: {e:?}"))?;
    expect(
        "DMA memory for the host bridge",
        zen_std::dev::Device::new(tok).dma(4096).map(|_| 0),
        Err(Error::Denied),
    )?;
    let still = zen_std::dev::list()
        .map_err(|e| format!("{e:?}"))?
        .into_iter()
        .find(|d| d.address == bridge.address)
        .map(|d| d.holder);
    check("the bridge has no driver after it", still == Some(0))?;
    tok.drop_token().map_err(|e| format!("drop: {e:?}"))?;

    // Every refusal is in the audit log, with the line of the rule that made it.
    let log = process::audit_log([3; 16]).map_err(|e| format!("audit_log: {}", e.as_str()))?;
    let r = verify(&log, None).map_err(|t| format!("the export does not verify: {t:?}"))?;
    let me = process::id();
    let found = |pid: u32, query: u64, rule: &str| {
        let line = line_of(rule);
        line != 0
            && r.entries.iter().any(|e| {
                e.kind == Kind::PolicyDecision
                    && e.pid == pid
                    && e.args[0] & 0xff == query
                    && e.args[1] == line
            })
    };
    for (pid, query, rule) in [
        (me, SPAWN, "program usertests may not spawn blkbench"),
        (
            me,
            SEND,
            "program usertests may not send capability system to probe",
        ),
        (me, GRANT, "program usertests may not grant pages to probe"),
        (
            me,
            CLAIM,
            "program usertests may not claim device class 06:00",
        ),
        (pid, SPAWN, "program probe may not spawn any"),
    ] {
        check(
            &format!("the audit log has \"{rule}\""),
            found(pid, query, rule),
        )?;
    }
    let by_default = r.entries.iter().any(|e| {
        e.kind == Kind::PolicyDecision
            && e.pid == granter
            && e.args[0] & 0xff == GRANT
            && e.args[1] == 0
            && e.args[2] == u64::from(me)
    });
    check("the audit log has the default's refusal", by_default)?;
    check(
        "the forged token's refusal is a CapRefused",
        r.entries.iter().any(|e| {
            e.kind == Kind::CapRefused && e.pid == me && e.args[0] == Syscall::CapSend as u64
        }),
    )?;
    check(
        "two sends to probe refused (over the channel, at spawn)",
        r.entries
            .iter()
            .filter(|e| e.kind == Kind::PolicyDecision && e.pid == me && e.args[0] & 0xff == SEND)
            .count()
            == 2,
    )?;
    check(
        "and the reserved name's refusal",
        r.entries
            .iter()
            .any(|e| e.kind == Kind::PolicyDecision && e.pid == me && e.args[0] == SPAWN | 1 << 8),
    )
}

pub(crate) fn child(mode: &str) -> Option<i32> {
    match mode {
        "policy-spawn" => Some(match process::spawn("usertests", "exit 0") {
            Err(Error::Denied) => 0,
            Err(_) => 2,
            Ok(_) => 1,
        }),
        "policy-grant" => {
            let Ok(mut ch) = Channel::attach(Cap(0)) else {
                return Some(10);
            };
            let Ok(m) = mem::Shared::new(4096) else {
                return Some(11);
            };
            if ch.recv(&mut [0u8; 8]).is_err() {
                return Some(12);
            }
            Some(match ch.send_grant(&m, Rights::READ, b"x") {
                Err(Error::Denied) => 0,
                Err(_) => 2,
                Ok(()) => 1,
            })
        }
        _ => None,
    }
}
