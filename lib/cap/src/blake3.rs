//! Keyed BLAKE3 of a message of at most one block (64 bytes): all the token MAC needs.
//!
//! The MAC input is a fixed 40 bytes, so the hash is one call of the compression
//! function (one chunk, one block, flags CHUNK_START | CHUNK_END | ROOT | KEYED_HASH)
//! and none of BLAKE3's tree, chunk state or SIMD dispatch. The `blake3` crate linked
//! all of that into the kernel (its SSE/AVX assembly too, never called: the kernel must
//! not touch vector registers), 70 KiB of a kernel of 260; this is a few hundred
//! bytes. It is checked against the crate (a dev-dependency) for every length 0..=64.
//! The compression function is zen-blake3's (shared with the boot stubs' image hash).

use zen_blake3::{chaining_value, compress, words, CHUNK_END, CHUNK_START, KEYED_HASH, ROOT};

/// The most a single-block message can hold.
pub const BLOCK_LEN: usize = zen_blake3::BLOCK_LEN;

/// `BLAKE3-keyed(key, msg)`, 32 bytes of output, for `msg` of at most [`BLOCK_LEN`]
/// bytes (longer is a programming error: the MAC input is fixed at 40).
pub fn keyed_hash(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    assert!(msg.len() <= BLOCK_LEN, "single-block BLAKE3 only");
    let k = words(key);
    let cv: [u32; 8] = core::array::from_fn(|i| k[i]);
    let s = compress(
        &cv,
        &words(msg),
        0,
        msg.len() as u32,
        CHUNK_START | CHUNK_END | ROOT | KEYED_HASH,
    );
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(chaining_value(&s)) {
        o.copy_from_slice(&w.to_le_bytes());
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
