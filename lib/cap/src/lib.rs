//! zen-cap: capability tokens, minted and checked by the kernel.
//!
//! A token ([`zen_abi::cap::Token`]) is a 32-byte MAC and a rights bitmap. The MAC is
//! keyed BLAKE3 (one compression: [`blake3`]) under a per-boot [`MacKey`] (the kernel draws it from RDSEED/RDRAND and
//! never shows it to anyone) over a fixed 40-byte message:
//!
//! ```text
//! offset size
//!      0    8  domain "zencap\x01\0" (version 1 of this message)
//!      8    8  object id
//!     16    4  object type
//!     20    4  holder process id
//!     24    8  generation
//!     32    8  rights
//! ```
//!
//! Fixed length and fixed offsets make the encoding injective, so no two bindings share
//! a MAC input. The binding is stored in clear beside the token
//! ([`zen_abi::cap::TokenSlot`]); [`verify`] first checks the MAC over the *claimed*
//! binding and rights (anything altered or made up is [`CapError::Forged`]) and only then
//! compares the genuine claim with the facts (object, holder, current generation,
//! required rights), which is how it tells a stolen or stale token from a forged one.
//!
//! Revocation bumps the object's generation ([`GenerationTable`]): every token minted
//! before is then stale. Tokens move between processes only through [`derive`], which
//! needs the `GRANT` right and can only keep or drop rights.
//!
//! [`page`] keeps a process's token page (which slot is used, insert, remove).
#![no_std]
#![deny(unsafe_code)]

pub mod blake3;
pub mod page;

pub use zen_abi::cap::{Binding, ObjectType, Rights, Token, TokenPage, TokenSlot};

/// The per-boot MAC key. No `Debug` output of the bytes, no `Clone`: there is one key.
pub struct MacKey([u8; 32]);

impl MacKey {
    pub const fn new(bytes: [u8; 32]) -> Self {
        MacKey(bytes)
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// Why a capability was refused, or a table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The MAC does not match the claimed binding and rights: made up, or any bit of the
    /// MAC, the rights or the binding altered.
    Forged,
    /// Genuine, but for another object (or the same id as another type).
    WrongObject,
    /// Genuine, but minted for another process: stolen or leaked.
    WrongHolder,
    /// Genuine, but the object's generation has moved on: revoked.
    Stale,
    /// Genuine and current, but lacks a right the operation needs.
    InsufficientRights,
    /// `derive` asked for rights the source does not hold.
    Escalation,
    /// The object id is outside the generation table.
    UnknownObject,
    /// The generation counter would overflow (2^64 revocations): refuse rather than wrap.
    GenerationExhausted,
    /// The token page has no free slot.
    PageFull,
    /// No live token in that slot of the token page.
    NoSuchSlot,
}

const DOMAIN: [u8; 8] = *b"zencap\x01\0";

/// The MAC of `rights` bound to `b`.
fn mac(key: &MacKey, b: &Binding, rights: u64) -> [u8; 32] {
    let mut msg = [0u8; 40];
    msg[0..8].copy_from_slice(&DOMAIN);
    msg[8..16].copy_from_slice(&b.object.to_le_bytes());
    msg[16..20].copy_from_slice(&b.object_type.to_le_bytes());
    msg[20..24].copy_from_slice(&b.holder.to_le_bytes());
    msg[24..32].copy_from_slice(&b.generation.to_le_bytes());
    msg[32..40].copy_from_slice(&rights.to_le_bytes());
    blake3::keyed_hash(&key.0, &msg)
}

/// A binding for `object` of type `ty`, held by `holder`, at `generation`.
pub const fn binding(object: u64, ty: ObjectType, holder: u32, generation: u64) -> Binding {
    Binding {
        object,
        generation,
        holder,
        object_type: ty as u32,
    }
}

/// Mints a token with `rights` for `b`, returned with its binding, ready for a token
/// page. The kernel calls this when it creates an object (the creator gets all rights)
/// and from [`derive`].
pub fn mint(key: &MacKey, b: Binding, rights: Rights) -> TokenSlot {
    TokenSlot {
        token: Token {
            mac: mac(key, &b, rights.bits()),
            rights: rights.bits(),
        },
        binding: b,
    }
}

/// Checks `slot` for an operation needing `required` on the object `expected.object` of
/// type `expected.object_type`, by process `expected.holder`, whose generation is now
/// `expected.generation`. Returns the rights the token holds.
///
/// The MAC is checked first and compared in constant time ([`blake3::ct_eq`]),
/// so an attacker learns nothing byte by byte; the later checks compare values that the
/// MAC has just shown genuine, so their timing reveals nothing secret.
pub fn verify(
    key: &MacKey,
    slot: &TokenSlot,
    expected: &Binding,
    required: Rights,
) -> Result<Rights, CapError> {
    // Copy out first: `slot` may be in memory another thread can change.
    let copy = *slot;
    if !blake3::ct_eq(&mac(key, &copy.binding, copy.token.rights), &copy.token.mac) {
        return Err(CapError::Forged);
    }
    check_genuine(&copy, expected, required)
}

/// The checks of [`verify`] after the MAC, for a token known to be genuine without
/// it: one the kernel reads from the token page it wrote itself (a process names it
/// by slot). Object, holder, generation and rights are still checked, since a genuine
/// token may be stale, another process's or too weak.
#[inline]
pub fn check_genuine(
    slot: &TokenSlot,
    expected: &Binding,
    required: Rights,
) -> Result<Rights, CapError> {
    let TokenSlot {
        token,
        binding: claim,
    } = *slot;
    if claim.object != expected.object || claim.object_type != expected.object_type {
        return Err(CapError::WrongObject);
    }
    if claim.holder != expected.holder {
        return Err(CapError::WrongHolder);
    }
    if claim.generation != expected.generation {
        return Err(CapError::Stale);
    }
    // Only the kernel mints, and only with defined rights, so a genuine token has no
    // undefined bits; truncating is just belt and braces.
    let held = Rights::from_bits_truncate(token.rights);
    if !held.contains(required) {
        return Err(CapError::InsufficientRights);
    }
    Ok(held)
}

/// A memo of [`verify`] for one holder: the last `N` token slots that verified, byte
/// for byte, with the binding they verified against and the rights they hold. A slot
/// identical to a remembered one, checked against the same expected binding (so the
/// same object, holder and *current* generation: a revocation makes every entry miss),
/// gives the same answer `verify` would, without computing the MAC again: `verify` is
/// a pure function of key, slot and expected binding, and the key is fixed per boot.
/// Misses and refusals always take the full check. Lookups compare in variable time;
/// that tells a process only whether it presents a token it presented before.
#[derive(Clone, Debug)]
pub struct Verified<const N: usize> {
    entries: [Option<(TokenSlot, Rights)>; N],
    next: usize,
}

impl<const N: usize> Default for Verified<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Verified<N> {
    pub const fn new() -> Self {
        Verified {
            entries: [None; N],
            next: 0,
        }
    }

    /// [`verify`], through the memo.
    pub fn verify(
        &mut self,
        key: &MacKey,
        slot: &TokenSlot,
        expected: &Binding,
        required: Rights,
    ) -> Result<Rights, CapError> {
        // One copy, as in `verify`: `slot` may be in memory that changes under us.
        let slot = *slot;
        // Field by field, not through `to_bytes`: this runs on every channel call.
        let hit = self.entries.iter().flatten().find(|(s, _)| {
            s.binding == *expected
                && slot.binding == *expected
                && s.token.rights == slot.token.rights
                && s.token.mac == slot.token.mac
        });
        let held = match hit {
            Some((_, held)) => *held,
            None => {
                let held = verify(key, &slot, expected, Rights::EMPTY)?;
                if N > 0 {
                    self.entries[self.next % N] = Some((slot, held));
                    self.next = self.next.wrapping_add(1);
                }
                held
            }
        };
        if !held.contains(required) {
            return Err(CapError::InsufficientRights);
        }
        Ok(held)
    }
}

/// Passes a copy of `slot` (held by `expected.holder`, checked as by [`verify`]) to
/// `new_holder` with `rights`, which must be a subset of the rights held. The source
/// must hold [`Rights::GRANT`]; the copy keeps `GRANT` only if `rights` asks for it.
/// The copy has the same object and generation, so revoking the object revokes it too.
pub fn derive(
    key: &MacKey,
    slot: &TokenSlot,
    expected: &Binding,
    new_holder: u32,
    rights: Rights,
) -> Result<TokenSlot, CapError> {
    let held = verify(key, slot, expected, Rights::GRANT)?;
    if !held.contains(rights) {
        return Err(CapError::Escalation);
    }
    Ok(mint(
        key,
        Binding {
            holder: new_holder,
            ..*expected
        },
        rights,
    ))
}

/// The current generation of `N` objects, ids `0..N`. Revoking an object bumps its
/// generation, which makes every token minted before stale. The kernel may keep
/// generations elsewhere (e.g. in its object pool); this is the simple fixed form.
#[derive(Clone, Debug)]
pub struct GenerationTable<const N: usize> {
    gens: [u64; N],
}

impl<const N: usize> GenerationTable<N> {
    pub const fn new() -> Self {
        GenerationTable { gens: [0; N] }
    }

    pub fn current(&self, object: u64) -> Result<u64, CapError> {
        let i = usize::try_from(object).map_err(|_| CapError::UnknownObject)?;
        self.gens.get(i).copied().ok_or(CapError::UnknownObject)
    }

    /// Revokes every token of `object`; returns the new generation.
    pub fn revoke(&mut self, object: u64) -> Result<u64, CapError> {
        let i = usize::try_from(object).map_err(|_| CapError::UnknownObject)?;
        let g = self.gens.get_mut(i).ok_or(CapError::UnknownObject)?;
        *g = g.checked_add(1).ok_or(CapError::GenerationExhausted)?;
        Ok(*g)
    }
}

impl<const N: usize> Default for GenerationTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
