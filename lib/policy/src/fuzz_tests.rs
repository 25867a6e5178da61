//! Property tests: decode takes any bytes without panicking, refuses every truncation
//! and every single flipped bit of a valid table, and survives damage re-sealed with a
//! valid checksum; compile takes any text without panicking, and what it emits always
//! decodes.

extern crate std;

use crate::{compile, CapKind, Policy};
use alloc::string::String;
use alloc::vec::Vec;
use proptest::prelude::*;

const SAMPLE: &str = "\
program init may spawn any
program shell may not spawn init
program any may send capability channel to any
program init may not send capability system to shell
program nvmed may claim device class 01:08
program any may not claim device class any
program tagfsd may grant pages to nvmed
program any memory 4M
program tagfsd memory 64M
default allow
";

/// Every query, on names in and out of the table, so a bad decode would show.
fn ask_everything(p: &Policy) {
    for a in ["init", "shell", "nvmed", "tagfsd", "x", ""] {
        for b in ["init", "shell", "nvmed", "any", "y"] {
            let _ = p.may_spawn(a, b);
            let _ = p.may_grant(a, b);
            for k in [CapKind::Channel, CapKind::Device, CapKind::System] {
                let _ = p.may_send(a, k, b);
            }
        }
        let _ = (
            p.may_claim(a, 1, 8),
            p.may_claim(a, 0, 0),
            p.memory_limit(a),
        );
    }
}

/// Words of the language and near misses, to damage rules with.
const VOCAB: &[&str] = &[
    "program",
    "default",
    "allow",
    "deny",
    "may",
    "not",
    "spawn",
    "send",
    "claim",
    "grant",
    "capability",
    "channel",
    "device",
    "system",
    "any",
    "to",
    "class",
    "pages",
    "memory",
    "init",
    "01:08",
    "ff:FF",
    "1:8",
    "4M",
    "17179869184G",
    "#",
    "spwan",
    "\t",
    "é",
    "Shell",
];

/// A rule as the grammar has it, as words.
fn rule() -> impl Strategy<Value = Vec<&'static str>> {
    let name = || prop::sample::select(&["init", "shell", "any", "a-b_9"][..]);
    let kind = prop::sample::select(&["channel", "device", "system", "any"][..]);
    let class = prop::sample::select(&["01:08", "ff:0A", "any"][..]);
    let size = prop::sample::select(&["0", "4M", "1G", "12345K"][..]);
    (name(), any::<bool>(), 0..6u8, name(), kind, class, size).prop_map(
        |(n, not, op, o, k, c, s)| {
            let head = ["program", n];
            let may: &[&str] = if not { &["may", "not"] } else { &["may"] };
            match op {
                0 => [&head[..], &["memory", s]].concat(),
                1 => [&head[..], may, &["spawn", o]].concat(),
                2 => [&head[..], may, &["send", "capability", k, "to", o]].concat(),
                3 => [&head[..], may, &["claim", "device", "class", c]].concat(),
                4 => [&head[..], may, &["grant", "pages", "to", o]].concat(),
                _ => alloc::vec!["default", if not { "deny" } else { "allow" }],
            }
        },
    )
}

/// Policy text: rules, some with a word replaced, dropped or added.
fn text() -> impl Strategy<Value = String> {
    let edit = prop::option::weighted(
        0.3,
        (
            any::<prop::sample::Index>(),
            0..3u8,
            prop::sample::select(VOCAB),
        ),
    );
    let line = (rule(), edit).prop_map(|(mut w, edit)| {
        if let Some((at, how, word)) = edit {
            let i = at.index(w.len());
            match how {
                0 => w[i] = word,
                1 => drop(w.remove(i)),
                _ => w.insert(i, word),
            }
        }
        w.join(" ")
    });
    prop::collection::vec(line, 0..12).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"ZENPOLCY");
        }
        if let Ok(p) = Policy::decode(&bytes) {
            ask_everything(&p);
        }
    }

    #[test]
    fn every_truncation_is_refused(cut in any::<prop::sample::Index>()) {
        let t = compile(SAMPLE).unwrap();
        let cut = cut.index(t.len());
        prop_assert!(Policy::decode(&t[..cut]).is_err());
    }

    #[test]
    fn every_flipped_bit_is_refused(bit in any::<prop::sample::Index>()) {
        let mut t = compile(SAMPLE).unwrap();
        let bit = bit.index(t.len() * 8);
        t[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Policy::decode(&t).is_err(), "bit {} slipped through", bit);
    }

    #[test]
    fn resealed_damage_is_refused_or_harmless(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut t = compile(SAMPLE).unwrap();
        for (at, v) in edits {
            let i = at.index(t.len());
            t[i] = v;
        }
        let sum = crate::table::checksum(&t);
        t[24..32].copy_from_slice(&sum.to_le_bytes());
        if let Ok(p) = Policy::decode(&t) {
            ask_everything(&p);
        }
    }

    #[test]
    fn compile_never_panics_on_words(text in text()) {
        if let Ok(t) = compile(&text) {
            let p = Policy::decode(&t);
            prop_assert!(p.is_ok(), "{:?} compiled to a table decode refuses: {:?}", text, p.err());
        }
    }

    #[test]
    fn compile_never_panics_on_any_text(text in "\\PC{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = compile(&text);
        let _ = compile(&String::from_utf8_lossy(&bytes));
    }
}

/// The word generator does reach valid policies (else the property above proves little).
#[test]
fn the_word_generator_compiles_sometimes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let ok: Vec<_> = (0..2000)
        .filter_map(|_| compile(&text().new_tree(&mut runner).unwrap().current()).ok())
        .filter(|t| t.len() > crate::table::HEADER_SIZE + 4 * crate::table::RECORD_SIZE)
        .collect();
    assert!(ok.len() > 50, "{}", ok.len());
}
