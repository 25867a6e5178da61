//! Unit tests: each refusal reason on a hand-built case, derive, revocation, the page.

extern crate std;

use crate::page;
use crate::*;
use zen_abi::cap::TOKENS_PER_PAGE;

const KEY: MacKey = MacKey::new([7; 32]);
const CHAN: u64 = 42;
const ALICE: u32 = 10;
const BOB: u32 = 11;

fn alice_chan(gen: u64) -> Binding {
    binding(CHAN, ObjectType::Channel, ALICE, gen)
}

#[test]
fn genuine_token_verifies_and_reports_rights() {
    let t = mint(&KEY, alice_chan(0), Rights::SEND | Rights::RECV);
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Ok(Rights::SEND | Rights::RECV)
    );
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::EMPTY),
        Ok(Rights::SEND | Rights::RECV)
    );
}

#[test]
fn made_up_token_is_forged() {
    let t = TokenSlot {
        token: Token {
            mac: [0xaa; 32],
            rights: Rights::ALL.bits(),
        },
        binding: alice_chan(0),
    };
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Err(CapError::Forged)
    );
}

#[test]
fn token_under_another_key_is_forged() {
    // A token from a previous boot (other key) is worthless.
    let t = mint(&MacKey::new([8; 32]), alice_chan(0), Rights::SEND);
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Err(CapError::Forged)
    );
}

#[test]
fn widened_rights_are_forged() {
    let mut t = mint(&KEY, alice_chan(0), Rights::RECV);
    t.token.rights |= Rights::SEND.bits();
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Err(CapError::Forged)
    );
}

#[test]
fn rewritten_binding_is_forged() {
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    // Bob rewrites the claim to name himself: MAC breaks.
    let mut stolen = t;
    stolen.binding.holder = BOB;
    let bob = binding(CHAN, ObjectType::Channel, BOB, 0);
    assert_eq!(
        verify(&KEY, &stolen, &bob, Rights::SEND),
        Err(CapError::Forged)
    );
    // Same for a newer generation claimed on an old token, or another object / type.
    let mut fresh = t;
    fresh.binding.generation = 1;
    assert_eq!(
        verify(&KEY, &fresh, &alice_chan(1), Rights::SEND),
        Err(CapError::Forged)
    );
    let mut other = t;
    other.binding.object_type = ObjectType::Process as u32;
    let proc_ = binding(CHAN, ObjectType::Process, ALICE, 0);
    assert_eq!(
        verify(&KEY, &other, &proc_, Rights::SEND),
        Err(CapError::Forged)
    );
}

#[test]
fn stolen_token_is_wrong_holder() {
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    let bob = binding(CHAN, ObjectType::Channel, BOB, 0);
    assert_eq!(
        verify(&KEY, &t, &bob, Rights::SEND),
        Err(CapError::WrongHolder)
    );
}

#[test]
fn token_for_other_object_or_type_is_refused() {
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    let other = binding(CHAN + 1, ObjectType::Channel, ALICE, 0);
    assert_eq!(
        verify(&KEY, &t, &other, Rights::SEND),
        Err(CapError::WrongObject)
    );
    let as_proc = binding(CHAN, ObjectType::Process, ALICE, 0);
    assert_eq!(
        verify(&KEY, &t, &as_proc, Rights::SEND),
        Err(CapError::WrongObject)
    );
}

#[test]
fn revoked_token_is_stale() {
    let mut gens = GenerationTable::<64>::new();
    let t = mint(&KEY, alice_chan(gens.current(CHAN).unwrap()), Rights::SEND);
    assert!(verify(
        &KEY,
        &t,
        &alice_chan(gens.current(CHAN).unwrap()),
        Rights::SEND
    )
    .is_ok());
    assert_eq!(gens.revoke(CHAN), Ok(1));
    assert_eq!(
        verify(
            &KEY,
            &t,
            &alice_chan(gens.current(CHAN).unwrap()),
            Rights::SEND
        ),
        Err(CapError::Stale)
    );
    // A token minted after revocation works.
    let t2 = mint(&KEY, alice_chan(1), Rights::SEND);
    assert!(verify(&KEY, &t2, &alice_chan(1), Rights::SEND).is_ok());
}

#[test]
fn missing_right_is_insufficient() {
    let t = mint(&KEY, alice_chan(0), Rights::RECV);
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Err(CapError::InsufficientRights)
    );
    assert_eq!(
        verify(&KEY, &t, &alice_chan(0), Rights::RECV | Rights::GRANT),
        Err(CapError::InsufficientRights)
    );
}

#[test]
fn derive_keeps_or_shrinks_rights_and_rebinds_holder() {
    let t = mint(
        &KEY,
        alice_chan(3),
        Rights::SEND | Rights::RECV | Rights::GRANT,
    );
    let bob = binding(CHAN, ObjectType::Channel, BOB, 3);
    let d = derive(&KEY, &t, &alice_chan(3), BOB, Rights::SEND).unwrap();
    assert_eq!(verify(&KEY, &d, &bob, Rights::SEND), Ok(Rights::SEND));
    assert_eq!(
        verify(&KEY, &d, &bob, Rights::RECV),
        Err(CapError::InsufficientRights)
    );
    // Bob's copy is not Alice's.
    assert_eq!(
        verify(&KEY, &d, &alice_chan(3), Rights::SEND),
        Err(CapError::WrongHolder)
    );
    // Without GRANT, Bob cannot pass it on, not even with fewer rights.
    assert_eq!(
        derive(&KEY, &d, &bob, ALICE, Rights::EMPTY).err(),
        Some(CapError::InsufficientRights)
    );
    // Equal rights are allowed.
    let same = derive(
        &KEY,
        &t,
        &alice_chan(3),
        BOB,
        Rights::SEND | Rights::RECV | Rights::GRANT,
    )
    .unwrap();
    assert_eq!(
        verify(&KEY, &same, &bob, Rights::EMPTY),
        Ok(Rights::SEND | Rights::RECV | Rights::GRANT)
    );
}

#[test]
fn derive_never_escalates() {
    let t = mint(&KEY, alice_chan(0), Rights::RECV | Rights::GRANT);
    assert_eq!(
        derive(&KEY, &t, &alice_chan(0), BOB, Rights::SEND).err(),
        Some(CapError::Escalation)
    );
    assert_eq!(
        derive(&KEY, &t, &alice_chan(0), BOB, Rights::ALL).err(),
        Some(CapError::Escalation)
    );
}

#[test]
fn derived_tokens_die_with_the_object_generation() {
    let mut gens = GenerationTable::<64>::new();
    let t = mint(&KEY, alice_chan(0), Rights::SEND | Rights::GRANT);
    let d = derive(&KEY, &t, &alice_chan(0), BOB, Rights::SEND).unwrap();
    gens.revoke(CHAN).unwrap();
    let g = gens.current(CHAN).unwrap();
    assert_eq!(
        verify(
            &KEY,
            &d,
            &binding(CHAN, ObjectType::Channel, BOB, g),
            Rights::SEND
        ),
        Err(CapError::Stale)
    );
    // And a stale token cannot be re-derived into a fresh one.
    assert_eq!(
        derive(&KEY, &t, &alice_chan(g), BOB, Rights::SEND).err(),
        Some(CapError::Stale)
    );
}

#[test]
fn generation_table_bounds_and_exhaustion() {
    let mut gens = GenerationTable::<4>::new();
    assert_eq!(gens.current(4), Err(CapError::UnknownObject));
    assert_eq!(gens.revoke(u64::MAX), Err(CapError::UnknownObject));
    gens.gens[2] = u64::MAX;
    assert_eq!(gens.revoke(2), Err(CapError::GenerationExhausted));
    assert_eq!(gens.current(2), Ok(u64::MAX));
}

#[test]
fn mac_input_fields_do_not_alias() {
    // Moving a value between adjacent fields must change the MAC (fixed offsets).
    let a = mint(
        &KEY,
        Binding {
            object: 1,
            generation: 0,
            holder: 0,
            object_type: 0,
        },
        Rights::EMPTY,
    );
    let b = mint(
        &KEY,
        Binding {
            object: 0,
            generation: 1,
            holder: 0,
            object_type: 0,
        },
        Rights::EMPTY,
    );
    let c = mint(
        &KEY,
        Binding {
            object: 0,
            generation: 0,
            holder: 1,
            object_type: 0,
        },
        Rights::EMPTY,
    );
    let d = mint(
        &KEY,
        Binding {
            object: 0,
            generation: 0,
            holder: 0,
            object_type: 1,
        },
        Rights::EMPTY,
    );
    let macs = [a.token.mac, b.token.mac, c.token.mac, d.token.mac];
    for i in 0..4 {
        for j in i + 1..4 {
            assert_ne!(macs[i], macs[j]);
        }
    }
}

#[test]
fn key_debug_hides_bytes() {
    let s = std::format!("{:?}", MacKey::new([0x5a; 32]));
    assert!(!s.contains("90"), "{s}"); // 0x5a == 90
    assert_eq!(s, "MacKey(..)");
}

#[test]
fn page_insert_get_remove() {
    let mut p = TokenPage::EMPTY;
    assert_eq!(page::free_slots(&p), TOKENS_PER_PAGE);
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    for i in 0..TOKENS_PER_PAGE {
        assert_eq!(page::insert(&mut p, t), Ok(i));
    }
    assert_eq!(page::insert(&mut p, t), Err(CapError::PageFull));
    assert_eq!(p.header.count as usize, TOKENS_PER_PAGE);
    assert_eq!(
        p.header.used >> TOKENS_PER_PAGE,
        0,
        "no bit past the last slot"
    );
    let got = page::remove(&mut p, 5).unwrap();
    assert!(verify(&KEY, &got, &alice_chan(0), Rights::SEND).is_ok());
    assert_eq!(p.slots[5].token.mac, [0; 32], "freed slot is wiped");
    assert_eq!(page::get(&p, 5).err(), Some(CapError::NoSuchSlot));
    assert_eq!(page::remove(&mut p, 5).err(), Some(CapError::NoSuchSlot));
    assert_eq!(page::free_slots(&p), 1);
    // The hole is reused first.
    assert_eq!(page::insert(&mut p, t), Ok(5));
    assert_eq!(
        page::get(&p, TOKENS_PER_PAGE).err(),
        Some(CapError::NoSuchSlot)
    );
    assert_eq!(page::get(&p, usize::MAX).err(), Some(CapError::NoSuchSlot));
}

#[test]
fn page_iter_skips_free_and_garbage_bits() {
    let mut p = TokenPage::EMPTY;
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    for _ in 0..4 {
        page::insert(&mut p, t).unwrap();
    }
    page::remove(&mut p, 1).unwrap();
    let idx: std::vec::Vec<usize> = page::iter(&p).map(|(i, _)| i).collect();
    assert_eq!(idx, [0, 2, 3]);
    // A corrupted header (bit 63 set, as a torn user-side read might show) is ignored.
    p.header.used |= 1 << 63;
    assert_eq!(page::iter(&p).count(), 3);
    assert_eq!(page::get(&p, 63).err(), Some(CapError::NoSuchSlot));
}

#[test]
fn genuine_check_skips_only_the_mac() {
    // What the kernel does for a token named by slot: no MAC (the kernel wrote the
    // page), but every other refusal still holds.
    let t = mint(&KEY, alice_chan(3), Rights::SEND);
    assert_eq!(
        check_genuine(&t, &alice_chan(3), Rights::SEND),
        Ok(Rights::SEND)
    );
    assert_eq!(
        check_genuine(&t, &alice_chan(4), Rights::SEND),
        Err(CapError::Stale)
    );
    assert_eq!(
        check_genuine(
            &t,
            &binding(CHAN, ObjectType::Channel, BOB, 3),
            Rights::SEND
        ),
        Err(CapError::WrongHolder)
    );
    assert_eq!(
        check_genuine(
            &t,
            &binding(CHAN + 1, ObjectType::Channel, ALICE, 3),
            Rights::SEND
        ),
        Err(CapError::WrongObject)
    );
    assert_eq!(
        check_genuine(&t, &alice_chan(3), Rights::RECV),
        Err(CapError::InsufficientRights)
    );
    // A free slot (all zeroes) names nothing a process could hold.
    assert_eq!(
        check_genuine(&TokenSlot::ZERO, &alice_chan(3), Rights::EMPTY),
        Err(CapError::WrongObject)
    );
}

#[test]
fn the_memo_remembers_and_a_memo_of_none_still_verifies() {
    let t = mint(&KEY, alice_chan(0), Rights::SEND);
    let mut memo = Verified::<2>::new();
    assert_eq!(
        memo.verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Ok(Rights::SEND)
    );
    // Remembered: the same slot and binding skip the MAC (the kernel has one key, so
    // a hit under another key shows the memo was used, not that keys do not matter).
    let other = MacKey::new([8; 32]);
    assert_eq!(
        memo.verify(&other, &t, &alice_chan(0), Rights::SEND),
        Ok(Rights::SEND)
    );
    // Rights are still checked on a hit.
    assert_eq!(
        memo.verify(&KEY, &t, &alice_chan(0), Rights::RECV),
        Err(CapError::InsufficientRights)
    );
    // No memo: every call is a full check.
    let mut none = Verified::<0>::new();
    assert_eq!(
        none.verify(&KEY, &t, &alice_chan(0), Rights::SEND),
        Ok(Rights::SEND)
    );
    assert!(none
        .verify(&other, &t, &alice_chan(0), Rights::SEND)
        .is_err());
}
