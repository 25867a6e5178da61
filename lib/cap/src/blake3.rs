//! Keyed BLAKE3 of a message of at most one block (64 bytes): all the token MAC needs.
//!
//! The MAC input is a fixed 40 bytes, so the hash is one call of the compression
//! function (one chunk, one block, flags CHUNK_START | CHUNK_END | ROOT | KEYED_HASH)
//! and none of BLAKE3's tree, chunk state or SIMD dispatch. The `blake3` crate linked
//! all of that into the kernel (its SSE/AVX assembly too, never called: the kernel must
//! not touch vector registers), 70 KiB of a kernel of 260; this is a few hundred
//! bytes. It is checked against the crate (a dev-dependency) for every length 0..=64.
//! The function is the portable reference one from the BLAKE3 specification, section 2.

/// The IV: SHA-256's, as in BLAKE2s.
const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];
/// The message word permutation applied between rounds.
const PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const KEYED_HASH: u32 = 16;
/// The most a single-block message can hold.
pub const BLOCK_LEN: usize = 64;

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

/// `BLAKE3-keyed(key, msg)`, 32 bytes of output, for `msg` of at most [`BLOCK_LEN`]
/// bytes (longer is a programming error: the MAC input is fixed at 40).
pub fn keyed_hash(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    assert!(msg.len() <= BLOCK_LEN, "single-block BLAKE3 only");
    let mut block = [0u8; BLOCK_LEN];
    block[..msg.len()].copy_from_slice(msg);
    let mut m = [0u32; 16];
    for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let mut s = [0u32; 16];
    for (w, b) in s.iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    s[8..12].copy_from_slice(&IV[..4]);
    // s[12], s[13]: the chunk counter, 0.
    s[14] = msg.len() as u32;
    s[15] = CHUNK_START | CHUNK_END | ROOT | KEYED_HASH;
    for round in 0..7 {
        if round > 0 {
            let prev = m;
            for (w, &p) in m.iter_mut().zip(PERMUTATION.iter()) {
                *w = prev[p];
            }
        }
        g(&mut s, 0, 4, 8, 12, m[0], m[1]);
        g(&mut s, 1, 5, 9, 13, m[2], m[3]);
        g(&mut s, 2, 6, 10, 14, m[4], m[5]);
        g(&mut s, 3, 7, 11, 15, m[6], m[7]);
        g(&mut s, 0, 5, 10, 15, m[8], m[9]);
        g(&mut s, 1, 6, 11, 12, m[10], m[11]);
        g(&mut s, 2, 7, 8, 13, m[12], m[13]);
        g(&mut s, 3, 4, 9, 14, m[14], m[15]);
    }
    let mut out = [0u8; 32];
    for (i, o) in out.chunks_exact_mut(4).enumerate() {
        o.copy_from_slice(&(s[i] ^ s[i + 8]).to_le_bytes());
    }
    out
}

/// Whether `a == b`, in time independent of where they differ (a MAC check must not
/// tell an attacker how many leading bytes of a forgery were right). `black_box` keeps
/// the optimiser from turning the fold into an early-exit comparison.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn agrees_with_the_blake3_crate_for_every_single_block_length() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let data: [u8; BLOCK_LEN] = core::array::from_fn(|i| (i * 31 + 1) as u8);
        for len in 0..=BLOCK_LEN {
            let want = ::blake3::keyed_hash(&key, &data[..len]);
            assert_eq!(
                &keyed_hash(&key, &data[..len]),
                want.as_bytes(),
                "len {len}"
            );
        }
        // And one known answer, so a wrong reference could not hide a wrong answer:
        // the official test vector (input byte i = i % 251) for 0 bytes, keyed with
        // "whats the Elvish word for friend".
        let key = *b"whats the Elvish word for friend";
        let want = "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26";
        let got: String = keyed_hash(&key, &[])
            .iter()
            .map(|b| std::format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    #[should_panic(expected = "single-block")]
    fn refuses_more_than_a_block() {
        keyed_hash(&[0; 32], &[0; BLOCK_LEN + 1]);
    }

    #[test]
    fn ct_eq_compares_every_byte() {
        let a = [5u8; 32];
        assert!(ct_eq(&a, &a));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
    }
}
