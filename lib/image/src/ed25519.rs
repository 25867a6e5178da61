//! A small ed25519 signature *verifier* (RFC 8032), after TweetNaCl's
//! `crypto_sign_open` (public domain; Bernstein, van Gastel, Janssen, Lange, Schwabe,
//! Smetsers), with no tables and one double-and-add pass over both scalars (Straus)
//! instead of TweetNaCl's two ladders. Field elements are five 51-bit limbs in `u64`s
//! multiplied through `u128` (as in ed25519-donna and curve25519-dalek's `u64`
//! backend), not TweetNaCl's sixteen 16-bit limbs: a product is 25 multiplications
//! instead of 256, which took the stub's one verification per boot from 19.8 M to
//! about 2 M instructions under `-icount`. It exists for the UEFI stub's size: a few
//! KiB where `ed25519-compact` adds 17 KiB (`cargo xtask bench --only disk`).
//!
//! Verification handles public data only, so nothing here needs to be constant time.
//! Unlike TweetNaCl it refuses a non-canonical `S` (S >= L), so signatures are not
//! malleable. The tests check it against `ed25519-compact` (accepts what that signs,
//! refuses every single-bit change of key, message or signature) and RFC 8032's
//! vectors. Over 500 lines with those tests: the verifier itself is under 320, and
//! its tests read the field's internals, so they stay beside it.

use crate::IMAGE_SIGNED_LEN;

/// A field element mod p = 2^255 - 19: five limbs of (nominally) 51 bits. Every
/// function here returns limbs below 2^52, which keeps every product sum in `mul`
/// below 2^116.
type Fe = [u64; 5];
/// A point in extended coordinates (X, Y, Z, T).
type Point = [Fe; 4];

const MASK: u64 = (1 << 51) - 1;
const ZERO: Fe = [0; 5];
const ONE: Fe = [1, 0, 0, 0, 0];
/// d = -121665/121666.
const D: [u16; 16] = [
    0x78a3, 0x1359, 0x4dca, 0x75eb, 0xd8ab, 0x4141, 0x0a4d, 0x0070, 0xe898, 0x7779, 0x4079, 0x8cc7,
    0xfe73, 0x2b6f, 0x6cee, 0x5203,
];
/// 2d.
const D2: [u16; 16] = [
    0xf159, 0x26b2, 0x9b94, 0xebd6, 0xb156, 0x8283, 0x149a, 0x00e0, 0xd130, 0xeef3, 0x80f2, 0x198e,
    0xfce7, 0x56df, 0xd9dc, 0x2406,
];
/// The base point's x and y.
const BX: [u16; 16] = [
    0xd51a, 0x8f25, 0x2d60, 0xc956, 0xa7b2, 0x9525, 0xc760, 0x692c, 0xdc5c, 0xfdd6, 0xe231, 0xc0a4,
    0x53fe, 0xcd6e, 0x36d3, 0x2169,
];
const BY: [u16; 16] = [
    0x6658, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666,
    0x6666, 0x6666, 0x6666, 0x6666,
];
/// sqrt(-1).
const SQRT_M1: [u16; 16] = [
    0xa0b0, 0x4a0e, 0x1b27, 0xc4ee, 0xe478, 0xad2f, 0x1806, 0x2f43, 0xd7a7, 0x3dfb, 0x0099, 0x2b4d,
    0xdf0b, 0x4fc1, 0x2480, 0x2b83,
];
/// The group order L, little-endian bytes.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// A constant (sixteen 16-bit limbs, TweetNaCl's form) as a field element.
fn fe16(c: &[u16; 16]) -> Fe {
    let mut b = [0u8; 32];
    for (i, l) in c.iter().enumerate() {
        b[2 * i..2 * i + 2].copy_from_slice(&l.to_le_bytes());
    }
    unpack(&b)
}

/// Equality without `memcmp` (compiler-builtins' is 600 bytes of the stub).
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// Propagates carries so every limb is below 2^51 plus a little (2^255 = 19 mod p).
fn carry(mut o: Fe) -> Fe {
    for i in 0..4 {
        o[i + 1] += o[i] >> 51;
        o[i] &= MASK;
    }
    o[0] += 19 * (o[4] >> 51);
    o[4] &= MASK;
    o
}

fn add(a: &Fe, b: &Fe) -> Fe {
    carry(core::array::from_fn(|i| a[i] + b[i]))
}

/// a - b, as a + 4p - b: 4p's limbs (about 2^53) exceed any `b`'s (below 2^52), so
/// no limb goes below zero.
fn sub(a: &Fe, b: &Fe) -> Fe {
    const FOUR_P: Fe = [(MASK - 18) * 4, MASK * 4, MASK * 4, MASK * 4, MASK * 4];
    carry(core::array::from_fn(|i| a[i] + FOUR_P[i] - b[i]))
}

/// Written out rather than as loops: at the stub's opt-level "z" the loops stay loops,
/// and this is where the verification spends its time.
fn mul(a: &Fe, b: &Fe) -> Fe {
    let m = |x: u64, y: u64| x as u128 * y as u128;
    // Limb products past 2^255 wrap around times 19.
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = *b;
    let (b1_19, b2_19, b3_19, b4_19) = (b1 * 19, b2 * 19, b3 * 19, b4 * 19);
    let r0 = m(a0, b0) + m(a1, b4_19) + m(a2, b3_19) + m(a3, b2_19) + m(a4, b1_19);
    let r1 = m(a0, b1) + m(a1, b0) + m(a2, b4_19) + m(a3, b3_19) + m(a4, b2_19);
    let r2 = m(a0, b2) + m(a1, b1) + m(a2, b0) + m(a3, b4_19) + m(a4, b3_19);
    let r3 = m(a0, b3) + m(a1, b2) + m(a2, b1) + m(a3, b0) + m(a4, b4_19);
    let r4 = m(a0, b4) + m(a1, b3) + m(a2, b2) + m(a3, b1) + m(a4, b0);
    let r1 = r1 + (r0 >> 51);
    let r2 = r2 + (r1 >> 51);
    let r3 = r3 + (r2 >> 51);
    let r4 = r4 + (r3 >> 51);
    let o0 = (r0 as u64 & MASK) + 19 * (r4 >> 51) as u64;
    [
        o0 & MASK,
        (r1 as u64 & MASK) + (o0 >> 51),
        r2 as u64 & MASK,
        r3 as u64 & MASK,
        r4 as u64 & MASK,
    ]
}

/// The canonical 32-byte encoding (fully reduced mod p).
fn pack(n: &Fe) -> [u8; 32] {
    let mut t = carry(carry(*n));
    // t < 2p now; q = 1 exactly when t >= p, found from t + 19 carrying past 2^255.
    let mut q = (t[0] + 19) >> 51;
    for l in &t[1..] {
        q = (l + q) >> 51;
    }
    t[0] += 19 * q;
    for i in 0..4 {
        t[i + 1] += t[i] >> 51;
        t[i] &= MASK;
    }
    t[4] &= MASK;
    let words = [
        t[0] | t[1] << 51,
        t[1] >> 13 | t[2] << 38,
        t[2] >> 26 | t[3] << 25,
        t[3] >> 39 | t[4] << 12,
    ];
    let mut o = [0u8; 32];
    for (chunk, w) in o.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    o
}

fn parity(a: &Fe) -> u8 {
    pack(a)[0] & 1
}

/// The low 255 bits of `n` (little-endian) as a field element.
fn unpack(n: &[u8; 32]) -> Fe {
    let w: [u64; 4] =
        core::array::from_fn(|i| u64::from_le_bytes(n[8 * i..8 * i + 8].try_into().unwrap()));
    [
        w[0] & MASK,
        (w[0] >> 51 | w[1] << 13) & MASK,
        (w[1] >> 38 | w[2] << 26) & MASK,
        (w[2] >> 25 | w[3] << 39) & MASK,
        w[3] >> 12 & MASK,
    ]
}

/// `i` to the power 2^(top+1) - 1 - (the bits at `holes`), by square-and-multiply:
/// with top 253 and holes 2, 4 that is p - 2 (the inverse); with top 250 and hole 1,
/// (p - 5) / 8 (for square roots).
fn pow(i: &Fe, top: i32, holes: [i32; 2]) -> Fe {
    let mut c = *i;
    for a in (0..=top).rev() {
        c = mul(&c, &c);
        if !holes.contains(&a) {
            c = mul(&c, i);
        }
    }
    c
}

/// p += q (twisted Edwards, extended coordinates; complete, so also doubles).
fn point_add(p: &mut Point, q: &Point) {
    let a = mul(&sub(&p[1], &p[0]), &sub(&q[1], &q[0]));
    let b = mul(&add(&p[0], &p[1]), &add(&q[0], &q[1]));
    let c = mul(&mul(&p[3], &q[3]), &fe16(&D2));
    let d = mul(&p[2], &q[2]);
    let d = add(&d, &d);
    let (e, f, g, h) = (sub(&b, &a), sub(&d, &c), add(&d, &c), add(&b, &a));
    *p = [mul(&e, &f), mul(&h, &g), mul(&g, &f), mul(&e, &h)];
}

fn point_pack(p: &Point) -> [u8; 32] {
    let zi = pow(&p[2], 253, [2, 4]);
    let mut r = pack(&mul(&p[1], &zi));
    r[31] ^= parity(&mul(&p[0], &zi)) << 7;
    r
}

/// h·q + s·b for 256-bit little-endian scalars, sharing the doublings (Straus).
/// Variable time, which is fine: everything here is public.
fn double_scalar_mul(q: &Point, h: &[u8; 32], b: &Point, s: &[u8; 32]) -> Point {
    let mut p: Point = [ZERO, ONE, ONE, ZERO];
    let bit = |k: &[u8; 32], i: usize| (k[i / 8] >> (i & 7)) & 1 == 1;
    for i in (0..256).rev() {
        let t = p;
        point_add(&mut p, &t);
        if bit(h, i) {
            point_add(&mut p, q);
        }
        if bit(s, i) {
            point_add(&mut p, b);
        }
    }
    p
}

/// A 512-bit little-endian number mod L.
fn reduce(h: &[u8; 64]) -> [u8; 32] {
    let mut x: [i64; 64] = core::array::from_fn(|i| h[i] as i64);
    for i in (32..64).rev() {
        let mut c = 0;
        let mut j = i - 32;
        while j < i - 12 {
            x[j] += c - 16 * x[i] * L[j - (i - 32)] as i64;
            c = (x[j] + 128) >> 8;
            x[j] -= c << 8;
            j += 1;
        }
        x[j] += c;
        x[i] = 0;
    }
    let mut c = 0;
    for j in 0..32 {
        x[j] += c - (x[31] >> 4) * L[j] as i64;
        c = x[j] >> 8;
        x[j] &= 255;
    }
    for j in 0..32 {
        x[j] -= c * L[j] as i64;
    }
    let mut r = [0u8; 32];
    for i in 0..32 {
        x[i + 1] += x[i] >> 8;
        r[i] = x[i] as u8;
    }
    r
}

/// Decodes a public key as the point -A; `None` if it is not on the curve.
fn decode_negated(p: &[u8; 32]) -> Option<Point> {
    let y = unpack(p);
    let num = mul(&y, &y);
    let den = mul(&num, &fe16(&D));
    let num = sub(&num, &ONE); // y² - 1
    let den = add(&ONE, &den); // d·y² + 1
                               // x = num·den³ · (num·den⁷)^((p-5)/8), then fix up by sqrt(-1) if needed.
    let den2 = mul(&den, &den);
    let den4 = mul(&den2, &den2);
    let den6 = mul(&den4, &den2);
    let t = mul(&mul(&den6, &num), &den);
    let t = mul(&mul(&mul(&pow(&t, 250, [1, -1]), &num), &den), &den);
    let mut x = mul(&t, &den);
    let check = |x: &Fe| same(&pack(&mul(&mul(x, x), &den)), &pack(&num));
    if !check(&x) {
        x = mul(&x, &fe16(&SQRT_M1));
    }
    if !check(&x) {
        return None;
    }
    if parity(&x) == p[31] >> 7 {
        x = sub(&ZERO, &x);
    }
    let t = mul(&x, &y);
    Some([x, y, ONE, t])
}

/// Whether the little-endian scalar `s` is below L.
fn canonical(s: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if s[i] != L[i] {
            return s[i] < L[i];
        }
    }
    false
}

/// Whether `sig` is a valid ed25519 signature by `public_key` of `msg`, the signed
/// part of a zenos.bin header (a fixed size, so the hash input fits on the stack).
pub fn verify(public_key: &[u8; 32], msg: &[u8; IMAGE_SIGNED_LEN], sig: &[u8; 64]) -> bool {
    let mut buf = [0u8; 64 + IMAGE_SIGNED_LEN];
    verify_in(public_key, msg, sig, &mut buf)
}

/// [`verify`] for a message of any length, with `buf` (64 + `msg.len()` bytes) for the
/// hash input R || A || M. Separate so the tests can run RFC 8032's vectors.
fn verify_in(public_key: &[u8; 32], msg: &[u8], sig: &[u8; 64], buf: &mut [u8]) -> bool {
    let (r, s) = sig.split_at(32);
    let s: &[u8; 32] = s.try_into().expect("32 bytes");
    if !canonical(s) || buf.len() != 64 + msg.len() {
        return false;
    }
    let Some(neg_a) = decode_negated(public_key) else {
        return false;
    };
    // h = SHA-512(R || A || M) mod L
    buf[..32].copy_from_slice(r);
    buf[32..64].copy_from_slice(public_key);
    buf[64..].copy_from_slice(msg);
    let h = reduce(&crate::sha512(buf));
    // R' = s·B - h·A must encode as R.
    let (bx, by) = (fe16(&BX), fe16(&BY));
    let base = [bx, by, ONE, mul(&bx, &by)];
    let p = double_scalar_mul(&neg_a, &h, &base, s);
    same(&point_pack(&p), r.try_into().expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(n: u64) -> Fe {
        [n, 0, 0, 0, 0]
    }

    #[test]
    fn packing_is_canonical_near_p() {
        // p = 2^255 - 19 itself, p + 1, and 2^255 - 1 (= p + 18) reduce; p - 1 stays.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(pack(&unpack(&p)), [0; 32]);
        let mut p1 = p;
        p1[0] = 0xee;
        assert_eq!(pack(&unpack(&p1)), pack(&ONE));
        let all = [0xffu8; 32]; // bit 255 is dropped: 2^255 - 1
        assert_eq!(pack(&unpack(&all)), pack(&fe(18)));
        let mut pm1 = p;
        pm1[0] = 0xec;
        assert_eq!(pack(&unpack(&pm1)), pm1);
        // Large limbs (sums of many sums) still pack to the same value as reduced ones.
        let big = [MASK * 3, MASK * 3, MASK * 3, MASK * 3, MASK * 3];
        assert_eq!(pack(&big), pack(&mul(&big, &ONE)));
        assert_eq!(pack(&sub(&ZERO, &ONE)), pm1);
    }

    #[test]
    fn constants_are_what_they_claim() {
        let eq = |a: &Fe, b: &Fe| assert_eq!(pack(a), pack(b));
        // d·121666 = -121665, 2d, sqrt(-1)² = -1
        let (d, d2, i) = (fe16(&D), fe16(&D2), fe16(&SQRT_M1));
        eq(&mul(&d, &fe(121666)), &sub(&ZERO, &fe(121665)));
        eq(&add(&d, &d), &d2);
        eq(&mul(&i, &i), &sub(&ZERO, &ONE));
        // the base point is on -x² + y² = 1 + d·x²·y², and y = 4/5
        let (bx, by) = (fe16(&BX), fe16(&BY));
        let (x2, y2) = (mul(&bx, &bx), mul(&by, &by));
        eq(&sub(&y2, &x2), &add(&ONE, &mul(&d, &mul(&x2, &y2))));
        eq(&mul(&by, &fe(5)), &fe(4));
        // inverse
        eq(&mul(&pow(&fe(12345), 253, [2, 4]), &fe(12345)), &ONE);
        // L = 2^252 + 27742317777372353535851937790883648493
        assert!(!canonical(&L));
        let mut below = L;
        below[0] -= 1;
        assert!(canonical(&below));
    }

    /// xorshift64*, for reproducible keys and messages.
    fn rng(state: &mut u64) -> u8 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn verify_any(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let mut buf = [0u8; 64 + 8];
        // (No std here: the messages of the tests are at most 8 bytes.)
        let buf = &mut buf[..64 + msg.len()];
        verify_in(pk, msg, sig, buf)
    }

    #[test]
    fn rfc8032_vectors_verify_and_their_flips_do_not() {
        // RFC 8032 section 7.1, tests 1 to 3: (public key, message, signature).
        let vectors: [(&str, &[u8], &str); 3] = [
            (
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                b"",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                &[0x72],
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                &[0xaf, 0x82],
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (pk, msg, sig) in vectors {
            let (pk, sig) = (hex::<32>(pk), hex::<64>(sig));
            assert!(
                verify_any(&pk, msg, &sig),
                "RFC 8032 vector with {} bytes",
                msg.len()
            );
            for bit in [0, 77, 255, 256, 300, 511] {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!verify_any(&pk, msg, &bad), "flipped signature bit {bit}");
            }
            let mut m = msg.to_vec();
            m.push(0);
            assert!(!verify_any(&pk, &m, &sig), "a longer message");
        }
    }

    #[test]
    fn non_canonical_keys_and_r_are_refused_without_panic() {
        let pk = hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let sig = hex::<64>("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
        // A key whose y is p or above (p, p + 1, 2^255 - 1), with either sign bit.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        for k in [
            p,
            {
                let mut q = p;
                q[0] = 0xee;
                q
            },
            [0xff; 32],
            {
                let mut q = p;
                q[31] = 0xff;
                q
            },
        ] {
            assert!(!verify_any(&k, b"", &sig));
        }
        // R with y + p in place of y cannot match: R' is compared in canonical form.
        // (Only a y below 19 has such a second encoding: take R = 1 + p, y = 1.)
        let mut r1 = [0u8; 64];
        r1[..32].copy_from_slice(&{
            let mut q = p;
            q[0] = 0xee;
            q
        });
        r1[32..].copy_from_slice(&sig[32..]);
        assert!(!verify_any(&pk, b"", &r1));
    }

    #[test]
    fn agrees_with_ed25519_compact() {
        let mut st = 0x1234_5678_9abc_def1u64;
        for round in 0..4 {
            let seed: [u8; 32] = core::array::from_fn(|_| rng(&mut st));
            let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
            let msg: [u8; IMAGE_SIGNED_LEN] = core::array::from_fn(|_| rng(&mut st));
            let sig: [u8; 64] = *kp.sk.sign(msg, None);
            let pk: [u8; 32] = *kp.pk;
            assert!(
                verify(&pk, &msg, &sig),
                "round {round}: a good signature refused"
            );
            // Single-bit changes anywhere are refused (a sample, the verifier is slow
            // in debug builds).
            for k in 0..12 {
                let bit = rng(&mut st) as usize;
                let mut s2 = sig;
                s2[(bit + 64 * k) % 64] ^= 1 << (bit % 8);
                assert!(
                    !verify(&pk, &msg, &s2),
                    "round {round}: flipped signature bit"
                );
                let mut m2 = msg;
                m2[(bit + k) % IMAGE_SIGNED_LEN] ^= 1 << (k % 8);
                assert!(
                    !verify(&pk, &m2, &sig),
                    "round {round}: flipped message bit"
                );
                let mut p2 = pk;
                p2[(bit + k) % 32] ^= 1 << (k % 8);
                assert!(!verify(&p2, &msg, &sig), "round {round}: flipped key bit");
            }
            // S + L: the same point, but not canonical.
            let mut s = [0i64; 33];
            let mut c = 0;
            for i in 0..32 {
                s[i] = sig[32 + i] as i64 + L[i] as i64 + c;
                c = s[i] >> 8;
                s[i] &= 255;
            }
            if c == 0 {
                let mut s2 = sig;
                for i in 0..32 {
                    s2[32 + i] = s[i] as u8;
                }
                assert!(!verify(&pk, &msg, &s2), "round {round}: S + L accepted");
            }
        }
    }
}
