//! zen-blake3: BLAKE3 (the specification's portable form, section 2), small enough for
//! the boot stubs: the compression function, and a one-pass hash of a slice.
//!
//! Why not the `blake3` crate: its buffering hasher, tree bookkeeping, SIMD dispatch
//! and SSE/AVX code are tens of KiB, and neither the stubs (8 KiB targets) nor the
//! kernel (which must not touch vector registers) can carry or use them. A slice
//! hashed in one go needs none of that: chunks in order, and a stack of chaining
//! values merged as each chunk ends. The tests check every result against the crate.
//!
//! Why BLAKE3 for the image: the stub hashed the payload with SHA-512 at 45
//! instructions a byte (21 M of the boot's 34 M); BLAKE3's 32-bit compression, built
//! the same small way, takes about a third of that.
#![no_std]
#![deny(unsafe_code)]

/// The IV: SHA-256's, as in BLAKE2s.
pub const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];
pub const CHUNK_START: u32 = 1;
pub const CHUNK_END: u32 = 2;
pub const PARENT: u32 = 4;
pub const ROOT: u32 = 8;
pub const KEYED_HASH: u32 = 16;
pub const BLOCK_LEN: usize = 64;
pub const CHUNK_LEN: usize = 1024;

/// The message words each round reads, in order: the specification's permutation
/// applied round after round, as a table (no array shuffling between rounds).
const SCHEDULE: [[u8; 16]; 7] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
    [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
    [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
    [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
    [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
    [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
];

/// The quarter-round mixing function G.
#[inline(always)]
fn g(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
    s[a] = s[a].wrapping_add(s[b]).wrapping_add(x);
    s[d] = (s[d] ^ s[a]).rotate_right(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_right(12);
    s[a] = s[a].wrapping_add(s[b]).wrapping_add(y);
    s[d] = (s[d] ^ s[a]).rotate_right(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_right(7);
}

/// The compression function: the 16 state words after the 7 rounds, before the
/// feed-forward (callers XOR what they need: see [`chaining_value`] and [`output`]).
pub fn compress(cv: &[u32; 8], block: &[u32; 16], counter: u64, len: u32, flags: u32) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..8].copy_from_slice(cv);
    s[8..12].copy_from_slice(&IV[..4]);
    s[12] = counter as u32;
    s[13] = (counter >> 32) as u32;
    s[14] = len;
    s[15] = flags;
    #[cfg(not(feature = "small"))]
    rounds(&mut s, block);
    #[cfg(feature = "small")]
    rounds_small(&mut s, block);
    s
}

/// The seven rounds, G written out eight times a round.
#[cfg_attr(feature = "small", allow(dead_code))]
fn rounds(s: &mut [u32; 16], block: &[u32; 16]) {
    for r in &SCHEDULE {
        let m = |i: usize| block[usize::from(r[i & 15]) & 15];
        g(s, 0, 4, 8, 12, m(0), m(1));
        g(s, 1, 5, 9, 13, m(2), m(3));
        g(s, 2, 6, 10, 14, m(4), m(5));
        g(s, 3, 7, 11, 15, m(6), m(7));
        g(s, 0, 5, 10, 15, m(8), m(9));
        g(s, 1, 6, 11, 12, m(10), m(11));
        g(s, 2, 7, 8, 13, m(12), m(13));
        g(s, 3, 4, 9, 14, m(14), m(15));
    }
}

/// The same rounds with one G, its columns and diagonals from a table, and the
/// message permuted in place between rounds: a few hundred bytes where the eight
/// written out are a few KiB (the BIOS stub's 8 KiB), at about twice the
/// instructions. The tests check it against [`rounds`].
#[cfg(any(feature = "small", test))]
fn rounds_small(s: &mut [u32; 16], block: &[u32; 16]) {
    let mut m = *block;
    for _ in 0..7 {
        for (k, q) in QUADS.iter().enumerate() {
            let q = |i: usize| usize::from(q[i]) & 15;
            g(s, q(0), q(1), q(2), q(3), m[2 * k], m[2 * k + 1]);
        }
        let prev = m;
        for (w, &p) in m.iter_mut().zip(SCHEDULE[1].iter()) {
            *w = prev[usize::from(p) & 15];
        }
    }
}

/// G's four state words, for the columns and then the diagonals.
#[cfg(any(feature = "small", test))]
const QUADS: [[u8; 4]; 8] = [
    [0, 4, 8, 12],
    [1, 5, 9, 13],
    [2, 6, 10, 14],
    [3, 7, 11, 15],
    [0, 5, 10, 15],
    [1, 6, 11, 12],
    [2, 7, 8, 13],
    [3, 4, 9, 14],
];

/// The chaining value a compression yields: the state's two halves XORed.
pub fn chaining_value(s: &[u32; 16]) -> [u32; 8] {
    core::array::from_fn(|i| s[i] ^ s[i + 8])
}

/// The bytes of a chaining value (the hash, at the root).
pub fn cv_bytes(cv: &[u32; 8]) -> [u8; 32] {
    core::array::from_fn(|i| cv[i / 4].to_le_bytes()[i % 4])
}

/// Little-endian words of a block of at most 64 bytes, zero-padded. (Through a
/// padded copy: the conversion is then a plain copy on a little-endian CPU.)
pub fn words(bytes: &[u8]) -> [u32; 16] {
    let mut b = [0u8; BLOCK_LEN];
    let n = bytes.len().min(BLOCK_LEN);
    b[..n].copy_from_slice(&bytes[..n]);
    core::array::from_fn(|i| {
        u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// `cv` becomes the chaining value of compressing `block` from it.
#[inline(never)]
fn chain(cv: &mut [u32; 8], block: &[u32; 16], counter: u64, len: u32, flags: u32) {
    let s = compress(cv, block, counter, len, flags);
    for i in 0..8 {
        cv[i] = s[i] ^ s[i + 8];
    }
}

/// BLAKE3 of `data` (32 bytes). Block by block, written for size (the BIOS stub):
/// each block is compressed as it comes; a chunk's chaining value merges with every
/// left subtree it completes and joins the stack; after the last chunk the whole
/// right edge merges, and the last compression (a chunk's last block, or a parent)
/// is the root. (At the root the chaining value is the 32-byte hash.)
// Not inlined: its one caller (zen-image) grows by more than its body.
#[inline(never)]
pub fn hash(data: &[u8]) -> [u8; 32] {
    #[cfg(feature = "fast")]
    return *blake3::hash(data).as_bytes();
    #[cfg(not(feature = "fast"))]
    hash_portable(data)
}

/// [`hash`] by this crate's own code.
#[cfg_attr(feature = "fast", allow(dead_code))]
fn hash_portable(data: &[u8]) -> [u8; 32] {
    // One chaining value per level of the tree: 2^40 chunks would be 1 PiB.
    let mut stack = [[0u32; 8]; 40];
    let mut depth = 0;
    let mut cv = IV;
    let mut block = [0u32; 16];
    let blocks = data.len().div_ceil(BLOCK_LEN).max(1);
    for b in 0..blocks {
        let start = b * BLOCK_LEN;
        let bytes = data
            .get(start..data.len().min(start + BLOCK_LEN))
            .unwrap_or(&[]);
        let last = b + 1 == blocks;
        let pos = b % 16;
        let mut flags = if pos == 0 { CHUNK_START } else { 0 };
        if last || pos == 15 {
            flags |= CHUNK_END;
        }
        if last && depth == 0 {
            flags |= ROOT;
        }
        block = words(bytes);
        let chunk = (b / 16) as u64;
        chain(&mut cv, &block, chunk, bytes.len() as u32, flags);
        if flags & CHUNK_END != 0 {
            // Merged with each left subtree this chunk completes (one per trailing
            // one bit of its index), or after the last chunk with all of them.
            let mut done = chunk;
            while depth > 0 && (last || done & 1 == 1) {
                depth -= 1;
                block[..8].copy_from_slice(&stack[depth]);
                block[8..].copy_from_slice(&cv);
                cv = IV;
                let root = if last && depth == 0 { ROOT } else { 0 };
                chain(&mut cv, &block, 0, BLOCK_LEN as u32, PARENT | root);
                done >>= 1;
            }
            if let Some(slot) = stack.get_mut(depth) {
                *slot = cv;
            }
            depth += 1;
            if !last {
                cv = IV;
            }
        }
    }
    let _ = block;
    cv_bytes(&cv)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn the_small_rounds_are_the_rounds() {
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200 {
            let mut a: [u32; 16] = core::array::from_fn(|_| next());
            let block: [u32; 16] = core::array::from_fn(|_| next());
            let mut b = a;
            rounds(&mut a, &block);
            rounds_small(&mut b, &block);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn the_portable_form_agrees_too() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        for len in [0, 1, 64, 65, 1024, 1025, 4096, 5000, 20_000] {
            assert_eq!(
                hash_portable(&data[..len]),
                reference(&data[..len]),
                "len {len}"
            );
        }
    }

    fn reference(data: &[u8]) -> [u8; 32] {
        *::blake3::hash(data).as_bytes()
    }

    #[test]
    fn agrees_with_the_blake3_crate_around_every_boundary() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut lens: Vec<usize> = (0..=130).collect();
        for k in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33] {
            for d in [-1i64, 0, 1] {
                lens.push((k as i64 * CHUNK_LEN as i64 + d) as usize);
            }
        }
        lens.push(data.len());
        for len in lens {
            assert_eq!(
                hash_portable(&data[..len]),
                reference(&data[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn known_answers() {
        // The official test vectors' input (byte i = i % 251): the empty input and
        // 1024 bytes, their 32-byte hashes.
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| std::format!("{x:02x}"))
                .collect::<std::string::String>()
        };
        assert_eq!(
            hex(&hash_portable(&[])),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let data: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            hex(&hash_portable(&data)),
            "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"
        );
    }

    #[test]
    fn a_large_input_agrees() {
        let data: Vec<u8> = (0..(1u32 << 20) + 777)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(hash_portable(&data), reference(&data));
    }
}
