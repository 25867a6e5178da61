//! The compiler: policy text to table bytes, run by the build tool on the host.
//!
//! One pass over the lines; each line is split into words with their columns and
//! parsed by hand (the grammar is a few fixed phrases). The first mistake stops
//! compilation, reported at the word that is wrong, or just past the last word when
//! one is missing.

use crate::table::{self, Action, Record, HEADER_SIZE, SUM_AT};
use crate::CapKind;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest line, in characters.
pub const MAX_LINE: usize = 200;
/// Most lines in a policy: far more than any needs, and it keeps every line number,
/// count and string offset well inside the table's 32-bit fields.
pub const MAX_LINES: usize = 1 << 16;

/// A mistake in the policy text: 1-based line and column (in characters) of the word
/// at fault. `Display` gives `LINE:COLUMN: MESSAGE`; prefix the file name to get
/// `policy.zen:3:15: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl core::fmt::Display for CompileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn error(line: usize, column: usize, message: String) -> CompileError {
    CompileError {
        line,
        column,
        message,
    }
}

const WANT_NAME: &str = "a program name (1 to 32 of a-z, 0-9, _ and -) or \"any\"";

#[derive(Clone, Copy)]
struct Word<'t> {
    text: &'t str,
    column: usize,
}

/// The words of one line, taken in order.
struct Words<'t> {
    line: usize,
    words: Vec<Word<'t>>,
    next: usize,
}

/// `"a", "b" or "c"`.
fn one_of(options: &[&str]) -> String {
    let mut s = String::new();
    for (i, o) in options.iter().enumerate() {
        if i > 0 {
            s += if i + 1 == options.len() { " or " } else { ", " };
        }
        s += &format!("\"{o}\"");
    }
    s
}

impl<'t> Words<'t> {
    fn split(raw: &'t str, line: usize) -> Self {
        // Names never hold a '#', so it always starts a comment.
        let code = raw.find('#').map_or(raw, |i| &raw[..i]);
        let mut words = Vec::new();
        let (mut rest, mut column) = (code, 1);
        while let Some(gap) = rest.find(|c: char| !c.is_ascii_whitespace()) {
            // The gap is ASCII whitespace, so its bytes are its characters.
            column += gap;
            rest = &rest[gap..];
            let len = rest.find(|c: char| c.is_ascii_whitespace());
            let (text, after) = rest.split_at(len.unwrap_or(rest.len()));
            words.push(Word { text, column });
            column += text.chars().count();
            rest = after;
        }
        Words {
            line,
            words,
            next: 0,
        }
    }

    fn error(&self, column: usize, message: String) -> CompileError {
        error(self.line, column, message)
    }

    /// An error at `w` saying what was wanted and what was there.
    fn wrong(&self, w: Word, expected: &str) -> CompileError {
        self.error(w.column, format!("expected {expected}, found {:?}", w.text))
    }

    /// The next word, or an error just past the last one saying what was wanted.
    fn word(&mut self, expected: &str) -> Result<Word<'t>, CompileError> {
        let Some(&w) = self.words.get(self.next) else {
            let end = self
                .words
                .last()
                .map_or(1, |w| w.column + w.text.chars().count());
            return Err(self.error(end, format!("expected {expected}, found end of line")));
        };
        self.next += 1;
        Ok(w)
    }

    /// The next word, which must be one of `options`.
    fn keyword(&mut self, options: &[&'static str]) -> Result<&'static str, CompileError> {
        let w = self.word(&one_of(options))?;
        let found = options.iter().find(|&&o| o == w.text);
        found
            .copied()
            .ok_or_else(|| self.wrong(w, &one_of(options)))
    }

    /// Takes the next word if it is `word`.
    fn eat(&mut self, word: &str) -> bool {
        let hit = self.words.get(self.next).is_some_and(|w| w.text == word);
        self.next += usize::from(hit);
        hit
    }

    fn end(&mut self) -> Result<(), CompileError> {
        match self.words.get(self.next) {
            Some(&w) => Err(self.wrong(w, "end of line")),
            None => Ok(()),
        }
    }

    /// `w` as a program name, or `any` (`None`).
    fn name(&self, w: Word<'t>) -> Result<Option<&'t str>, CompileError> {
        match w.text {
            "any" => Ok(None),
            n if table::is_name(n.as_bytes()) => Ok(Some(n)),
            _ => Err(self.wrong(w, WANT_NAME)),
        }
    }

    fn program(&mut self) -> Result<Option<&'t str>, CompileError> {
        let w = self.word(WANT_NAME)?;
        self.name(w)
    }

    fn kind(&mut self) -> Result<Option<CapKind>, CompileError> {
        Ok(
            match self.keyword(&["channel", "device", "system", "any"])? {
                "channel" => Some(CapKind::Channel),
                "device" => Some(CapKind::Device),
                "system" => Some(CapKind::System),
                _ => None,
            },
        )
    }

    /// `XX:YY` in hex (two digits each), or `any` (`None`).
    fn class(&mut self) -> Result<Option<(u8, u8)>, CompileError> {
        const WANT: &str = "a device class as XX:YY in hex (e.g. 01:08) or \"any\"";
        let w = self.word(WANT)?;
        if w.text == "any" {
            return Ok(None);
        }
        let hex = |s: &str| {
            let ok = s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| u8::from_str_radix(s, 16).ok()).flatten()
        };
        let parsed = w
            .text
            .split_once(':')
            .and_then(|(c, s)| Some((hex(c)?, hex(s)?)));
        parsed.map(Some).ok_or_else(|| self.wrong(w, WANT))
    }

    /// Digits with an optional K, M or G (binary units).
    fn size(&mut self) -> Result<u64, CompileError> {
        const WANT: &str = "a size (digits, then optionally K, M or G)";
        let w = self.word(WANT)?;
        let units = [("K", 1u64 << 10), ("M", 1 << 20), ("G", 1 << 30)];
        let (digits, unit) = units
            .iter()
            .find_map(|&(u, n)| w.text.strip_suffix(u).map(|d| (d, n)))
            .unwrap_or((w.text, 1));
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.wrong(w, WANT));
        }
        // Only digits, so parse fails on overflow alone.
        let n = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit));
        n.ok_or_else(|| {
            self.error(
                w.column,
                format!("size {:?} does not fit in 64 bits", w.text),
            )
        })
    }

    /// The rest of a `program NAME ...` line, after `program`; and the name's word.
    fn rule(&mut self, line: u32) -> Result<(Record<'t>, Word<'t>), CompileError> {
        let name = self.word(WANT_NAME)?;
        let subject = self.name(name)?;
        let (allow, action) = if self.keyword(&["may", "memory"])? == "memory" {
            (true, Action::Memory(self.size()?))
        } else {
            let allow = !self.eat("not");
            let action = match self.keyword(&["spawn", "send", "claim", "grant"])? {
                "spawn" => Action::Spawn(self.program()?),
                "send" => {
                    self.keyword(&["capability"])?;
                    let kind = self.kind()?;
                    self.keyword(&["to"])?;
                    Action::Send(kind, self.program()?)
                }
                "claim" => {
                    self.keyword(&["device"])?;
                    self.keyword(&["class"])?;
                    Action::Claim(self.class()?)
                }
                _ => {
                    self.keyword(&["pages"])?;
                    self.keyword(&["to"])?;
                    Action::Grant(self.program()?)
                }
            };
            (allow, action)
        };
        self.end()?;
        let rule = Record {
            line,
            allow,
            subject,
            action,
        };
        Ok((rule, name))
    }
}

/// Compiles policy text (the language is in the crate docs) into a table for
/// [`crate::Policy::decode`].
pub fn compile(text: &str) -> Result<Vec<u8>, CompileError> {
    let mut rules = Vec::new();
    let mut default = None;
    // The line of each program's memory rule, to refuse a second.
    let mut memory = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        if line > MAX_LINES {
            return Err(error(
                line,
                1,
                format!("a policy has at most {MAX_LINES} lines"),
            ));
        }
        if raw.chars().count() > MAX_LINE {
            let message = format!("line longer than {MAX_LINE} characters");
            return Err(error(line, MAX_LINE + 1, message));
        }
        let mut words = Words::split(raw, line);
        let Some(first) = words.words.first().copied() else {
            continue;
        };
        // MAX_LINES keeps the line number inside 32 bits.
        let line32 = line as u32;
        match words.keyword(&["program", "default"])? {
            "default" => {
                let allow = words.keyword(&["allow", "deny"])? == "allow";
                words.end()?;
                if let Some((_, first_line)) = default {
                    let message = format!("a second default (the first is on line {first_line})");
                    return Err(words.error(first.column, message));
                }
                default = Some((allow, line32));
            }
            _ => {
                let (rule, name) = words.rule(line32)?;
                if let Action::Memory(_) = rule.action {
                    if let Some(earlier) = memory.insert(rule.subject, line) {
                        let message = format!(
                            "a second memory limit for {:?} (the first is on line {earlier})",
                            name.text
                        );
                        return Err(words.error(name.column, message));
                    }
                }
                rules.push(rule);
            }
        }
    }
    Ok(encode(default.unwrap_or((false, 0)), &rules))
}

/// Lays out the table (see [`crate::table`]): header, records, names, checksum.
fn encode<'t>((allow, line): (bool, u32), rules: &[Record<'t>]) -> Vec<u8> {
    // Each name once, at its offset in the string table.
    let mut names: BTreeMap<&'t str, u32> = BTreeMap::new();
    let mut strings = Vec::new();
    let mut at = |name: Option<&'t str>| -> u32 {
        let Some(name) = name else { return 0 };
        // At most MAX_LINES rules of two names of NAME_MAX bytes: offsets fit in 32 bits.
        *names.entry(name).or_insert_with(|| {
            let offset = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            offset
        })
    };
    let mut records = Vec::new();
    for r in rules {
        let object = match r.action {
            Action::Spawn(o) | Action::Send(_, o) | Action::Grant(o) => o,
            Action::Claim(_) | Action::Memory(_) => None,
        };
        let (subject_at, object_at) = (at(r.subject), at(object));
        records.extend_from_slice(&r.bytes(subject_at, u64::from(object_at)));
    }
    let mut t = Vec::with_capacity(HEADER_SIZE + records.len() + strings.len());
    t.extend_from_slice(&table::MAGIC);
    t.extend_from_slice(&table::VERSION.to_le_bytes());
    t.extend_from_slice(&[u8::from(allow), 0]);
    t.extend_from_slice(&line.to_le_bytes());
    t.extend_from_slice(&(rules.len() as u32).to_le_bytes());
    t.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&records);
    t.extend_from_slice(&strings);
    let sum = table::checksum(&t);
    t[SUM_AT..HEADER_SIZE].copy_from_slice(&sum.to_le_bytes());
    t
}
