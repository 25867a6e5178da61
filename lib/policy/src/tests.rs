//! Each rule kind, precedence, the default, every compile error at its line:column,
//! and decode refusing tables that are damaged but re-sealed with a valid checksum.

extern crate std;

use crate::table::{self, HEADER_SIZE, RECORD_SIZE};
use crate::*;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

fn policy(text: &str) -> Vec<u8> {
    compile(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The policy for `text`, its table leaked (tests only) so the view can outlive it.
fn decoded(text: &str) -> Policy<'static> {
    Policy::decode(policy(text).leak()).unwrap()
}

/// (verdict, line) for a one-off check; line 0 for the default.
fn v(d: Decision) -> (bool, u32) {
    let line = match d.by {
        By::Rule(l) => l,
        By::Default => 0,
    };
    (d.allowed(), line)
}

/// The example policy in the crate docs.
fn doc_example() -> String {
    let src = include_str!("lib.rs");
    let start = src.find("//! An example, `policy.zen`:").unwrap();
    src[start..]
        .lines()
        .skip(3)
        .take_while(|l| *l != "//! ```")
        .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
        .collect()
}

#[test]
fn the_doc_example_means_what_it_says() {
    let t = policy(&doc_example());
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_spawn("init", "shell")), (true, 2));
    assert_eq!(v(p.may_spawn("shell", "ls")), (true, 3));
    assert_eq!(v(p.may_spawn("shell", "init")), (false, 4));
    assert_eq!(v(p.may_spawn("nvmed", "ls")), (false, 0));
    assert_eq!(v(p.may_claim("nvmed", 0x01, 0x08)), (true, 7));
    assert_eq!(v(p.may_claim("nvmed", 0x02, 0x00)), (false, 8));
    assert_eq!(v(p.may_claim("shell", 0x01, 0x08)), (false, 8));
    assert_eq!(v(p.may_send("shell", CapKind::Channel, "init")), (true, 11));
    assert_eq!(v(p.may_send("init", CapKind::System, "shell")), (true, 12));
    assert_eq!(v(p.may_send("shell", CapKind::System, "init")), (false, 0));
    assert_eq!(v(p.may_grant("tagfsd", "nvmed")), (true, 13));
    assert_eq!(v(p.may_grant("nvmed", "tagfsd")), (false, 0));
    assert_eq!(p.memory_limit("shell"), Some(4 << 20));
    assert_eq!(p.memory_limit("tagfsd"), Some(64 << 20));
    assert_eq!(p.default_verdict(), Verdict::Deny);
}

#[test]
fn spawn_allows_and_refuses_as_written() {
    let t = policy("program a may spawn b\nprogram a may not spawn c\nprogram x may spawn any\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_spawn("a", "b")), (true, 1));
    assert_eq!(v(p.may_spawn("a", "c")), (false, 2));
    assert_eq!(v(p.may_spawn("a", "d")), (false, 0));
    assert_eq!(v(p.may_spawn("b", "a")), (false, 0));
    assert_eq!(v(p.may_spawn("x", "anything")), (true, 3));
    // Spawn rules say nothing about grants.
    assert_eq!(v(p.may_grant("a", "b")), (false, 0));
}

#[test]
fn send_matches_kind_and_receiver() {
    let t = policy(
        "program a may send capability device to b\n\
         program a may not send capability any to c\n\
         program a may send capability any to d\n",
    );
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_send("a", CapKind::Device, "b")), (true, 1));
    assert_eq!(v(p.may_send("a", CapKind::Channel, "b")), (false, 0));
    assert_eq!(v(p.may_send("a", CapKind::Device, "c")), (false, 2));
    for k in [CapKind::Channel, CapKind::Device, CapKind::System] {
        assert_eq!(v(p.may_send("a", k, "d")), (true, 3));
        assert_eq!(v(p.may_send("d", k, "a")), (false, 0));
    }
}

#[test]
fn claim_matches_class_and_subclass() {
    let t = policy("program d may claim device class 01:08\nprogram e may claim device class any\nprogram d may not claim device class 0C:03\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_claim("d", 1, 8)), (true, 1));
    assert_eq!(v(p.may_claim("d", 1, 6)), (false, 0));
    assert_eq!(v(p.may_claim("d", 8, 1)), (false, 0));
    assert_eq!(v(p.may_claim("d", 0x0c, 0x03)), (false, 3));
    assert_eq!(v(p.may_claim("e", 0xff, 0xff)), (true, 2));
}

#[test]
fn grant_allows_and_refuses_as_written() {
    let t = policy("program a may grant pages to b\nprogram any may grant pages to c\nprogram a may not grant pages to c\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_grant("a", "b")), (true, 1));
    assert_eq!(v(p.may_grant("b", "a")), (false, 0));
    assert_eq!(v(p.may_grant("z", "c")), (true, 2));
    assert_eq!(v(p.may_grant("a", "c")), (false, 3));
}

#[test]
fn memory_limits_with_units_and_a_fallback() {
    let t = policy("program a memory 4096\nprogram b memory 3K\nprogram c memory 5M\nprogram d memory 2G\nprogram e memory 0\n");
    let p = Policy::decode(&t).unwrap();
    let limits: Vec<_> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| p.memory_limit(n))
        .collect();
    assert_eq!(
        limits,
        [
            Some(4096),
            Some(3 << 10),
            Some(5 << 20),
            Some(2 << 30),
            Some(0),
            None
        ]
    );
    let t = policy("program any memory 1M\nprogram a memory 8M\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(
        (p.memory_limit("a"), p.memory_limit("b")),
        (Some(8 << 20), Some(1 << 20))
    );
    // The largest size that fits.
    let t = policy("program a memory 18446744073709551615\nprogram b memory 17179869183G\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(p.memory_limit("a"), Some(u64::MAX));
    assert_eq!(p.memory_limit("b"), Some(17179869183 << 30));
}

#[test]
fn a_named_program_beats_any_whatever_follows() {
    // The named subject wins though the `any` rule names the child.
    let t = policy("program any may not spawn b\nprogram a may spawn any\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_spawn("a", "b")), (true, 2));
    assert_eq!(v(p.may_spawn("c", "b")), (false, 1));
    // Then the named target; for send the kind before the receiver.
    let t = policy(
        "program a may not send capability any to b\n\
         program a may send capability device to any\n\
         program a may not send capability device to b\n\
         program any may send capability any to any\n",
    );
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_send("a", CapKind::Device, "c")), (true, 2));
    assert_eq!(v(p.may_send("a", CapKind::Device, "b")), (false, 3));
    assert_eq!(v(p.may_send("a", CapKind::Channel, "b")), (false, 1));
    assert_eq!(v(p.may_send("a", CapKind::Channel, "c")), (true, 4));
    assert_eq!(v(p.may_send("z", CapKind::System, "a")), (true, 4));
}

#[test]
fn may_not_beats_may_at_equal_specificity() {
    for text in [
        "program a may spawn b\nprogram a may not spawn b\n",
        "program a may not spawn b\nprogram a may spawn b\n",
    ] {
        let p = decoded(text);
        assert!(!p.may_spawn("a", "b").allowed(), "{text}");
    }
    let p = decoded("program any may claim device class any\nprogram any may not claim device class any\ndefault allow\n");
    assert_eq!(v(p.may_claim("x", 1, 1)), (false, 2));
    // Two that agree: the earlier is reported.
    let p = decoded("program a may spawn b\nprogram a may spawn b\n");
    assert_eq!(v(p.may_spawn("a", "b")), (true, 1));
}

#[test]
fn the_default_decides_what_no_rule_covers() {
    let p = decoded("");
    assert_eq!(p.default_verdict(), Verdict::Deny);
    assert_eq!(
        p.may_spawn("a", "b"),
        Decision {
            verdict: Verdict::Deny,
            by: By::Default
        }
    );
    let p = decoded("# open\n\ndefault allow\nprogram a may not spawn b\n");
    assert_eq!(p.default_verdict(), Verdict::Allow);
    assert_eq!(v(p.may_spawn("a", "c")), (true, 0));
    assert_eq!(v(p.may_send("a", CapKind::System, "c")), (true, 0));
    assert_eq!(v(p.may_spawn("a", "b")), (false, 4));
    let p = decoded("default deny\n");
    assert_eq!(v(p.may_grant("a", "b")), (false, 0));
}

#[test]
fn comments_spacing_and_crlf() {
    let t = policy("  program\ta  may   spawn b# trailing\r\n#program a may spawn c\r\n\t\n");
    let p = Policy::decode(&t).unwrap();
    assert_eq!(v(p.may_spawn("a", "b")), (true, 1));
    assert_eq!(v(p.may_spawn("a", "c")), (false, 0));
    // A 200-character line is fine.
    let long = std::format!("program a may spawn b{}", " ".repeat(179));
    assert_eq!(long.chars().count(), MAX_LINE);
    compile(&long).unwrap();
}

/// `line:column: message` of compiling `text`.
fn err(text: &str) -> String {
    compile(text).unwrap_err().to_string()
}

#[test]
fn every_mistake_names_its_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("\n\nprogram sh may spwan a", "3:16: expected \"spawn\", \"send\", \"claim\" or \"grant\", found \"spwan\""),
        ("programme a may spawn b", "1:1: expected \"program\" or \"default\", found \"programme\""),
        ("Program a may spawn b", "1:1: expected \"program\" or \"default\", found \"Program\""),
        ("program Shell may spawn b", "1:9: expected a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\", found \"Shell\""),
        ("program a may spawn b.c", "1:21: expected a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\", found \"b.c\""),
        ("program a can spawn b", "1:11: expected \"may\" or \"memory\", found \"can\""),
        ("program a may not not spawn b", "1:19: expected \"spawn\", \"send\", \"claim\" or \"grant\", found \"not\""),
        ("program a may send cap channel to b", "1:20: expected \"capability\", found \"cap\""),
        ("program a may send capability pipe to b", "1:31: expected \"channel\", \"device\", \"system\" or \"any\", found \"pipe\""),
        ("program a may send capability device b", "1:38: expected \"to\", found \"b\""),
        ("program a may claim device class 1:08", "1:34: expected a device class as XX:YY in hex (e.g. 01:08) or \"any\", found \"1:08\""),
        ("program a may claim device class 01:8g", "1:34: expected a device class as XX:YY in hex (e.g. 01:08) or \"any\", found \"01:8g\""),
        ("program a may claim device class 0108", "1:34: expected a device class as XX:YY in hex (e.g. 01:08) or \"any\", found \"0108\""),
        ("program a may claim device class +1:08", "1:34: expected a device class as XX:YY in hex (e.g. 01:08) or \"any\", found \"+1:08\""),
        ("program a may claim pci class 01:08", "1:21: expected \"device\", found \"pci\""),
        ("program a may grant memory to b", "1:21: expected \"pages\", found \"memory\""),
        ("program a memory 4T", "1:18: expected a size (digits, then optionally K, M or G), found \"4T\""),
        ("program a memory 4k", "1:18: expected a size (digits, then optionally K, M or G), found \"4k\""),
        ("program a memory K", "1:18: expected a size (digits, then optionally K, M or G), found \"K\""),
        ("program a memory +4", "1:18: expected a size (digits, then optionally K, M or G), found \"+4\""),
        ("program a memory 17179869184G", "1:18: size \"17179869184G\" does not fit in 64 bits"),
        ("program a memory 18446744073709551616", "1:18: size \"18446744073709551616\" does not fit in 64 bits"),
        ("program a memory 1M\n# x\nprogram a memory 2M", "3:9: a second memory limit for \"a\" (the first is on line 1)"),
        ("program any memory 1M\nprogram any memory 1M", "2:9: a second memory limit for \"any\" (the first is on line 1)"),
        ("default deny\n  default allow", "2:3: a second default (the first is on line 1)"),
        ("default maybe", "1:9: expected \"allow\" or \"deny\", found \"maybe\""),
        ("default", "1:8: expected \"allow\" or \"deny\", found end of line"),
        ("program a may", "1:14: expected \"spawn\", \"send\", \"claim\" or \"grant\", found end of line"),
        ("program", "1:8: expected a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\", found end of line"),
        ("program a may spawn b c", "1:23: expected end of line, found \"c\""),
        ("default allow please", "1:15: expected end of line, found \"please\""),
        ("program a memory 1M extra", "1:21: expected end of line, found \"extra\""),
        ("program a may spawn é", "1:21: expected a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\", found \"é\""),
    ];
    for (text, want) in cases {
        assert_eq!(&err(text), want, "{text}");
    }
    // Columns count characters, not bytes.
    assert_eq!(
        err("program é may spawn b"),
        "1:9: expected a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\", found \"é\""
    );
    assert_eq!(
        err("program a may spawné"),
        "1:15: expected \"spawn\", \"send\", \"claim\" or \"grant\", found \"spawné\""
    );
    assert_eq!(
        err("# éé\nprogram a may spawn b\néé x"),
        "3:1: expected \"program\" or \"default\", found \"éé\""
    );
    // Names: 32 characters is the most, `any` is no name but the wildcard.
    let n32 = "a".repeat(32);
    compile(&std::format!("program {n32} may spawn {n32}")).unwrap();
    assert!(err(&std::format!("program a may spawn {n32}b"))
        .starts_with("1:21: expected a program name"));
    // A line over 200 characters, even in a comment.
    let e = compile(&std::format!("default deny\n#{}", "x".repeat(200))).unwrap_err();
    assert_eq!((e.line, e.column), (2, 201));
    assert_eq!(e.to_string(), "2:201: line longer than 200 characters");
    let e = compile(&std::format!("program a may spawn b #{}", "é".repeat(178))).unwrap_err();
    assert_eq!((e.line, e.column), (1, 201));
    // 200 characters of 377 bytes are fine.
    compile(&std::format!("program a may spawn b #{}", "é".repeat(177))).unwrap();
}

#[test]
fn too_many_lines_is_an_error() {
    let text = "\n".repeat(MAX_LINES) + "default allow\n";
    let e = compile(&text).unwrap_err();
    assert_eq!((e.line, e.column), (MAX_LINES + 1, 1));
    // Exactly MAX_LINES is fine, with the rule on the last.
    let text = "\n".repeat(MAX_LINES - 1) + "default allow\n";
    let p = compile(&text).unwrap();
    assert_eq!(
        Policy::decode(&p).unwrap().default_verdict(),
        Verdict::Allow
    );
}

#[test]
fn names_are_stored_once() {
    let t = policy("program shell may spawn editor\nprogram shell may grant pages to editor\nprogram editor memory 1M\n");
    let strings = &t[HEADER_SIZE + 3 * RECORD_SIZE..];
    assert_eq!(strings, b"shelleditor");
}

// Decoding: damage re-sealed with a fresh checksum, so the field checks are what refuse it.

fn reseal(t: &mut [u8]) {
    let sum = table::checksum(t);
    t[24..32].copy_from_slice(&sum.to_le_bytes());
}

fn sample() -> Vec<u8> {
    policy("program a may spawn b\nprogram a may send capability system to any\nprogram d may claim device class 01:08\nprogram a memory 1M\ndefault allow\n")
}

/// `sample` with byte `at` set to `value`, re-sealed, decoded.
fn poke(at: usize, value: u8) -> Result<(), DecodeError> {
    let mut t = sample();
    t[at] = value;
    reseal(&mut t);
    Policy::decode(&t).map(|_| ())
}

#[test]
fn decode_refuses_bad_headers() {
    let t = sample();
    assert!(Policy::decode(&t).is_ok());
    assert_eq!(
        Policy::decode(&t[..31]).unwrap_err(),
        DecodeError::Truncated
    );
    assert_eq!(Policy::decode(&[]).unwrap_err(), DecodeError::Truncated);
    assert_eq!(poke(0, b'z').unwrap_err(), DecodeError::Magic);
    assert_eq!(poke(8, 2).unwrap_err(), DecodeError::Version(2));
    assert_eq!(poke(10, 2).unwrap_err(), DecodeError::Header);
    assert_eq!(poke(11, 1).unwrap_err(), DecodeError::Header);
    // `default allow` needs its line.
    assert_eq!(poke(12, 0).unwrap_err(), DecodeError::Header);
    // The default's line is one a rule already has.
    assert_eq!(poke(12, 1).unwrap_err(), DecodeError::Record(0));
    assert_eq!(poke(16, 5).unwrap_err(), DecodeError::Length);
    assert_eq!(poke(20, 0).unwrap_err(), DecodeError::Length);
    // One byte more or less than the header says.
    let mut longer = t.clone();
    longer.push(0);
    assert_eq!(Policy::decode(&longer).unwrap_err(), DecodeError::Length);
    let mut bad_sum = t.clone();
    bad_sum[40] ^= 1;
    assert_eq!(Policy::decode(&bad_sum).unwrap_err(), DecodeError::Checksum);
}

#[test]
fn decode_refuses_bad_records() {
    let r = |i: usize, field: usize| HEADER_SIZE + i * RECORD_SIZE + field;
    let bad = |i: u32| Err(DecodeError::Record(i));
    // Op, effect, kind out of range.
    assert_eq!(poke(r(0, 0), 0), bad(0));
    assert_eq!(poke(r(0, 0), 6), bad(0));
    assert_eq!(poke(r(0, 1), 2), bad(0));
    assert_eq!(poke(r(1, 2), 4), bad(1));
    assert_eq!(poke(r(2, 2), 1), bad(2));
    // A memory rule that says `may not`.
    assert_eq!(poke(r(3, 1), 0), bad(3));
    // Reserved and unused bytes.
    assert_eq!(poke(r(0, 13), 1), bad(0));
    assert_eq!(poke(r(0, 14), 1), bad(0));
    assert_eq!(poke(r(0, 20), 1), bad(0));
    assert_eq!(poke(r(2, 12), 1), bad(2));
    assert_eq!(poke(r(2, 16), 1), bad(2));
    // Names outside the string table, too long, with an offset beside `any`, or not names.
    assert_eq!(poke(r(0, 3), 200), bad(0));
    assert_eq!(poke(r(0, 8), 5), bad(0));
    assert_eq!(poke(r(0, 19), 0x80), bad(0));
    assert_eq!(poke(r(1, 16), 1), bad(1));
    let strings = HEADER_SIZE + 4 * RECORD_SIZE;
    for b in [b'A', b'#', b' ', 0, 0xff] {
        assert_eq!(poke(strings, b), Err(DecodeError::Strings));
    }
    // Name bytes, but `any` is no name.
    let mut t = policy("program abc may spawn d\n");
    let at = t.len() - 4;
    t[at..at + 3].copy_from_slice(b"any");
    reseal(&mut t);
    assert_eq!(Policy::decode(&t).unwrap_err(), DecodeError::Record(0));
    // Lines: 0, repeated, falling.
    assert_eq!(poke(r(0, 4), 0), bad(0));
    assert_eq!(poke(r(1, 4), 1), bad(1));
    assert_eq!(poke(r(2, 4), 1), bad(2));
    // A second memory limit for the same program.
    let mut t = policy("program a memory 1M\nprogram b memory 2M\n");
    let b_at = t.len() - 1;
    t[b_at] = b'a';
    reseal(&mut t);
    assert_eq!(Policy::decode(&t).unwrap_err(), DecodeError::Record(1));
    // A record the compiler could write (`program a may spawn a`) still decodes.
    assert_eq!(poke(r(0, 16), 0), Ok(()));
}

#[test]
fn decode_errors_display() {
    let all = [
        DecodeError::Truncated,
        DecodeError::Magic,
        DecodeError::Version(9),
        DecodeError::Length,
        DecodeError::Checksum,
        DecodeError::Header,
        DecodeError::Strings,
        DecodeError::Record(3),
        DecodeError::Memory,
    ];
    let shown: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    assert!(shown.iter().all(|s| s.starts_with("policy table: ")));
    assert!(shown[2].contains('9') && shown[7].contains('3'));
}

#[test]
fn more_records_than_lines_are_refused_and_many_limits_decode() {
    let mut t = policy("program a memory 1M\n");
    t[16..20].copy_from_slice(&(MAX_LINES as u32 + 1).to_le_bytes());
    reseal(&mut t);
    assert_eq!(Policy::decode(&t).unwrap_err(), DecodeError::Header);
    // Twenty thousand programs' limits (each checked against the others once).
    let text: String = (0..20_000)
        .map(|i| alloc::format!("program p{i} memory {}K\n", i + 1))
        .collect();
    let p = compile(&text).unwrap();
    let p = Policy::decode(&p).unwrap();
    assert_eq!(p.memory_limit("p19999"), Some(20_000 << 10));
    let mut twice = text.clone();
    twice.push_str("program p7 memory 1M\n");
    assert!(
        compile(&twice).is_err(),
        "the compiler refuses a second limit too"
    );
}
