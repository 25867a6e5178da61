//! Little-endian byte encoding with a bounds-checked reader.
//!
//! Everything read from disk goes through [`Reader`], whose every method returns an error
//! instead of panicking on short or malformed input, so a corrupt image cannot crash
//! the engine.

use crate::{corrupt, Result};
use alloc::vec::Vec;

pub(crate) fn put_u8(v: &mut Vec<u8>, x: u8) {
    v.push(x);
}
pub(crate) fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
pub(crate) fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
pub(crate) fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
/// LEB128 varint: posting deltas are mostly small.
pub(crate) fn put_var(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}
pub(crate) fn put_str(v: &mut Vec<u8>, s: &str) {
    // Tags are at most 255 bytes (checked before they get here).
    put_u8(v, s.len() as u8);
    v.extend_from_slice(s.as_bytes());
}

/// A cursor over untrusted bytes; `what` names the structure in error messages.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(corrupt!("{} truncated at byte {}", self.what, self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn var(&mut self) -> Result<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(corrupt!(
            "{}: varint too long at byte {}",
            self.what,
            self.pos
        ))
    }
    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let n = usize::from(self.u8()?);
        let b = self.bytes(n)?;
        core::str::from_utf8(b).map_err(|_| corrupt!("{}: tag is not UTF-8", self.what))
    }
    /// Checks that `count` items of at least `min` bytes each can still be present, so
    /// a corrupt count cannot make us allocate gigabytes.
    pub(crate) fn check_count(&self, count: u64, min: usize) -> Result<usize> {
        match usize::try_from(count).ok().and_then(|c| c.checked_mul(min)) {
            Some(b) if b <= self.remaining() => Ok(count as usize),
            _ => Err(corrupt!("{}: count {count} exceeds the data", self.what)),
        }
    }
}

/// The checksum used everywhere: 64-bit XXH3, seeded per structure kind so that a block
/// of one kind can never validate as another.
pub(crate) fn checksum(seed: u64, data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(data, seed)
}
