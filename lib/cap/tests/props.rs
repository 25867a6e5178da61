//! Property tests: random tokens under random mutations are never accepted, and
//! derivation can only shrink rights.

use proptest::prelude::*;
use zen_cap::{
    binding, derive, mint, verify, Binding, CapError, MacKey, ObjectType, Rights, TokenSlot,
};

fn any_type() -> impl Strategy<Value = ObjectType> {
    (1u32..=7).prop_map(|v| ObjectType::try_from(v).unwrap())
}

fn any_binding() -> impl Strategy<Value = Binding> {
    (any::<u64>(), any_type(), any::<u32>(), any::<u64>())
        .prop_map(|(o, t, h, g)| binding(o, t, h, g))
}

fn any_rights() -> impl Strategy<Value = Rights> {
    (0..=Rights::ALL.bits()).prop_map(|b| Rights::from_bits(b).unwrap())
}

/// Flips bit `bit` of the 64-byte slot viewed as MAC (256 bits), rights (64) and
/// binding (192: object, generation, holder, type).
fn flip(mut s: TokenSlot, bit: usize) -> TokenSlot {
    match bit {
        0..256 => s.token.mac[bit / 8] ^= 1 << (bit % 8),
        256..320 => s.token.rights ^= 1 << (bit - 256),
        320..384 => s.binding.object ^= 1 << (bit - 320),
        384..448 => s.binding.generation ^= 1 << (bit - 384),
        448..480 => s.binding.holder ^= 1 << (bit - 448),
        _ => s.binding.object_type ^= 1 << (bit - 480),
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any single flipped bit anywhere in the slot is refused as forged when checked
    /// against the claim (the attacker controls the claim).
    #[test]
    fn any_bit_flip_is_forged(key: [u8; 32], b in any_binding(), r in any_rights(), bit in 0usize..512) {
        let key = MacKey::new(key);
        let bad = flip(mint(&key, b, r), bit);
        prop_assert_eq!(verify(&key, &bad, &bad.binding, Rights::EMPTY), Err(CapError::Forged));
    }

    /// Random bytes are never a valid token.
    #[test]
    fn random_tokens_are_forged(key: [u8; 32], mac: [u8; 32], rights: u64, b in any_binding()) {
        let key = MacKey::new(key);
        let s = TokenSlot { token: zen_cap::Token { mac, rights }, binding: b };
        prop_assert_eq!(verify(&key, &s, &b, Rights::EMPTY), Err(CapError::Forged));
    }

    /// A genuine token used by anyone else, at any other generation, or for more than it
    /// holds is refused with the matching reason; the exact context is accepted.
    #[test]
    fn genuine_token_only_in_its_context(
        key: [u8; 32], b in any_binding(), r in any_rights(), req in any_rights(),
        other_holder: u32, other_gen: u64,
    ) {
        let key = MacKey::new(key);
        let t = mint(&key, b, r);
        let res = verify(&key, &t, &b, req);
        if r.contains(req) {
            prop_assert_eq!(res, Ok(r));
        } else {
            prop_assert_eq!(res, Err(CapError::InsufficientRights));
        }
        if other_holder != b.holder {
            prop_assert_eq!(verify(&key, &t, &Binding { holder: other_holder, ..b }, Rights::EMPTY), Err(CapError::WrongHolder));
        }
        if other_gen != b.generation {
            prop_assert_eq!(verify(&key, &t, &Binding { generation: other_gen, ..b }, Rights::EMPTY), Err(CapError::Stale));
        }
    }

    /// Derivation chains never gain a right: every token in the chain holds a subset of
    /// its parent's rights, and asking for more is refused.
    #[test]
    fn rights_only_shrink(key: [u8; 32], b in any_binding(), r in any_rights(), asks in prop::collection::vec((any::<u32>(), any_rights()), 1..6)) {
        let key = MacKey::new(key);
        let mut cur = mint(&key, b, r);
        let mut held = r;
        for (holder, want) in asks {
            let ctx = cur.binding;
            match derive(&key, &cur, &ctx, holder, want) {
                Ok(next) => {
                    prop_assert!(held.contains(Rights::GRANT) && held.contains(want));
                    let got = verify(&key, &next, &Binding { holder, ..ctx }, Rights::EMPTY).unwrap();
                    prop_assert_eq!(got, want);
                    cur = next;
                    held = want;
                }
                Err(e) => {
                    let expect = if !held.contains(Rights::GRANT) { CapError::InsufficientRights } else { CapError::Escalation };
                    prop_assert!(!held.contains(Rights::GRANT) || !held.contains(want));
                    prop_assert_eq!(e, expect);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The memo of `Verified` answers exactly as `verify` does, over any sequence of
    /// genuine, altered, stolen, stale and under-privileged uses, including revocations
    /// (the current generation moving on) between them.
    #[test]
    fn memo_agrees_with_verify(
        key: [u8; 32],
        b in any_binding(),
        r in any_rights(),
        steps in proptest::collection::vec(
            (0usize..7, 0usize..512, any_rights(), any::<u32>()), 1..40),
    ) {
        let key = MacKey::new(key);
        let mut memo = zen_cap::Verified::<3>::new();
        let mut gen = b.generation;
        let mut tokens = vec![mint(&key, b, r)];
        for (what, bit, req, other) in steps {
            let current = Binding { generation: gen, ..b };
            let base = tokens[bit % tokens.len()];
            let slot = match what {
                0 | 1 => base,
                2 => flip(base, bit),
                3 => mint(&key, Binding { holder: other, ..current }, r),
                4 => {
                    // Revoke: the generation moves on, a fresh token is minted.
                    gen = gen.wrapping_add(1);
                    tokens.push(mint(&key, Binding { generation: gen, ..b }, r));
                    continue;
                }
                5 => mint(&key, current, req),
                // A remembered token relabelled as the current generation's: its MAC
                // is genuine for another binding, so this is a forgery.
                _ => TokenSlot { binding: current, ..base },
            };
            let current = Binding { generation: gen, ..b };
            prop_assert_eq!(
                memo.verify(&key, &slot, &current, req),
                verify(&key, &slot, &current, req)
            );
        }
    }
}
