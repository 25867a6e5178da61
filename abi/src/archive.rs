//! The boot archive: the user programs (init, the shell, tests) that ride inside
//! `zenos.bin`, so the first processes can start before any file system is mounted.
//!
//! ```text
//! header  8 bytes magic "ZENARCH1", u32 entry count, u32 reserved (0)
//! entry   32 bytes each: name (24 bytes, UTF-8, NUL-padded), u32 offset, u32 length
//!         (offset from the start of the archive)
//! data    the programs' bytes
//! ```
//!
//! All integers little-endian. [`Archive::parse`] checks every entry against the
//! archive's length, so a damaged archive is refused as a whole, not half-used.
//!
//! An entry whose name starts with `.` is data, not a program: [`Archive::iter`] and
//! [`Archive::find`] never see it, so nothing can run it or spawn under its name;
//! [`Archive::data`] reads it. The one there is [`POLICY`], the compiled security
//! policy (zen-policy's table), inside the signed image like the programs.

/// The first eight bytes of an archive.
pub const MAGIC: [u8; 8] = *b"ZENARCH1";
pub const HEADER_SIZE: usize = 16;
pub const ENTRY_SIZE: usize = 32;
/// Longest program name.
pub const NAME_MAX: usize = 24;
/// Most programs in one archive.
pub const MAX_ENTRIES: usize = 64;
/// The data entry holding the compiled security policy.
pub const POLICY: &str = ".policy";

/// Why an archive was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    BadMagic,
    Truncated,
    TooManyEntries,
    BadName,
    EntryOutOfBounds,
}

impl ArchiveError {
    pub const fn as_str(self) -> &'static str {
        match self {
            ArchiveError::BadMagic => "bad magic",
            ArchiveError::Truncated => "truncated",
            ArchiveError::TooManyEntries => "too many entries",
            ArchiveError::BadName => "a name is empty or not UTF-8",
            ArchiveError::EntryOutOfBounds => "an entry lies outside the archive",
        }
    }
}

/// A checked archive.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Archive<'a> {
    /// Checks the header and every entry.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ArchiveError::Truncated);
        }
        if bytes[..8] != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let count = u32_at(bytes, 8) as usize;
        if count > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries);
        }
        if bytes.len() < HEADER_SIZE + count * ENTRY_SIZE {
            return Err(ArchiveError::Truncated);
        }
        let a = Archive { bytes, count };
        for i in 0..count {
            a.entry(i)?;
        }
        Ok(a)
    }

    fn entry(&self, i: usize) -> Result<(&'a str, &'a [u8]), ArchiveError> {
        let e = &self.bytes[HEADER_SIZE + i * ENTRY_SIZE..][..ENTRY_SIZE];
        let name_len = e[..NAME_MAX]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(NAME_MAX);
        let name = core::str::from_utf8(&e[..name_len]).map_err(|_| ArchiveError::BadName)?;
        if name.is_empty() {
            return Err(ArchiveError::BadName);
        }
        let (off, len) = (u32_at(e, 24) as usize, u32_at(e, 28) as usize);
        let data = off
            .checked_add(len)
            .and_then(|end| self.bytes.get(off..end))
            .ok_or(ArchiveError::EntryOutOfBounds)?;
        Ok((name, data))
    }

    /// Number of programs (data entries not counted).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn entries(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        // Every entry was checked by `parse`.
        (0..self.count).filter_map(|i| self.entry(i).ok())
    }

    /// The programs, in archive order, as (name, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.entries().filter(|(n, _)| !n.starts_with('.'))
    }

    /// The data entry called `name` (which starts with `.`).
    pub fn data(&self, name: &str) -> Option<&'a [u8]> {
        if !name.starts_with('.') {
            return None;
        }
        self.entries().find(|(n, _)| *n == name).map(|(_, d)| d)
    }

    /// The program called `name`.
    pub fn find(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, d)| d)
    }
}

/// Writes the header and entry table for programs of the given names and sizes into
/// `out` (which the caller extends with the programs' bytes, in order). Shared by
/// xtask and the tests so the writer and the reader cannot drift apart.
pub fn write_header(
    names_and_lens: &[(&str, usize)],
    mut push: impl FnMut(&[u8]),
) -> Result<(), ArchiveError> {
    if names_and_lens.len() > MAX_ENTRIES {
        return Err(ArchiveError::TooManyEntries);
    }
    push(&MAGIC);
    push(&(names_and_lens.len() as u32).to_le_bytes());
    push(&0u32.to_le_bytes());
    let mut off = HEADER_SIZE + names_and_lens.len() * ENTRY_SIZE;
    for (name, len) in names_and_lens {
        if name.is_empty() || name.len() > NAME_MAX {
            return Err(ArchiveError::BadName);
        }
        let mut n = [0u8; NAME_MAX];
        n[..name.len()].copy_from_slice(name.as_bytes());
        push(&n);
        let (o, l) = (u32::try_from(off), u32::try_from(*len));
        let (Ok(o), Ok(l)) = (o, l) else {
            return Err(ArchiveError::EntryOutOfBounds);
        };
        push(&o.to_le_bytes());
        push(&l.to_le_bytes());
        off += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn build(progs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let lens: Vec<(&str, usize)> = progs.iter().map(|(n, d)| (*n, d.len())).collect();
        write_header(&lens, |b| out.extend_from_slice(b)).unwrap();
        for (_, d) in progs {
            out.extend_from_slice(d);
        }
        out
    }

    #[test]
    fn round_trip() {
        let bytes = build(&[("init", b"\x7fELF-init"), ("shell", b"sh"), ("empty", b"")]);
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.find("init"), Some(&b"\x7fELF-init"[..]));
        assert_eq!(a.find("shell"), Some(&b"sh"[..]));
        assert_eq!(a.find("empty"), Some(&b""[..]));
        assert_eq!(a.find("nope"), None);
        let names: Vec<&str> = a.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["init", "shell", "empty"]);
    }

    #[test]
    fn data_entries_are_no_programs() {
        let bytes = build(&[("init", b"\x7fELF"), (POLICY, b"table"), (".x", b"")]);
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.find(POLICY), None, "a data entry found as a program");
        assert_eq!(a.data(POLICY), Some(&b"table"[..]));
        assert_eq!(a.data("init"), None, "a program read as data");
        let names: Vec<&str> = a.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["init"]);
        let only_data = build(&[(POLICY, b"t")]);
        assert!(Archive::parse(&only_data).unwrap().is_empty());
    }

    #[test]
    fn damage_is_refused() {
        let good = build(&[("init", b"abcdef")]);
        assert_eq!(
            Archive::parse(&good[..10]).unwrap_err(),
            ArchiveError::Truncated
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::BadMagic);
        assert_eq!(
            Archive::parse(&good[..good.len() - 1]).unwrap_err(),
            ArchiveError::EntryOutOfBounds
        );
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            ArchiveError::TooManyEntries
        );
        let mut bad = good.clone();
        bad[HEADER_SIZE + 24..HEADER_SIZE + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            ArchiveError::EntryOutOfBounds
        );
        let mut bad = good.clone();
        bad[HEADER_SIZE] = 0;
        assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::BadName);
        assert_eq!(
            write_header(&[("a-name-much-longer-than-24-bytes", 1)], |_| {}),
            Err(ArchiveError::BadName)
        );
    }

    #[test]
    fn every_truncation_is_refused_never_panics() {
        let good = build(&[("init", b"abcdef"), ("sh", b"xyz")]);
        for n in 0..good.len() {
            assert!(
                Archive::parse(&good[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
    }
}
