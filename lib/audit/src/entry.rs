//! One entry: 96 bytes, little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | seq (0 for genesis and for a `Lost` marker) |
//! | 8 | 8 | time (TSC) |
//! | 16 | 2 | kind |
//! | 18 | 2 | zero |
//! | 20 | 4 | pid |
//! | 24 | 32 | four u64 arguments (genesis: the public key) |
//! | 56 | 32 | chain hash: BLAKE3 of bytes 0..56 keyed with (prev hash XOR the public key); genesis: prev = 0 |
//! | 88 | 8 | zero |

use zen_cap::blake3::keyed_hash;

/// Bytes of an entry.
pub const ENTRY_SIZE: usize = 96;
/// Bytes of a chain hash.
pub const HASH_LEN: usize = 32;
const FIELDS: usize = 56;

/// What happened.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first entry: arguments are the public key.
    Genesis = 0,
    /// Entries overwritten before this export: `args[0]` of them; the chain continues
    /// from `hash`.
    Lost = 1,
    Spawn = 2,
    Exit = 3,
    Kill = 4,
    CapGranted = 5,
    CapPassed = 6,
    CapRevoked = 7,
    CapRefused = 8,
    GrantMade = 9,
    GrantRefused = 10,
    DeviceClaimed = 11,
    PolicyDecision = 12,
    Shutdown = 13,
}

impl Kind {
    pub fn from_u16(v: u16) -> Option<Kind> {
        use Kind::*;
        const ALL: [Kind; 14] = [
            Genesis,
            Lost,
            Spawn,
            Exit,
            Kill,
            CapGranted,
            CapPassed,
            CapRevoked,
            CapRefused,
            GrantMade,
            GrantRefused,
            DeviceClaimed,
            PolicyDecision,
            Shutdown,
        ];
        ALL.get(usize::from(v)).copied()
    }
}

/// An entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub time: u64,
    pub kind: Kind,
    pub pid: u32,
    pub args: [u64; 4],
    pub hash: [u8; HASH_LEN],
}

impl Entry {
    pub const ZERO: Entry = Entry {
        seq: 0,
        time: 0,
        kind: Kind::Genesis,
        pid: 0,
        args: [0; 4],
        hash: [0; HASH_LEN],
    };

    fn fields(&self) -> [u8; FIELDS] {
        let mut b = [0u8; FIELDS];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.time.to_le_bytes());
        b[16..18].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[20..24].copy_from_slice(&self.pid.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b
    }

    /// The hash an entry with these fields carries after `prev`: BLAKE3 of the fields
    /// keyed with the previous hash XOR the log's key. The 56 bytes of fields are one
    /// block, so that is one compression (by zen-cap's BLAKE3, which the kernel already
    /// has for its tokens): an entry costs half what hashing the fields and then the
    /// pair took (1,761 instructions less per audited event). The key is the
    /// compression's chaining value, so two (previous hash, fields) pairs with one
    /// hash would be a collision of BLAKE3's compression function with the chaining
    /// value chosen: what BLAKE3's own chaining of blocks already relies on. (Exports
    /// made by kernels before this chain fail as `Genesis`: logs are per boot.)
    pub fn chain(&self, key: &[u8; 32], prev: &[u8; HASH_LEN]) -> [u8; HASH_LEN] {
        let mut k = *key;
        for (a, b) in k.iter_mut().zip(prev) {
            *a ^= b;
        }
        keyed_hash(&k, &self.fields())
    }

    /// The genesis entry of a log with public key `pk`.
    pub fn genesis(pk: &[u8; 32], time: u64) -> Entry {
        let mut args = [0u64; 4];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64::from_le_bytes(pk[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        }
        let mut e = Entry {
            time,
            args,
            ..Entry::ZERO
        };
        e.hash = e.chain(pk, &[0; HASH_LEN]);
        e
    }

    /// The public key a genesis entry holds.
    pub fn key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        for (i, a) in self.args.iter().enumerate() {
            k[8 * i..8 * i + 8].copy_from_slice(&a.to_le_bytes());
        }
        k
    }

    /// An entry chained after `prev`.
    #[allow(clippy::too_many_arguments)] // reason: one flat record, every field needed
    pub fn chained(
        key: &[u8; 32],
        prev: &[u8; HASH_LEN],
        seq: u64,
        time: u64,
        kind: Kind,
        pid: u32,
        args: [u64; 4],
    ) -> Entry {
        let mut e = Entry {
            seq,
            time,
            kind,
            pid,
            args,
            hash: [0; HASH_LEN],
        };
        e.hash = e.chain(key, prev);
        e
    }

    /// The marker for `count` lost entries, the last of which had hash `last`.
    pub fn lost(count: u64, last: [u8; HASH_LEN]) -> Entry {
        Entry {
            kind: Kind::Lost,
            args: [count, 0, 0, 0],
            hash: last,
            ..Entry::ZERO
        }
    }

    pub fn to_bytes(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[..FIELDS].copy_from_slice(&self.fields());
        b[FIELDS..FIELDS + HASH_LEN].copy_from_slice(&self.hash);
        b
    }

    /// `None` for bytes no entry encodes (an unknown kind, non-zero padding).
    pub fn from_bytes(b: &[u8]) -> Option<Entry> {
        if b.len() != ENTRY_SIZE || b[18..20] != [0, 0] || b[88..] != [0; 8] {
            return None;
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let mut args = [0u64; 4];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64_at(24 + 8 * i);
        }
        Some(Entry {
            seq: u64_at(0),
            time: u64_at(8),
            kind: Kind::from_u16(u16::from_le_bytes([b[16], b[17]]))?,
            pid: u32::from_le_bytes(b[20..24].try_into().expect("4 bytes")),
            args,
            hash: b[FIELDS..FIELDS + HASH_LEN].try_into().expect("32 bytes"),
        })
    }
}
