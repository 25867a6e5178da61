//! The header of `zenos.bin`, the compressed, signed kernel image.
//!
//! ```text
//! offset size
//!      0    8  magic "ZENOSBIN"
//!      8    4  version (IMAGE_VERSION)
//!     12    4  header_size (IMAGE_HEADER_SIZE)
//!     16    4  flags (IMAGE_FLAG_*)
//!     20    4  reserved, zero
//!     24    8  payload_size: compressed bytes after the header
//!     32    8  image_size: bytes of the flat kernel image once decompressed
//!     40    8  mem_size: image_size + .bss, rounded up to a page
//!     48    8  load_vaddr: where the flat image is mapped (layout::KERNEL_BASE)
//!     56    8  entry: virtual address of the kernel entry point
//!     64   64  payload_hash: BLAKE3 of the payload (the compressed bytes), 32
//!              bytes, then 32 zero bytes (version 1 held a SHA-512 here)
//!    128   64  signature: ed25519 over bytes 0..128 of the header (zero if unsigned)
//!    192       payload: LZ4 block format
//! ```
//! The signature covers the header up to and including the payload hash, so it
//! covers every byte the stub acts on. All integers are little-endian.

pub const IMAGE_MAGIC: [u8; 8] = *b"ZENOSBIN";
pub const IMAGE_VERSION: u32 = 2;
pub const IMAGE_HEADER_SIZE: usize = 192;
/// Bytes of the header covered by the signature.
pub const IMAGE_SIGNED_LEN: usize = 128;
/// Set when `signature` holds an ed25519 signature.
pub const IMAGE_FLAG_SIGNED: u32 = 1;
/// Refuse absurd sizes before allocating anything: 256 MiB.
pub const IMAGE_MAX_SIZE: u64 = 256 << 20;

/// The decoded header. Decoding checks only the fields' own consistency; the payload
/// hash and the signature are checked by `zen-image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub flags: u32,
    pub payload_size: u64,
    pub image_size: u64,
    pub mem_size: u64,
    pub load_vaddr: u64,
    pub entry: u64,
    pub payload_hash: [u8; 64],
    pub signature: [u8; 64],
}

/// Why a header was refused. `as_str` gives the message the stubs print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    Truncated,
    BadMagic,
    BadVersion,
    BadSizes,
    BadEntry,
}

impl HeaderError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated header",
            Self::BadMagic => "bad magic",
            Self::BadVersion => "unsupported version",
            Self::BadSizes => "inconsistent sizes",
            Self::BadEntry => "entry outside the image",
        }
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl ImageHeader {
    /// Decodes and sanity-checks a header from the start of `b`.
    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < IMAGE_HEADER_SIZE {
            return Err(HeaderError::Truncated);
        }
        if b[..8] != IMAGE_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if u32_at(b, 8) != IMAGE_VERSION || u32_at(b, 12) as usize != IMAGE_HEADER_SIZE {
            return Err(HeaderError::BadVersion);
        }
        let mut payload_hash = [0u8; 64];
        payload_hash.copy_from_slice(&b[64..128]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[128..192]);
        let h = Self {
            flags: u32_at(b, 16),
            payload_size: u64_at(b, 24),
            image_size: u64_at(b, 32),
            mem_size: u64_at(b, 40),
            load_vaddr: u64_at(b, 48),
            entry: u64_at(b, 56),
            payload_hash,
            signature,
        };
        if h.payload_size == 0
            || h.payload_size > IMAGE_MAX_SIZE
            || h.image_size == 0
            || h.mem_size > IMAGE_MAX_SIZE
            || h.mem_size < h.image_size
            || !h.mem_size.is_multiple_of(crate::layout::PAGE_SIZE)
            || !h.load_vaddr.is_multiple_of(crate::layout::PAGE_SIZE)
        {
            return Err(HeaderError::BadSizes);
        }
        if h.entry < h.load_vaddr || h.entry - h.load_vaddr >= h.image_size {
            return Err(HeaderError::BadEntry);
        }
        Ok(h)
    }

    /// Encodes the header; the inverse of [`ImageHeader::decode`].
    pub fn encode(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut b = [0u8; IMAGE_HEADER_SIZE];
        b[..8].copy_from_slice(&IMAGE_MAGIC);
        b[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(IMAGE_HEADER_SIZE as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_size.to_le_bytes());
        b[32..40].copy_from_slice(&self.image_size.to_le_bytes());
        b[40..48].copy_from_slice(&self.mem_size.to_le_bytes());
        b[48..56].copy_from_slice(&self.load_vaddr.to_le_bytes());
        b[56..64].copy_from_slice(&self.entry.to_le_bytes());
        b[64..128].copy_from_slice(&self.payload_hash);
        b[128..192].copy_from_slice(&self.signature);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageHeader {
        ImageHeader {
            flags: 0,
            payload_size: 1000,
            image_size: 4000,
            mem_size: 8192,
            load_vaddr: crate::layout::KERNEL_BASE,
            entry: crate::layout::KERNEL_BASE + 16,
            payload_hash: [7; 64],
            signature: [0; 64],
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(ImageHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn refuses_bad_fields() {
        let good = sample().encode();
        assert_eq!(
            ImageHeader::decode(&good[..100]),
            Err(HeaderError::Truncated)
        );
        let mut b = good;
        b[0] ^= 1;
        assert_eq!(ImageHeader::decode(&b), Err(HeaderError::BadMagic));
        // Version 1 (a SHA-512 payload hash) and any other version are refused.
        for v in [0u8, 1, 3, 0xff] {
            let mut b = good;
            b[8] = v;
            assert_eq!(ImageHeader::decode(&b), Err(HeaderError::BadVersion), "{v}");
        }
        let mut h = sample();
        h.mem_size = 0; // smaller than the image
        assert_eq!(ImageHeader::decode(&h.encode()), Err(HeaderError::BadSizes));
        let mut h = sample();
        h.payload_size = u64::MAX;
        assert_eq!(ImageHeader::decode(&h.encode()), Err(HeaderError::BadSizes));
        let mut h = sample();
        h.entry = h.load_vaddr + h.image_size;
        assert_eq!(ImageHeader::decode(&h.encode()), Err(HeaderError::BadEntry));
    }
}
