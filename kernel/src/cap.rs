//! Capabilities, the kernel side of zen-cap: the per-boot MAC key, tokens copied in
//! from user memory, denials, and the one object that is not a channel: the system
//! (object 0 of `ObjectType::System`), whose POWER right `shutdown` needs.
//!
//! Below ipc in the call graph: ipc knows channels and asks this module to check and
//! mint tokens; this module knows no channel.
//!
//! A denial keeps its reason: the EDGE_REGISTRY record's 16-bit detail is the system
//! call number in its low byte and the `CapError` (see [`reason_code`]) in its high
//! byte, so a forged MAC is told apart from a stale generation or a stolen token.

use zen_abi::cap::{Binding, ObjectType, Rights, TokenSlot};
use zen_abi::syscall::Error;
use zen_cap::{CapError, MacKey};

/// What cap needs of a token holder (a process, to the layers above; cap never names
/// one): who it is, its memory to copy a token from, its memo of verified tokens and
/// its token page.
pub trait Holder {
    fn pid(&self) -> u32;
    /// Fills `out` from user address `ptr`; `BadAddress` unless all of it is readable
    /// user memory of this holder.
    fn read_user(&self, ptr: u64, out: &mut [u8]) -> Result<(), Error>;
    /// Checks a token it presents (`zen_cap::verify`, through its memo).
    fn verify_token(
        &self,
        key: &MacKey,
        slot: &TokenSlot,
        expected: &Binding,
        required: Rights,
    ) -> Result<Rights, CapError>;
    /// Puts a token in the first free slot of its token page.
    fn insert_token(&self, t: TokenSlot) -> Result<usize, Error>;
    /// The live token in slot `i` of its token page, as the kernel wrote it.
    fn token_at(&self, i: usize) -> Option<TokenSlot>;
}

/// A token a system call presents, copied once: the bytes, and where they came from.
/// Named by slot, they are the kernel's own copy in the caller's token page (which
/// only the kernel writes), so they are genuine by construction and the MAC is not
/// computed; from user memory, the MAC decides. Either way [`verify`] checks object,
/// holder, generation and rights against the kernel's state of now.
#[derive(Clone, Copy, Debug)]
pub struct Presented {
    slot: TokenSlot,
    from_page: bool,
}

impl core::ops::Deref for Presented {
    type Target = TokenSlot;
    fn deref(&self) -> &TokenSlot {
        &self.slot
    }
}

/// Checks a presented token for an operation needing `required`, against `expected`
/// (the binding a genuine token of the caller must carry now); the rights it holds.
#[inline]
pub fn verify(
    me: &dyn Holder,
    tok: &Presented,
    expected: &Binding,
    required: Rights,
) -> Result<Rights, CapError> {
    if tok.from_page {
        zen_cap::check_genuine(&tok.slot, expected, required)
    } else {
        me.verify_token(key(), &tok.slot, expected, required)
    }
}

static KEY: spin::Once<MacKey> = spin::Once::new();

/// The per-boot MAC key, drawn from the CPU's random number generator on first use.
pub fn key() -> &'static MacKey {
    KEY.call_once(|| {
        let (k, hw) = crate::arch::cpu::random_seed();
        if !hw {
            crate::kprintln!(
                "zen: WARNING: no hardware random numbers; capability key is guessable"
            );
        }
        MacKey::new(k)
    })
}

/// The number a denial's reason gets in its EDGE_REGISTRY record (high byte of the
/// detail); stable, documented in docs/abi.md.
pub const fn reason_code(why: CapError) -> u16 {
    match why {
        CapError::Forged => 1,
        CapError::WrongObject => 2,
        CapError::WrongHolder => 3,
        CapError::Stale => 4,
        CapError::InsufficientRights => 5,
        CapError::Escalation => 6,
        CapError::UnknownObject => 7,
        CapError::GenerationExhausted => 8,
        _ => 15,
    }
}

/// Records a refused capability (call, object, reason) and returns `Denied`.
pub fn denied(call: u16, object: u64, why: CapError) -> Error {
    crate::edge::report_detail(
        zen_edge::EdgeKind::CapabilityDenied,
        (call & 0xff) | reason_code(why) << 8,
        object as u32,
    );
    crate::audit::refused(
        zen_audit::Kind::CapRefused,
        [u64::from(call), object, u64::from(reason_code(why)), 0],
    );
    Error::Denied
}

/// Copies a token from user memory once (into a buffer on the stack, no heap
/// allocation). Every later check and use reads this copy, never the user's memory
/// again.
pub fn token_in(me: &dyn Holder, ptr: u64) -> Result<Presented, Error> {
    let mut b = [0u8; TokenSlot::SIZE];
    me.read_user(ptr, &mut b)?;
    Ok(presented_bytes(&b))
}

/// A token given as bytes from user memory (already copied in): the MAC decides.
pub fn presented_bytes(b: &[u8; TokenSlot::SIZE]) -> Presented {
    Presented {
        slot: TokenSlot::from_bytes(b),
        from_page: false,
    }
}

/// The token in slot `i` of the caller's token page (the kernel's own copy). A free
/// or out-of-range slot gives an all-zero token presented as if from user memory, so
/// it is refused as forged (with its record) like any made-up token.
#[inline]
pub fn token_at(me: &dyn Holder, i: usize) -> Presented {
    match me.token_at(i) {
        Some(slot) => Presented {
            slot,
            from_page: true,
        },
        None => Presented {
            slot: TokenSlot::ZERO,
            from_page: false,
        },
    }
}

/// The system object's id.
pub const SYSTEM_OBJECT: u64 = 0;

/// The binding a genuine system token held by `pid` carries (the system has one
/// generation: its tokens are never revoked; init decides who gets one).
pub fn system_binding(pid: u32) -> Binding {
    zen_cap::binding(SYSTEM_OBJECT, ObjectType::System, pid, 1)
}

/// The system token init starts with: POWER, DEVICE, AUDIT, and GRANT to pass it on.
pub fn system_token(pid: u32) -> TokenSlot {
    zen_cap::mint(
        key(),
        system_binding(pid),
        Rights::POWER
            .union(Rights::DEVICE)
            .union(Rights::AUDIT)
            .union(Rights::GRANT),
    )
}

/// The binding a genuine token for the PCI function at packed address `address`,
/// held by `pid`, carries. A device has one generation: who holds it changes with its
/// driver's life (the device layer's claim), not its tokens, so init keeps the token
/// it gives each new instance of a driver.
pub fn device_binding(address: u32, pid: u32) -> Binding {
    zen_cap::binding(address as u64, ObjectType::Device, pid, 1)
}

/// Checks that `slot` is a system token of the caller with `required`.
pub fn check_system(
    me: &dyn Holder,
    slot: &Presented,
    required: Rights,
    call: u16,
) -> Result<(), Error> {
    let expected = system_binding(me.pid());
    verify(me, slot, &expected, required)
        .map(|_| ())
        .map_err(|e| denied(call, slot.binding.object, e))
}

/// Derives `slot` (held by `me`, checked against `expected`) for `target` with
/// `rights` and puts the copy in the target's token page; the slot index.
pub fn derive_to(
    slot: &Presented,
    expected: &Binding,
    rights: Rights,
    target: &dyn Holder,
    call: u16,
) -> Result<u64, Error> {
    let copy = zen_cap::derive(key(), slot, expected, target.pid(), rights)
        .map_err(|e| denied(call, expected.object, e))?;
    target.insert_token(copy).map(|i| i as u64)
}
