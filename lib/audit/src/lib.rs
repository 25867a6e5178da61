//! zen-audit: the audit log's format, the writer the kernel keeps, and the verifier a
//! host tool runs on an exported log (brief item 15).
//!
//! - [`Entry`]: 96 bytes. A sequence number, a time, the event's kind, the process,
//!   four arguments, and the chain hash: BLAKE3 of this entry's fields keyed with the
//!   previous entry's hash XOR the log's public key. The public key (and genesis,
//!   which holds it and its time) keys the chain so logs of different boots cannot be
//!   spliced together; it is public, so anyone can recompute the chain. What makes the
//!   chain trustworthy is the signature.
//! - [`Log`]: a ring of entries after the genesis entry (seq 0: the public key;
//!   never overwritten). When the ring is full the oldest entry goes, and the export
//!   says so with a [`Kind::Lost`] marker (how many were lost, and the hash the chain
//!   continues from).
//! - [`Log::export`]: genesis, marker, the entries kept, and the head (the last
//!   sequence number, how many were lost, the last hash, and the reader's nonce)
//!   signed with the per-boot ed25519 key: cutting entries off the start and claiming
//!   them lost changes the signed count, and an old export does not carry the nonce
//!   of a new request (so it cannot be passed off as fresh).
//! - [`Log::checkpoint`]: the head signed at intervals (with a zero nonce), a
//!   [`Checkpoint`] the kernel prints on the console, outside the machine's memory,
//!   before the ring can overwrite what it covers.
//! - [`verify`]: checks all of it against the public key printed at boot and reports
//!   the first entry that was altered, removed or reordered; [`Report::check`] holds
//!   an export against a checkpoint printed earlier.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod checkpoint;
mod entry;
mod verify;

pub use checkpoint::Checkpoint;
pub use entry::{Entry, Kind, ENTRY_SIZE, HASH_LEN};
pub use verify::{verify, Report, Standing, Tamper};

use alloc::vec::Vec;
use ed25519_compact::{KeyPair, Seed};

/// Bytes of the reader's nonce in an export's head.
pub const NONCE_LEN: usize = 16;

/// Bytes of the signed head: the last seq, the entries lost, the last hash, the
/// reader's nonce, and the signature over those.
pub const HEAD_SIZE: usize = 8 + 8 + HASH_LEN + NONCE_LEN + 64;

/// The log the kernel keeps: the genesis entry and a ring of the latest `capacity`
/// entries (on the heap: made once, at boot).
pub struct Log {
    keys: KeyPair,
    genesis: Entry,
    ring: Vec<Entry>,
    /// Entries recorded after genesis (the next seq is `count + 1`).
    count: u64,
    /// The hash of the newest entry, and of the newest one overwritten.
    head: [u8; HASH_LEN],
    lost_head: [u8; HASH_LEN],
    /// `count` at the last checkpoint.
    checkpointed: u64,
}

impl core::fmt::Debug for Log {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Log").field("count", &self.count).finish()
    }
}

impl Log {
    /// A log of `capacity` entries whose key comes from `seed` (32 bytes the kernel
    /// draws at boot from RDRAND; the seed never leaves the kernel). `time` stamps
    /// genesis.
    pub fn new(seed: [u8; 32], time: u64, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let keys = KeyPair::from_seed(Seed::new(seed));
        let genesis = Entry::genesis(&keys.pk, time);
        Log {
            head: genesis.hash,
            lost_head: [0; HASH_LEN],
            genesis,
            keys,
            ring: alloc::vec![Entry::ZERO; capacity],
            count: 0,
            checkpointed: 0,
        }
    }

    /// The public key (printed at boot; the verifier is given it).
    pub fn public_key(&self) -> [u8; 32] {
        *self.keys.pk
    }

    /// Records an event; its sequence number.
    pub fn record(&mut self, kind: Kind, pid: u32, args: [u64; 4], time: u64) -> u64 {
        let seq = self.count + 1;
        let slot = (seq % self.ring.len() as u64) as usize;
        if seq > self.ring.len() as u64 {
            self.lost_head = self.ring[slot].hash;
        }
        let e = Entry::chained(&self.keys.pk, &self.head, seq, time, kind, pid, args);
        self.head = e.hash;
        self.ring[slot] = e;
        self.count = seq;
        seq
    }

    /// Entries overwritten so far.
    pub fn lost(&self) -> u64 {
        self.count.saturating_sub(self.ring.len() as u64)
    }

    /// Bytes the export takes now.
    pub fn export_len(&self) -> usize {
        let kept = (self.count - self.lost()) as usize;
        (1 + usize::from(self.lost() > 0) + kept) * ENTRY_SIZE + HEAD_SIZE
    }

    /// The export: genesis, a `Lost` marker if entries were overwritten, the entries
    /// kept in order, then the head signed with the reader's `nonce`. `None` if memory
    /// for it cannot be had.
    pub fn export(&self, nonce: [u8; NONCE_LEN]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.export_len()).ok()?;
        let signer = self.export_unsigned(&mut out, nonce);
        signer.finish(&mut out);
        Some(out)
    }

    /// Whether `every` entries or more came since the last checkpoint.
    pub fn checkpoint_due(&self, every: u64) -> bool {
        self.count - self.checkpointed >= every.max(1)
    }

    /// What signs a checkpoint of the head now (with a zero nonce: no reader asked
    /// for it), counted as the last checkpoint. The kernel signs after letting go of
    /// its lock, as for an export.
    pub fn checkpoint(&mut self) -> Signer {
        self.checkpointed = self.count;
        self.signer(Purpose::Checkpoint, [0; NONCE_LEN])
    }

    fn signer(&self, purpose: Purpose, nonce: [u8; NONCE_LEN]) -> Signer {
        Signer {
            keys: self.keys.clone(),
            head: head_bytes(
                purpose,
                self.count,
                self.lost(),
                &self.head,
                &nonce,
                &self.genesis.hash,
            ),
        }
    }

    /// The export without its signature, into `out` (which must have room for
    /// `export_len` bytes: nothing here allocates then), and what signs it. The kernel
    /// takes the entries under its lock and signs after letting go of it.
    pub fn export_unsigned(&self, out: &mut Vec<u8>, nonce: [u8; NONCE_LEN]) -> Signer {
        out.extend_from_slice(&self.genesis.to_bytes());
        if self.lost() > 0 {
            out.extend_from_slice(&Entry::lost(self.lost(), self.lost_head).to_bytes());
        }
        for seq in self.lost() + 1..=self.count {
            out.extend_from_slice(&self.ring[(seq % self.ring.len() as u64) as usize].to_bytes());
        }
        self.signer(Purpose::Export, nonce)
    }
}

/// The head of an export, and the key to sign it with.
pub struct Signer {
    keys: KeyPair,
    head: [u8; HEAD_SIGNED],
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// Appends the head and its signature.
    pub fn finish(self, out: &mut Vec<u8>) {
        let sig = self.keys.sk.sign(self.head, None);
        out.extend_from_slice(&self.head[1..=HEAD_EXPORTED]);
        out.extend_from_slice(&sig[..]);
    }

    /// The signed checkpoint (from [`Log::checkpoint`]).
    pub fn sign(self) -> Checkpoint {
        let sig = self.keys.sk.sign(self.head, None);
        let h = &self.head[1..];
        Checkpoint {
            count: u64::from_le_bytes(h[..8].try_into().expect("8 bytes")),
            lost: u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
            hash: h[16..16 + HASH_LEN].try_into().expect("32 bytes"),
            sig: *sig,
        }
    }
}

/// Bytes of the head before its signature in an export.
const HEAD_EXPORTED: usize = 16 + HASH_LEN + NONCE_LEN;

/// Bytes the head's signature covers: what it was signed for, the head as exported,
/// then the genesis hash (not exported again: the verifier has genesis), so genesis
/// is covered too even when a Lost marker stands between it and the entries.
const HEAD_SIGNED: usize = 1 + HEAD_EXPORTED + HASH_LEN;

/// What a head was signed for: a checkpoint's signature is never an export's, even
/// with the same zero nonce.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Purpose {
    Export = 1,
    Checkpoint = 2,
}

/// What the head's signature covers.
fn head_bytes(
    purpose: Purpose,
    count: u64,
    lost: u64,
    hash: &[u8; HASH_LEN],
    nonce: &[u8; NONCE_LEN],
    genesis: &[u8; HASH_LEN],
) -> [u8; HEAD_SIGNED] {
    let mut b = [0u8; HEAD_SIGNED];
    b[0] = purpose as u8;
    let h = &mut b[1..];
    h[..8].copy_from_slice(&count.to_le_bytes());
    h[8..16].copy_from_slice(&lost.to_le_bytes());
    h[16..16 + HASH_LEN].copy_from_slice(hash);
    h[16 + HASH_LEN..HEAD_EXPORTED].copy_from_slice(nonce);
    h[HEAD_EXPORTED..].copy_from_slice(genesis);
    b
}
