//! [`Policy`]: the kernel's view of a table, checked whole by [`Policy::decode`] and
//! then asked questions.
//!
//! Decoding believes nothing: the magic, the version, the exact length, the checksum,
//! every header field, the string table's bytes, and every record (its op, effect and kind, its names inside the
//! string table and well formed, no stray bits, lines rising, one memory limit per
//! program) are checked before a `Policy` exists. The rules are kept decoded (one
//! allocation, at boot): reading a record again checks it again, which made every
//! query cost about 500 instructions a rule (15,000 for a page grant under the test
//! image's policy), and since every record passed, queries cannot fail.
//!
//! A query scans the rules (a policy has tens of rules; a scan is cheaper than the
//! index it would need).

use crate::table::{self, Action, Record, HEADER_SIZE, MAGIC, RECORD_SIZE, SUM_AT, VERSION};
use crate::{By, CapKind, Decision, Verdict};

/// Why a table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header.
    Truncated,
    /// Not `ZENPOLCY`.
    Magic,
    /// A version this decoder does not know.
    Version(u16),
    /// The length is not what the header's counts say.
    Length,
    /// The checksum does not match.
    Checksum,
    /// A header field holds a value the compiler never writes.
    Header,
    /// The string table holds a byte no name could.
    Strings,
    /// This record (0-based) is malformed, out of order, or a second memory limit.
    Record(u32),
    /// No memory to hold the decoded rules.
    Memory,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "policy table: shorter than its header"),
            Self::Magic => write!(f, "policy table: bad magic"),
            Self::Version(v) => write!(f, "policy table: unknown version {v}"),
            Self::Length => write!(f, "policy table: length does not match the header"),
            Self::Checksum => write!(f, "policy table: checksum mismatch"),
            Self::Header => write!(f, "policy table: bad header field"),
            Self::Strings => write!(f, "policy table: bad byte in the string table"),
            Self::Record(i) => write!(f, "policy table: bad record {i}"),
            Self::Memory => write!(f, "policy table: no memory for its rules"),
        }
    }
}

/// A decoded policy: its rules, naming into the table's string bytes.
#[derive(Clone, Debug)]
pub struct Policy<'a> {
    default: Verdict,
    rules: alloc::vec::Vec<Record<'a>>,
}

/// Does a rule's target (`None`: any) cover the one asked about, and if so, how
/// specifically: `weight` for a name, 0 for `any`.
fn cover(rule: Option<&str>, asked: &str, weight: u8) -> Option<u8> {
    match rule {
        None => Some(0),
        Some(name) if name == asked => Some(weight),
        Some(_) => None,
    }
}

impl<'a> Policy<'a> {
    /// Checks all of `bytes` against the [`crate::table`] layout (every field, the
    /// checksum, the names); on success no query can fail.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let head = bytes.get(..HEADER_SIZE).ok_or(DecodeError::Truncated)?;
        if head[..8] != MAGIC {
            return Err(DecodeError::Magic);
        }
        let version = u16::from_le_bytes([head[8], head[9]]);
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let count = table::u32_at(head, 16);
        // No more rules than a policy may have lines: decoding and every query are
        // linear in the count.
        if count as usize > crate::MAX_LINES {
            return Err(DecodeError::Header);
        }
        let strings = table::u32_at(head, 20);
        // In u64 nothing here can overflow: 2^32 * 24 + 2^32 + 32 < 2^64.
        let want = HEADER_SIZE as u64 + u64::from(count) * RECORD_SIZE as u64 + u64::from(strings);
        if want != bytes.len() as u64 {
            return Err(DecodeError::Length);
        }
        if table::checksum(bytes) != table::u64_at(head, SUM_AT) {
            return Err(DecodeError::Checksum);
        }
        let default_line = table::u32_at(head, 12);
        let default = match head[10] {
            0 => Verdict::Deny,
            // Allowing by default takes a `default allow` line.
            1 if default_line != 0 => Verdict::Allow,
            _ => return Err(DecodeError::Header),
        };
        if head[11] != 0 {
            return Err(DecodeError::Header);
        }
        // The length matched, so the records end inside `bytes`.
        let (records, strings) = bytes[HEADER_SIZE..].split_at(count as usize * RECORD_SIZE);
        // Nothing but names, even where no record points.
        if !strings.iter().all(|&b| table::is_name_byte(b)) {
            return Err(DecodeError::Strings);
        }
        let mut last = 0;
        // The rules, and (subject, index) of each memory rule, sorted below to find a
        // second limit for one program in O(n log n); every allocation fallible (the
        // kernel decodes at boot, on a heap that may be small).
        let mut rules = alloc::vec::Vec::new();
        let mut limited = alloc::vec::Vec::new();
        rules
            .try_reserve_exact(count as usize)
            .map_err(|_| DecodeError::Memory)?;
        for (i, r) in records.chunks_exact(RECORD_SIZE).enumerate() {
            let bad = DecodeError::Record(i as u32);
            let rec = Record::read(r, strings).ok_or(bad)?;
            // One rule a line, in order: a line twice (or the default's line) is damage.
            if rec.line <= last || rec.line == default_line {
                return Err(bad);
            }
            last = rec.line;
            if matches!(rec.action, Action::Memory(_)) {
                limited.try_reserve(1).map_err(|_| DecodeError::Memory)?;
                limited.push((rec.subject, i as u32));
            }
            rules.push(rec);
        }
        limited.sort_unstable();
        if let Some(w) = limited.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DecodeError::Record(w[1].1));
        }
        Ok(Policy { default, rules })
    }

    /// Every program the rules name, with the line of each naming (subjects and
    /// targets; `any` is no name). The build checks them against the boot archive: a
    /// name no signed program has would be anyone's to take.
    pub fn names(&self) -> impl Iterator<Item = (u32, &'a str)> + '_ {
        self.rules().flat_map(|r| {
            let target = match r.action {
                Action::Spawn(t) | Action::Send(_, t) | Action::Grant(t) => t,
                Action::Claim(_) | Action::Memory(_) => None,
            };
            [r.subject, target]
                .into_iter()
                .flatten()
                .map(move |n| (r.line, n))
        })
    }

    /// What applies when no rule does.
    pub fn default_verdict(&self) -> Verdict {
        self.default
    }

    fn rules(&self) -> impl Iterator<Item = Record<'a>> + '_ {
        self.rules.iter().copied()
    }

    /// The rule that decides for `subject`, among those `score` says cover the request
    /// (with the specificity of their other parts); see the crate docs for the order.
    fn decide(&self, subject: &str, score: impl Fn(&Action) -> Option<u8>) -> Decision {
        let mut best: Option<(u8, Record)> = None;
        for rule in self.rules() {
            let (Some(s), Some(rest)) = (cover(rule.subject, subject, 4), score(&rule.action))
            else {
                continue;
            };
            // Specificity first, then `may not` over `may`; a tie keeps the earlier line.
            let key = ((s | rest) << 1) | u8::from(!rule.allow);
            if best.is_none_or(|(k, _)| key > k) {
                best = Some((key, rule));
            }
        }
        match best {
            Some((_, rule)) => Decision {
                verdict: if rule.allow {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                },
                by: By::Rule(rule.line),
            },
            None => Decision {
                verdict: self.default,
                by: By::Default,
            },
        }
    }

    /// May `parent` start `child`?
    pub fn may_spawn(&self, parent: &str, child: &str) -> Decision {
        self.decide(parent, |a| match *a {
            Action::Spawn(c) => cover(c, child, 2),
            _ => None,
        })
    }

    /// May `from` pass a capability of `kind` to `to`?
    pub fn may_send(&self, from: &str, kind: CapKind, to: &str) -> Decision {
        self.decide(from, |a| match *a {
            Action::Send(k, t) => {
                let k = match k {
                    None => 0,
                    Some(k) if k == kind => 2,
                    Some(_) => return None,
                };
                Some(k | cover(t, to, 1)?)
            }
            _ => None,
        })
    }

    /// May `program` claim a PCI function of this class and subclass?
    pub fn may_claim(&self, program: &str, class: u8, subclass: u8) -> Decision {
        self.decide(program, |a| match *a {
            Action::Claim(None) => Some(0),
            Action::Claim(Some(c)) if c == (class, subclass) => Some(2),
            _ => None,
        })
    }

    /// May `from` grant pages of its memory to `to`?
    pub fn may_grant(&self, from: &str, to: &str) -> Decision {
        self.decide(from, |a| match *a {
            Action::Grant(t) => cover(t, to, 2),
            _ => None,
        })
    }

    /// The kernel-memory limit for `program` in bytes: its own `memory` rule, else
    /// the one for `any`, else none (no limit set by the policy).
    pub fn memory_limit(&self, program: &str) -> Option<u64> {
        let mut any = None;
        for rule in self.rules() {
            if let Action::Memory(limit) = rule.action {
                match rule.subject {
                    Some(s) if s == program => return Some(limit),
                    Some(_) => {}
                    None => any = Some(limit),
                }
            }
        }
        any
    }
}
