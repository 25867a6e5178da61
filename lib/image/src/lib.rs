//! zen-image: the one implementation of `zenos.bin`'s checks, used by the boot stubs
//! to verify and unpack, and by xtask to build. Keeping both sides in one crate means a
//! host test of a refused image is a test of what the stub does.
//!
//! Order of checks matters: the header is decoded, the payload's BLAKE3 is compared
//! before a single byte is decompressed (the decompressor never sees untrusted input),
//! and decompression must produce exactly `image_size` bytes.
#![no_std]
#![deny(unsafe_code)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

#[cfg(any(feature = "ed25519", feature = "alloc", test))]
use sha2::digest::generic_array::GenericArray;

#[cfg(any(feature = "ed25519", test))]
pub mod ed25519;
pub use zen_abi::image::{HeaderError, ImageHeader, IMAGE_HEADER_SIZE, IMAGE_SIGNED_LEN};

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    Header(HeaderError),
    /// The file is shorter than header + payload_size.
    TruncatedPayload,
    /// The payload's hash (BLAKE3) differs from the header's.
    BadHash,
    /// The LZ4 payload is malformed or does not decompress to `image_size` bytes.
    BadPayload,
    /// The caller's buffer is smaller than `mem_size`.
    BufferTooSmall,
    /// A signature was required but the header's signed flag is clear. (Only with the
    /// `ed25519` feature: the strings would cost the stub without it a sector.)
    #[cfg(feature = "ed25519")]
    Unsigned,
    /// The header's ed25519 signature does not verify with the given public key.
    #[cfg(feature = "ed25519")]
    BadSignature,
}

impl ImageError {
    /// Short, fixed messages: the stubs print them without `core::fmt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Header(h) => h.as_str(),
            Self::TruncatedPayload => "truncated payload",
            Self::BadHash => "payload hash mismatch",
            Self::BadPayload => "corrupt compressed payload",
            Self::BufferTooSmall => "load buffer too small",
            #[cfg(feature = "ed25519")]
            Self::Unsigned => "not signed",
            #[cfg(feature = "ed25519")]
            Self::BadSignature => "bad signature",
        }
    }
}

impl From<HeaderError> for ImageError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

/// An image whose header is consistent and whose payload matches the header's hash.
#[derive(Debug)]
pub struct Verified<'a> {
    pub header: ImageHeader,
    pub payload: &'a [u8],
}

/// Checks the header and the payload hash of a whole `zenos.bin`.
pub fn verify(file: &[u8]) -> Result<Verified<'_>, ImageError> {
    let header = ImageHeader::decode(file)?;
    let end = IMAGE_HEADER_SIZE as u64 + header.payload_size;
    if (file.len() as u64) < end {
        return Err(ImageError::TruncatedPayload);
    }
    let payload = &file[IMAGE_HEADER_SIZE..end as usize];
    let digest = payload_hash(payload);
    // OR of the differences rather than `!=`: no early exit (constant time, which the
    // signature check will want), and no call to `memcmp`, whose compiler-builtins
    // version alone is 600 bytes of the UEFI stub's 8 KiB.
    let diff = digest
        .iter()
        .zip(&header.payload_hash)
        .fold(0, |d, (a, b)| d | (a ^ b));
    if diff != 0 {
        return Err(ImageError::BadHash);
    }
    Ok(Verified { header, payload })
}

/// Checks the header's ed25519 signature with `public_key`: the signed flag must be
/// set and the signature must cover header bytes 0..IMAGE_SIGNED_LEN, which include
/// the payload's hash; so after this and [`verify`] every byte the stub acts on is
/// the signer's. Needs no more than the header.
#[cfg(feature = "ed25519")]
pub fn check_signature(file: &[u8], public_key: &[u8; 32]) -> Result<(), ImageError> {
    let header = ImageHeader::decode(file)?;
    if header.flags & zen_abi::image::IMAGE_FLAG_SIGNED == 0 {
        return Err(ImageError::Unsigned);
    }
    let signed: &[u8; IMAGE_SIGNED_LEN] = file[..IMAGE_SIGNED_LEN].try_into().expect("decoded");
    if ed25519::verify(public_key, signed, &header.signature) {
        Ok(())
    } else {
        Err(ImageError::BadSignature)
    }
}

impl Verified<'_> {
    /// Decompresses the flat image into `out` (at least `mem_size` bytes) and zeroes the
    /// rest of `out[..mem_size]` (the kernel's .bss).
    pub fn unpack(&self, out: &mut [u8]) -> Result<(), ImageError> {
        let h = &self.header;
        if (out.len() as u64) < h.mem_size {
            return Err(ImageError::BufferTooSmall);
        }
        let image = &mut out[..h.image_size as usize];
        lz4_decode(self.payload, image).ok_or(ImageError::BadPayload)?;
        out[h.image_size as usize..h.mem_size as usize].fill(0);
        Ok(())
    }
}

/// Decodes an LZ4 block (the format `lz4_flex::block::compress` writes) into `out`,
/// which it must fill exactly. `None` on any malformed input: every length and offset
/// is checked against both buffers, so bad data is refused, never read or written out
/// of bounds.
///
/// Hand-written rather than `lz4_flex`'s decoder because it is a fifth of the size (the
/// UEFI stub must stay small) and needs no `alloc`. Literals and matches are block
/// copies (`memcpy`/`memmove`), not byte loops: byte by byte it took 11 instructions
/// per output byte, a quarter of the stub's time.
fn lz4_decode(src: &[u8], out: &mut [u8]) -> Option<()> {
    let (mut s, mut pos) = (0usize, 0usize);
    loop {
        let token = *src.get(s)?;
        s += 1;
        let lit = lz4_len(src, &mut s, token >> 4)?;
        let end = pos.checked_add(lit)?;
        out.get_mut(pos..end)?
            .copy_from_slice(src.get(s..s.checked_add(lit)?)?);
        s += lit;
        pos = end;
        // The last sequence is literals only.
        if s == src.len() {
            return (pos == out.len()).then_some(());
        }
        let offset = *src.get(s)? as usize | (*src.get(s + 1)? as usize) << 8;
        s += 2;
        if offset == 0 || offset > pos {
            return None;
        }
        let end = pos.checked_add(lz4_len(src, &mut s, token & 15)?.checked_add(4)?)?;
        if end > out.len() {
            return None;
        }
        // A match may overlap the bytes it produces (offset < length): then what lies
        // between `from` and `pos` repeats with period `offset`, so each copy may take
        // all of it, doubling the next one (a run of zeros: log2 copies, not one per
        // byte).
        let from = pos - offset;
        while pos < end {
            let n = (end - pos).min(pos - from);
            out.copy_within(from..from + n, pos);
            pos += n;
        }
    }
}

/// A sequence length at `src[*s..]`: the token's nibble, extended by bytes while they
/// are 255.
fn lz4_len(src: &[u8], s: &mut usize, nibble: u8) -> Option<usize> {
    let mut n = nibble as usize;
    if nibble == 15 {
        loop {
            let b = *src.get(*s)?;
            *s += 1;
            n += b as usize; // at most 255 per input byte: cannot overflow
            if b != 255 {
                break;
            }
        }
    }
    Some(n)
}

/// The payload hash field of an image: BLAKE3 of the payload (zen-blake3: a third of
/// the instructions of the stubs' small SHA-512; see `cargo xtask bench`'s stub
/// steps), then 32 zero bytes (the field kept its version-1 size; `verify` checks
/// all 64).
pub fn payload_hash(payload: &[u8]) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..32].copy_from_slice(&zen_blake3::hash(payload));
    h
}

/// SHA-512 of `data`: sha2's compression function, with the padding done here (for
/// ed25519, and xtask's certificate tags).
///
/// Not `Sha512::digest` because its buffering layer is 600 bytes of the UEFI stub's
/// 8 KiB, and hashing one slice in one go needs none of it. The tests check this
/// against `Sha512::digest` at every length around the block and padding boundaries.
#[cfg(any(feature = "ed25519", feature = "alloc", test))]
pub fn sha512(data: &[u8]) -> [u8; 64] {
    let mut state: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    let blocks = data.chunks_exact(128);
    let rest = blocks.remainder();
    for block in blocks {
        sha2::compress512(&mut state, &[*GenericArray::from_slice(block)]);
    }
    // The tail, a 1 bit, zeros, and the length in bits as a big-endian u128, filling
    // one block, or two if fewer than 17 bytes are left after the tail.
    let mut tail = [0u8; 256];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 112 { 128 } else { 256 };
    tail[len - 16..len].copy_from_slice(&(data.len() as u128 * 8).to_be_bytes());
    for block in tail[..len].chunks_exact(128) {
        sha2::compress512(&mut state, &[*GenericArray::from_slice(block)]);
    }
    let mut out = [0u8; 64];
    for (o, s) in out.chunks_exact_mut(8).zip(state) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    out
}

/// Builds an unsigned `zenos.bin` from a flat kernel image.
#[cfg(any(feature = "alloc", test))]
pub fn build(flat: &[u8], mem_size: u64, load_vaddr: u64, entry: u64) -> alloc::vec::Vec<u8> {
    let payload = lz4_flex::block::compress(flat);
    let payload_hash = payload_hash(&payload);
    let header = ImageHeader {
        flags: 0,
        payload_size: payload.len() as u64,
        image_size: flat.len() as u64,
        mem_size,
        load_vaddr,
        entry,
        payload_hash,
        signature: [0; 64],
    };
    let mut out = alloc::vec::Vec::with_capacity(IMAGE_HEADER_SIZE + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use zen_abi::layout::KERNEL_BASE;

    fn flat() -> Vec<u8> {
        (0..20_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    fn image() -> Vec<u8> {
        build(&flat(), 24_576, KERNEL_BASE, KERNEL_BASE + 0x10)
    }

    #[test]
    fn round_trip_unpacks_and_zeroes_bss() {
        let img = image();
        let v = verify(&img).unwrap();
        let mut out = vec![0xAAu8; 24_576];
        v.unpack(&mut out).unwrap();
        assert_eq!(&out[..20_000], &flat()[..]);
        assert!(out[20_000..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_bad_magic_truncation_and_flipped_bytes() {
        let img = image();
        let mut bad = img.clone();
        bad[1] ^= 0x20;
        assert_eq!(
            verify(&bad).unwrap_err(),
            ImageError::Header(HeaderError::BadMagic)
        );
        assert_eq!(
            verify(&img[..img.len() - 1]).unwrap_err(),
            ImageError::TruncatedPayload
        );
        assert_eq!(
            verify(&img[..50]).unwrap_err(),
            ImageError::Header(HeaderError::Truncated)
        );
        // Every byte of the payload and of the hash is covered.
        for i in (IMAGE_HEADER_SIZE..img.len()).chain(64..128) {
            let mut bad = img.clone();
            bad[i] ^= 0x01;
            assert_eq!(verify(&bad).unwrap_err(), ImageError::BadHash, "byte {i}");
        }
    }

    #[test]
    fn refuses_small_buffer_and_lying_sizes() {
        let img = image();
        let v = verify(&img).unwrap();
        let mut small = vec![0u8; 4096];
        assert_eq!(
            v.unpack(&mut small).unwrap_err(),
            ImageError::BufferTooSmall
        );
        // A header that claims a larger image than the payload holds: the hash is
        // right (recomputed), but decompression must not accept the short output.
        let mut h = ImageHeader::decode(&img).unwrap();
        h.image_size += 1;
        let mut lying = img.clone();
        lying[..IMAGE_HEADER_SIZE].copy_from_slice(&h.encode());
        let v = verify(&lying).unwrap();
        let mut out = vec![0u8; 24_576];
        assert_eq!(v.unpack(&mut out).unwrap_err(), ImageError::BadPayload);
    }

    #[test]
    fn sha512_agrees_with_sha2() {
        use sha2::{Digest, Sha512};
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in (0..400).chain([511, 512, 513, 999, 1000]) {
            let d = &data[..len];
            assert_eq!(sha512(d)[..], Sha512::digest(d)[..], "len {len}");
        }
        // FIPS 180-2, appendix C.1: "abc".
        assert_eq!(sha512(b"abc")[..4], [0xdd, 0xaf, 0x35, 0xa1]);
    }

    #[test]
    fn decoder_agrees_with_lz4_flex() {
        // Long runs (overlapping matches, 255-extended lengths), short and long literal
        // runs, incompressible stretches, and sizes around the format's edge cases.
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for len in [0usize, 1, 4, 5, 12, 13, 64, 300, 4096, 70_000] {
            for style in 0..4 {
                let data: Vec<u8> = (0..len)
                    .map(|i| match style {
                        0 => 0,
                        1 => (i % 7) as u8,
                        2 => next() as u8,
                        _ => {
                            if (i / 500) % 2 == 0 {
                                next() as u8
                            } else {
                                (i % 3) as u8
                            }
                        }
                    })
                    .collect();
                let packed = lz4_flex::block::compress(&data);
                let mut out = vec![0xAAu8; len];
                assert_eq!(
                    lz4_decode(&packed, &mut out),
                    Some(()),
                    "len {len} style {style}"
                );
                assert_eq!(out, data, "len {len} style {style}");
                if len > 0 {
                    // One byte too few or too many to fill is refused.
                    assert_eq!(lz4_decode(&packed, &mut vec![0; len - 1]), None);
                }
                assert_eq!(lz4_decode(&packed, &mut vec![0; len + 1]), None);
                // Every truncation is refused.
                for cut in 0..packed.len().min(40) {
                    assert_eq!(lz4_decode(&packed[..cut], &mut out), None, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn decoder_refuses_bad_offsets() {
        let mut out = [0u8; 16];
        // Token: 1 literal, match of 4 at offset 0, then offset 2 (before the start).
        assert_eq!(lz4_decode(&[0x10, b'a', 0, 0, 0x00], &mut out), None);
        assert_eq!(lz4_decode(&[0x10, b'a', 2, 0, 0x00], &mut out), None);
        // Offset 1 over 1 literal: "a" then 4 x "a", then an empty last sequence.
        let mut out = [0u8; 5];
        assert_eq!(lz4_decode(&[0x10, b'a', 1, 0, 0x00], &mut out), Some(()));
        assert_eq!(&out, b"aaaaa");
    }

    #[test]
    fn garbage_payload_with_matching_hash_is_refused_not_panicking() {
        // Random bytes behind a correct hash: the decompressor must fail cleanly.
        let mut seed = 0x1234_5678u32;
        for _ in 0..200 {
            let payload: Vec<u8> = (0..300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let payload_hash = payload_hash(&payload);
            let h = ImageHeader {
                flags: 0,
                payload_size: 300,
                image_size: 4096,
                mem_size: 4096,
                load_vaddr: KERNEL_BASE,
                entry: KERNEL_BASE,
                payload_hash,
                signature: [0; 64],
            };
            let mut file = h.encode().to_vec();
            file.extend_from_slice(&payload);
            let mut out = vec![0u8; 4096];
            let _ = verify(&file).unwrap().unpack(&mut out); // Ok or Err, never a panic
        }
    }
}
