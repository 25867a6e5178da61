//! zen-gpt: the GUID Partition Table (UEFI 2.10, section 5.3), one definition for the
//! image writer (`tools/zenimg`, run by xtask) and the OS (nvmed, which serves each
//! partition as its own extent of blocks).
//!
//! Encoding is plain; decoding believes nothing: a header must have its signature,
//! revision, size and CRC, name its own LBA, and put its entry array and usable range
//! inside the disk; the array must match its CRC; an entry must lie inside the usable
//! range, end after it starts, and overlap no other. A disk that fails any of it is
//! refused with the reason ([`Error`]), never half-used.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

pub const SECTOR: u64 = 512;
/// Entries the writer makes: 128 of 128 bytes (32 sectors, the minimum the spec allows).
pub const ENTRIES: usize = 128;
pub const ENTRY_SIZE: usize = 128;
pub const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
pub const HEADER_SIZE: usize = 92;
/// Most entries a reader accepts (a header may claim up to 2^32).
pub const MAX_ENTRIES: u32 = 1024;

/// A GUID in its on-disk byte order (the first three fields little-endian).
pub type Guid = [u8; 16];

/// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into on-disk byte order; panics (at
/// compile time, for constants) on a malformed string.
pub const fn guid(s: &str) -> Guid {
    let s = s.as_bytes();
    assert!(s.len() == 36 && s[8] == b'-' && s[13] == b'-' && s[18] == b'-' && s[23] == b'-');
    // Text order of the bytes, then the mixed-endian swap of the first three fields.
    let mut text = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < 36 {
        if s[i] == b'-' {
            i += 1;
            continue;
        }
        text[n] = hex(s[i]) << 4 | hex(s[i + 1]);
        n += 1;
        i += 2;
    }
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut g = [0u8; 16];
    let mut k = 0;
    while k < 16 {
        g[k] = text[order[k]];
        k += 1;
    }
    g
}

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

/// The partition types Zen OS knows by name.
pub const BIOS_BOOT_TYPE: Guid = guid("21686148-6449-6E6F-744E-656564454649");
pub const ESP_TYPE: Guid = guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
/// The TagFS root (Zen OS's own type).
pub const ZEN_ROOT_TYPE: Guid = guid("AB36466E-73B2-4B9D-99B6-E8F5A27FA68F");

/// A short name for a partition type.
pub fn type_name(t: &Guid) -> &'static str {
    match *t {
        BIOS_BOOT_TYPE => "BIOS boot",
        ESP_TYPE => "EFI system",
        ZEN_ROOT_TYPE => "TagFS root",
        _ => "unknown type",
    }
}

/// One partition: an inclusive LBA range, as GPT stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    /// UTF-16 code units, 0-padded.
    pub name: [u16; 36],
}

impl Entry {
    /// Blocks in the partition.
    pub fn blocks(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut e = [0u8; ENTRY_SIZE];
        e[0..16].copy_from_slice(&self.type_guid);
        e[16..32].copy_from_slice(&self.unique_guid);
        e[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        e[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        for (i, c) in self.name.iter().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        e
    }
    /// `None` for an unused entry (type all zero).
    pub fn decode(e: &[u8]) -> Option<Entry> {
        if e.len() < ENTRY_SIZE || e[..16] == [0; 16] {
            return None;
        }
        let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
        let mut name = [0u16; 36];
        for (i, c) in name.iter_mut().enumerate() {
            *c = u16::from_le_bytes([e[56 + 2 * i], e[57 + 2 * i]]);
        }
        Some(Entry {
            type_guid: e[0..16].try_into().ok()?,
            unique_guid: e[16..32].try_into().ok()?,
            first_lba: u64_at(32),
            last_lba: u64_at(40),
            attributes: u64_at(48),
            name,
        })
    }
    /// The name, as UTF-16 code units up to the first 0.
    pub fn name_units(&self) -> impl Iterator<Item = u16> + '_ {
        self.name.iter().copied().take_while(|&c| c != 0)
    }
}

/// Encodes a name (at most 36 UTF-16 code units kept).
pub fn name(s: &str) -> [u16; 36] {
    let mut n = [0u16; 36];
    for (d, c) in n.iter_mut().zip(s.encode_utf16()) {
        *d = c;
    }
    n
}

/// What a GPT header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Guid,
    pub entries_lba: u64,
    pub entries: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// Why a disk's GPT was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    NoSignature,
    BadHeaderCrc,
    /// Revision, header size or entry size not what the spec allows.
    BadHeader,
    /// The header is not where it says, or its ranges leave the disk.
    BadPlacement,
    BadEntriesCrc,
    /// An entry outside the usable range, ending before it starts, or overlapping
    /// another.
    BadEntry,
}

impl Error {
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::NoSignature => "no GPT signature",
            Error::BadHeaderCrc => "GPT header CRC does not match",
            Error::BadHeader => "GPT header revision or sizes not valid",
            Error::BadPlacement => "GPT header or entries outside the disk",
            Error::BadEntriesCrc => "GPT entry array CRC does not match",
            Error::BadEntry => "GPT entry outside the usable range or overlapping another",
        }
    }
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        h[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid);
        h[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&self.entries.to_le_bytes());
        h[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        h[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Parses and checks the header in `sector` (the block at `lba` of a disk of
    /// `blocks` blocks of `block_size` bytes).
    pub fn parse(sector: &[u8], lba: u64, blocks: u64, block_size: u64) -> Result<Header, Error> {
        if sector.len() < HEADER_SIZE || &sector[..8] != b"EFI PART" {
            return Err(Error::NoSignature);
        }
        let u64_at = |o: usize| u64::from_le_bytes(sector[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(sector[o..o + 4].try_into().unwrap_or([0; 4]));
        let size = u32_at(12) as usize;
        if u32_at(8) != 0x0001_0000 || size < HEADER_SIZE || size > sector.len() {
            return Err(Error::BadHeader);
        }
        let mut copy = [0u8; 512];
        let n = size.min(512);
        copy[..n].copy_from_slice(&sector[..n]);
        copy[16..20].fill(0);
        if size > 512 || crc32fast::hash(&copy[..size]) != u32_at(16) {
            return Err(Error::BadHeaderCrc);
        }
        let h = Header {
            my_lba: u64_at(24),
            alternate_lba: u64_at(32),
            first_usable: u64_at(40),
            last_usable: u64_at(48),
            disk_guid: sector[56..72].try_into().map_err(|_| Error::BadHeader)?,
            entries_lba: u64_at(72),
            entries: u32_at(80),
            entry_size: u32_at(84),
            entries_crc: u32_at(88),
        };
        if h.entry_size < ENTRY_SIZE as u32
            || !h.entry_size.is_power_of_two()
            || h.entries == 0
            || h.entries > MAX_ENTRIES
        {
            return Err(Error::BadHeader);
        }
        let array_blocks = (h.array_bytes()).div_ceil(block_size.max(1));
        let inside = |lba: u64| lba < blocks;
        let array_end = h.entries_lba.checked_add(array_blocks);
        if h.my_lba != lba
            || !inside(h.alternate_lba)
            || h.first_usable > h.last_usable
            || !inside(h.last_usable)
            || h.first_usable <= h.my_lba.min(h.alternate_lba)
            || array_end.is_none_or(|e| e > blocks)
            // The array may not reach into the usable range.
            || !(array_end.is_some_and(|e| e <= h.first_usable) || h.entries_lba > h.last_usable)
        {
            return Err(Error::BadPlacement);
        }
        Ok(h)
    }

    /// Bytes of the entry array.
    pub fn array_bytes(&self) -> u64 {
        self.entries as u64 * self.entry_size as u64
    }

    /// The used entries of `array` (the entry array this header names), checked.
    pub fn entries(&self, array: &[u8]) -> Result<Vec<Entry>, Error> {
        let len = self.array_bytes() as usize;
        let array = array.get(..len).ok_or(Error::BadPlacement)?;
        if crc32fast::hash(array) != self.entries_crc {
            return Err(Error::BadEntriesCrc);
        }
        let mut out: Vec<Entry> = Vec::new();
        for e in array
            .chunks_exact(self.entry_size as usize)
            .filter_map(Entry::decode)
        {
            let ok = e.first_lba >= self.first_usable
                && e.last_lba <= self.last_usable
                && e.first_lba <= e.last_lba
                && !out
                    .iter()
                    .any(|o| e.first_lba <= o.last_lba && o.first_lba <= e.last_lba);
            if !ok {
                return Err(Error::BadEntry);
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// CRC-32 as GPT uses it (IEEE, as zlib).
pub fn crc32(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

#[cfg(test)]
mod tests;
