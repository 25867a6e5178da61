//! The binary table: its layout, and one rule record written and read.
//!
//! All integers are little-endian. A table is a 32-byte header, `count` records of 24
//! bytes in source order, then the string table (`strings` bytes of program names,
//! each referred to by offset and length; no separators, shared where they repeat).
//!
//! Header:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 8    | magic `ZENPOLCY` |
//! | 8      | 2    | version, 1 |
//! | 10     | 1    | default: 0 deny, 1 allow |
//! | 11     | 1    | 0 |
//! | 12     | 4    | line of the `default` rule (0: none given, so deny) |
//! | 16     | 4    | `count`, the number of records |
//! | 20     | 4    | `strings`, the string table's length in bytes |
//! | 24     | 8    | FNV-1a 64 over bytes 0..24 and everything after the header |
//!
//! Record:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 1    | op: 1 spawn, 2 send, 3 claim, 4 grant, 5 memory |
//! | 1      | 1    | effect: 0 deny (`may not`), 1 allow (`may`); 1 for memory |
//! | 2      | 1    | send: kind, 0 channel, 1 device, 2 system, 3 any; claim: 0 the class at 14, 3 any; else 0 |
//! | 3      | 1    | subject name's length (0: `any`) |
//! | 4      | 4    | source line (at least 1, and rising from record to record) |
//! | 8      | 4    | subject name's offset in the string table (0 for `any`) |
//! | 12     | 1    | object name's length, for spawn, send and grant (0: `any`); else 0 |
//! | 13     | 1    | 0 |
//! | 14     | 2    | claim: class, subclass; else 0 |
//! | 16     | 8    | spawn, send, grant: object name's offset (0 for `any`); memory: the limit in bytes; claim: 0 |
//!
//! A table is valid only in this exact form: `Record::read` re-encodes what it read
//! and compares, so a stray bit in an unused field is refused like any other. The
//! checksum catches every change confined to one byte (each FNV-1a step is a
//! bijection of the state, so a differing byte leaves a differing hash); the field
//! checks stand behind it for the damage it cannot see.

use crate::CapKind;

/// The first eight bytes of every table.
pub const MAGIC: [u8; 8] = *b"ZENPOLCY";
/// The layout described here.
pub const VERSION: u16 = 1;
pub const HEADER_SIZE: usize = 32;
pub const RECORD_SIZE: usize = 24;
/// Where the checksum sits in the header.
pub(crate) const SUM_AT: usize = 24;
/// Longest program name, in bytes.
pub(crate) const NAME_MAX: usize = 32;

const OP_SPAWN: u8 = 1;
const OP_SEND: u8 = 2;
const OP_CLAIM: u8 = 3;
const OP_GRANT: u8 = 4;
const OP_MEMORY: u8 = 5;
const KIND_ANY: u8 = 3;

/// What a rule is about; `None` stands for `any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    Spawn(Option<&'a str>),
    Send(Option<CapKind>, Option<&'a str>),
    Claim(Option<(u8, u8)>),
    Grant(Option<&'a str>),
    Memory(u64),
}

/// One rule: the program it is about (`None`: any), may or may not, and the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub line: u32,
    pub allow: bool,
    pub subject: Option<&'a str>,
    pub action: Action<'a>,
}

/// `[a-z0-9_-]{1,32}` but not `any`: what the compiler admits and the decoder insists on.
pub(crate) fn is_name(s: &[u8]) -> bool {
    (1..=NAME_MAX).contains(&s.len()) && s != b"any" && s.iter().all(|&b| is_name_byte(b))
}

/// What a name, and so the string table, is made of.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// FNV-1a 64 over the header before the checksum and the body after it.
pub(crate) fn checksum(table: &[u8]) -> u64 {
    let (head, body) = (&table[..SUM_AT], &table[HEADER_SIZE..]);
    head.iter()
        .chain(body)
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The name at `at..at + len` of `strings`: `Some(None)` for `any` (length 0),
/// `None` if it lies outside the table or is not a name.
fn name_at(strings: &[u8], at: u64, len: u8) -> Option<Option<&str>> {
    if len == 0 {
        return Some(None);
    }
    let start = usize::try_from(at).ok()?;
    let bytes = strings.get(start..start.checked_add(usize::from(len))?)?;
    if !is_name(bytes) {
        return None;
    }
    core::str::from_utf8(bytes).ok().map(Some)
}

impl<'a> Record<'a> {
    /// The record's 24 bytes, its names at the given string-table offsets (ignored
    /// where the name is `any` or the action has no object).
    pub(crate) fn bytes(&self, subject_at: u32, object_at: u64) -> [u8; RECORD_SIZE] {
        let mut r = [0u8; RECORD_SIZE];
        // A memory limit is no permission; its effect byte is fixed at 1.
        r[1] = u8::from(self.allow || matches!(self.action, Action::Memory(_)));
        if let Some(s) = self.subject {
            // Names are at most NAME_MAX bytes, so the length fits a byte.
            r[3] = s.len() as u8;
            r[8..12].copy_from_slice(&subject_at.to_le_bytes());
        }
        r[4..8].copy_from_slice(&self.line.to_le_bytes());
        let object = |r: &mut [u8; RECORD_SIZE], o: Option<&str>| {
            if let Some(o) = o {
                r[12] = o.len() as u8;
                r[16..24].copy_from_slice(&object_at.to_le_bytes());
            }
        };
        match self.action {
            Action::Spawn(o) => {
                r[0] = OP_SPAWN;
                object(&mut r, o);
            }
            Action::Send(kind, o) => {
                r[0] = OP_SEND;
                r[2] = kind.map_or(KIND_ANY, |k| k as u8);
                object(&mut r, o);
            }
            Action::Claim(class) => {
                r[0] = OP_CLAIM;
                match class {
                    Some((c, s)) => (r[14], r[15]) = (c, s),
                    None => r[2] = KIND_ANY,
                }
            }
            Action::Grant(o) => {
                r[0] = OP_GRANT;
                object(&mut r, o);
            }
            Action::Memory(limit) => {
                r[0] = OP_MEMORY;
                r[16..24].copy_from_slice(&limit.to_le_bytes());
            }
        }
        r
    }

    /// Reads a record (`r` is RECORD_SIZE bytes) whose names lie in `strings`; `None`
    /// unless every field holds a value [`Record::bytes`] could have written.
    pub(crate) fn read(r: &[u8], strings: &'a [u8]) -> Option<Self> {
        let subject_at = u32_at(r, 8);
        let arg = u64_at(r, 16);
        let object = || name_at(strings, arg, r[12]);
        let action = match r[0] {
            OP_SPAWN => Action::Spawn(object()?),
            OP_SEND => {
                let kind = match r[2] {
                    KIND_ANY => None,
                    k => Some(CapKind::from_u8(k)?),
                };
                Action::Send(kind, object()?)
            }
            OP_CLAIM => Action::Claim((r[2] != KIND_ANY).then_some((r[14], r[15]))),
            OP_GRANT => Action::Grant(object()?),
            OP_MEMORY => Action::Memory(arg),
            _ => return None,
        };
        let rec = Record {
            line: u32_at(r, 4),
            allow: r[1] == 1,
            subject: name_at(strings, u64::from(subject_at), r[3])?,
            action,
        };
        // Whatever the fields above did not look at (reserved bytes, an effect of 7,
        // an offset beside a length of 0, a memory rule saying `may not`) shows up as
        // a difference here.
        let canonical = rec.line != 0 && rec.bytes(subject_at, arg)[..] == r[..];
        canonical.then_some(rec)
    }
}
