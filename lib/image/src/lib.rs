//! zen-image: the one implementation of `zenos.bin`'s checks, used by the boot stubs
//! to verify and unpack, and by xtask to build. Keeping both sides in one crate means a
//! host test of a refused image is a test of what the stub does.
//!
//! Order of checks matters: the header is decoded, the payload's SHA-512 is compared
//! before a single byte is decompressed (the decompressor never sees untrusted input),
//! and decompression must produce exactly `image_size` bytes.
#![no_std]
#![deny(unsafe_code)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

use sha2::{Digest, Sha512};
pub use zen_abi::image::{HeaderError, ImageHeader, IMAGE_HEADER_SIZE, IMAGE_SIGNED_LEN};

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    Header(HeaderError),
    /// The file is shorter than header + payload_size.
    TruncatedPayload,
    /// The payload's SHA-512 differs from the header's.
    BadHash,
    /// The LZ4 payload is malformed or does not decompress to `image_size` bytes.
    BadPayload,
    /// The caller's buffer is smaller than `mem_size`.
    BufferTooSmall,
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
    let digest = Sha512::digest(payload);
    if digest.as_slice() != header.payload_hash {
        return Err(ImageError::BadHash);
    }
    Ok(Verified { header, payload })
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
        match lz4_flex::block::decompress_into(self.payload, image) {
            Ok(n) if n as u64 == h.image_size => {}
            _ => return Err(ImageError::BadPayload),
        }
        out[h.image_size as usize..h.mem_size as usize].fill(0);
        Ok(())
    }
}

/// Builds an unsigned `zenos.bin` from a flat kernel image.
#[cfg(any(feature = "alloc", test))]
pub fn build(flat: &[u8], mem_size: u64, load_vaddr: u64, entry: u64) -> alloc::vec::Vec<u8> {
    let payload = lz4_flex::block::compress(flat);
    let mut payload_hash = [0u8; 64];
    payload_hash.copy_from_slice(&Sha512::digest(&payload));
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
        (0..20_000u32).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
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
        assert_eq!(verify(&bad).unwrap_err(), ImageError::Header(HeaderError::BadMagic));
        assert_eq!(verify(&img[..img.len() - 1]).unwrap_err(), ImageError::TruncatedPayload);
        assert_eq!(verify(&img[..50]).unwrap_err(), ImageError::Header(HeaderError::Truncated));
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
        assert_eq!(v.unpack(&mut small).unwrap_err(), ImageError::BufferTooSmall);
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
            let mut payload_hash = [0u8; 64];
            payload_hash.copy_from_slice(&Sha512::digest(&payload));
            let h = ImageHeader {
                flags: 0, payload_size: 300, image_size: 4096, mem_size: 4096,
                load_vaddr: KERNEL_BASE, entry: KERNEL_BASE, payload_hash, signature: [0; 64],
            };
            let mut file = h.encode().to_vec();
            file.extend_from_slice(&payload);
            let mut out = vec![0u8; 4096];
            let _ = verify(&file).unwrap().unpack(&mut out); // Ok or Err, never a panic
        }
    }
}
