//! The security policy (brief item 48): who may spawn what, pass which capabilities to
//! whom, grant pages to whom, claim which devices, and how much kernel memory each
//! program may hold, beyond the capabilities it holds.
//!
//! xtask compiles `policy.zen` (zen-policy) into the boot archive's `.policy` entry,
//! inside the signed `zenos.bin`, so Secure Boot covers the policy as it covers the
//! code. [`init`] decodes it once at boot; zen-policy checks the whole table and
//! refuses a damaged one, and then nothing the policy governs is allowed (the kernel
//! fails closed, says so, and starts no init).
//!
//! The layers that do the things ask here at the one place each happens: process
//! creation (spawn and spawn_image), `ipc::pass_token` (cap_send and the token a
//! child gets at spawn), `grant_create`, and a device's first claim. A refusal is
//! `Denied` and a `PolicyDecision` audit entry (within the caller's refusal budget):
//!
//! ```text
//! args[0]  the query (1 spawn, 2 send, 3 claim, 4 grant) | detail << 8
//!          (send: the capability kind; claim: class << 8 | subclass)
//! args[1]  the source line of the rule that refused; 0: the default; u64::MAX: no policy
//! args[2]  the receiver's pid (send, grant), the device's address (claim), else 0
//! args[3]  the first 8 bytes of the target program's name (spawn, send, grant)
//! ```
//!
//! What the policy allowed shows in the event's own entry (Spawn, CapPassed,
//! GrantMade, DeviceClaimed), which exists only because it was allowed; recording a
//! second entry for each would halve how far back the ring reaches.
//!
//! A program is known by its name only if it is the boot archive's program of that
//! name (signed code): a process spawn_image made is known as no program, so only
//! `any` rules cover it, whatever it is called, and it may not take a boot-archive
//! program's name at all (`reserved`). xtask refuses a policy that names anything
//! but the image's own programs.

use zen_abi::cap::ObjectType;
use zen_abi::syscall::Error;
use zen_audit::Kind;
use zen_policy::{By, CapKind, Decision, Policy, Verdict};

/// The policy, or `None` if the image has none or a damaged one (everything refused).
static POLICY: spin::Once<Option<Policy<'static>>> = spin::Once::new();

/// Kernel memory a program may hold when no `memory` rule names it.
const DEFAULT_MEMORY: u64 = crate::mm::quota::KMEM_LIMIT;

/// Decodes the policy table found in the boot archive; false (reported) if there is
/// none or it is damaged.
pub fn init(table: Option<&'static [u8]>) -> bool {
    let policy = POLICY.call_once(|| {
        let Some(bytes) = table else {
            crate::kprintln!("zen: no policy in the boot archive: everything is refused");
            return None;
        };
        match Policy::decode(bytes) {
            Ok(p) => Some(p),
            Err(e) => {
                crate::kprintln!("zen: policy refused ({}): everything is refused", e);
                None
            }
        }
    });
    policy.is_some()
}

#[derive(Clone, Copy)]
#[repr(u64)]
enum Query {
    Spawn = 1,
    Send = 2,
    Claim = 3,
    Grant = 4,
}

/// The first 8 bytes of a name, for an audit entry.
fn name8(name: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(8);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_le_bytes(b)
}

/// Applies a decision: `Denied` (and audited) unless it allows.
fn enforce(
    q: Query,
    detail: u64,
    decide: impl FnOnce(&Policy) -> Decision,
    target: u64,
    name: &str,
) -> Result<(), Error> {
    let by = match POLICY.get().and_then(Option::as_ref).map(decide) {
        Some(Decision {
            verdict: Verdict::Allow,
            ..
        }) => return Ok(()),
        Some(Decision {
            by: By::Rule(l), ..
        }) => u64::from(l),
        Some(Decision {
            by: By::Default, ..
        }) => 0,
        None => u64::MAX,
    };
    crate::audit::refused(
        Kind::PolicyDecision,
        [q as u64 | detail << 8, by, target, name8(name)],
    );
    Err(Error::Denied)
}

/// May `parent` start program `child` (`""` for an image: no program)? `shown` is
/// the name the process will have, for the audit entry.
pub fn spawn(parent: &str, child: &str, shown: &str) -> Result<(), Error> {
    enforce(Query::Spawn, 0, |p| p.may_spawn(parent, child), 0, shown)
}

/// The refusal of a spawn_image under the name of a boot-archive program: `Denied`,
/// audited as a spawn refused (detail 1: the name is not the image's to take).
pub fn reserved(name: &str) -> Error {
    crate::audit::refused(
        Kind::PolicyDecision,
        [Query::Spawn as u64 | 1 << 8, 0, 0, name8(name)],
    );
    Error::Denied
}

/// The policy's kind for a token's object type: an interrupt is part of its device.
fn kind(object_type: u32) -> CapKind {
    match ObjectType::try_from(object_type) {
        Ok(ObjectType::System) => CapKind::System,
        Ok(ObjectType::Device | ObjectType::Interrupt) => CapKind::Device,
        _ => CapKind::Channel,
    }
}

/// May `from` pass a token of `object_type` to `to` (process `to_pid`)?
pub fn send(from: &str, object_type: u32, to: &str, to_pid: u32) -> Result<(), Error> {
    let k = kind(object_type);
    enforce(
        Query::Send,
        k as u64,
        |p| p.may_send(from, k, to),
        u64::from(to_pid),
        to,
    )
}

/// May `from` grant pages to `to` (process `to_pid`)?
pub fn grant(from: &str, to: &str, to_pid: u32) -> Result<(), Error> {
    enforce(
        Query::Grant,
        0,
        |p| p.may_grant(from, to),
        u64::from(to_pid),
        to,
    )
}

/// May `program` become the driver of the device of PCI `class`:`subclass` at
/// (packed) `address`?
pub fn claim(program: &str, class: u8, subclass: u8, address: u32) -> Result<(), Error> {
    enforce(
        Query::Claim,
        u64::from(class) << 8 | u64::from(subclass),
        |p| p.may_claim(program, class, subclass),
        u64::from(address),
        "",
    )
}

/// The kernel memory `program` may hold.
pub fn memory(program: &str) -> u64 {
    POLICY
        .get()
        .and_then(Option::as_ref)
        .and_then(|p| p.memory_limit(program))
        .unwrap_or(DEFAULT_MEMORY)
}
