//! The offline check of an exported log: genesis (with the key the verifier expects),
//! an optional `Lost` marker, consecutive entries each chained to the one before, and
//! a head whose signature, count and hash match. The first entry that fails is named.

use crate::entry::{Entry, Kind, ENTRY_SIZE, HASH_LEN};
use crate::{head_bytes, Checkpoint, Purpose, HEAD_SIZE, NONCE_LEN};
use alloc::vec::Vec;
use ed25519_compact::{PublicKey, Signature};

/// A log that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub key: [u8; 32],
    /// Entries overwritten before the export (as the signed head says).
    pub lost: u64,
    /// The entries kept, in order (genesis and marker not included).
    pub entries: Vec<Entry>,
    /// The nonce the reader asked the kernel to sign the head with: a reader that
    /// chose a fresh one compares it, so an older export cannot pass as this one.
    pub nonce: [u8; NONCE_LEN],
    /// The chain hash before the first entry kept (the marker's, or genesis's).
    pub before: [u8; HASH_LEN],
    genesis: [u8; HASH_LEN],
}

/// Where an export stands against a checkpoint it agrees with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The export holds the entry the checkpoint signed, with its hash (or the point
    /// its Lost marker continues from).
    Matches,
    /// The checkpoint's entry was overwritten before the export: nothing to compare.
    Overwritten,
}

impl Report {
    /// Entries recorded after genesis (the last one's seq).
    pub fn count(&self) -> u64 {
        self.lost + self.entries.len() as u64
    }

    /// Holds this export against a checkpoint printed earlier in the same boot: the
    /// checkpoint must be this log's (its signature) and the export must reach it and
    /// agree with it.
    pub fn check(&self, cp: &Checkpoint) -> Result<Standing, Tamper> {
        let pk = PublicKey::from_slice(&self.key).map_err(|_| Tamper::Signature)?;
        let signed = head_bytes(
            Purpose::Checkpoint,
            cp.count,
            cp.lost,
            &cp.hash,
            &[0; NONCE_LEN],
            &self.genesis,
        );
        pk.verify(signed, &Signature::new(cp.sig))
            .map_err(|_| Tamper::CheckpointSignature)?;
        if cp.count > self.count() || cp.lost > self.lost {
            return Err(Tamper::BehindCheckpoint { count: cp.count });
        }
        let at = if cp.count == self.lost {
            Some(self.before)
        } else if cp.count > self.lost {
            Some(self.entries[(cp.count - self.lost - 1) as usize].hash)
        } else {
            None
        };
        match at {
            None => Ok(Standing::Overwritten),
            Some(h) if h == cp.hash => Ok(Standing::Matches),
            Some(_) => Err(Tamper::Checkpoint { count: cp.count }),
        }
    }
}

/// Why a log is refused: the first place it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// Not a log: too short, not whole entries, a record no entry encodes.
    Malformed(&'static str),
    /// The genesis entry holds another key than the one printed at boot.
    WrongKey,
    /// The genesis entry does not hash as it should.
    Genesis,
    /// The entry at this position (0: the first after genesis and marker) is not the
    /// one that belongs there: altered, or entries before it removed or reordered.
    Entry { index: usize, seq: u64 },
    /// The head does not match the last entry, or the lost count the marker states.
    Head,
    /// The head's signature does not verify: it, or the key, is not the log's.
    Signature,
    /// A checkpoint's signature does not verify against this log (another boot's, or
    /// altered).
    CheckpointSignature,
    /// The export ends before a checkpoint printed earlier: entries were cut off the
    /// end, or it is an older export.
    BehindCheckpoint { count: u64 },
    /// The entry a checkpoint signed has another hash in the export: the chain was
    /// rewritten at or before it since.
    Checkpoint { count: u64 },
}

/// Checks `log` (an export) against the public key printed at boot, if given (without
/// one, the key in the log is taken on trust and only the log's integrity is checked).
pub fn verify(log: &[u8], expected: Option<&[u8; 32]>) -> Result<Report, Tamper> {
    if log.len() < ENTRY_SIZE + HEAD_SIZE || !(log.len() - HEAD_SIZE).is_multiple_of(ENTRY_SIZE) {
        return Err(Tamper::Malformed("not whole entries and a head"));
    }
    let (body, head) = log.split_at(log.len() - HEAD_SIZE);
    let mut recs = body.chunks_exact(ENTRY_SIZE);
    let genesis = recs
        .next()
        .and_then(Entry::from_bytes)
        .ok_or(Tamper::Malformed("no genesis entry"))?;
    let key = genesis.key();
    if genesis.kind != Kind::Genesis || genesis.seq != 0 || genesis.pid != 0 {
        return Err(Tamper::Genesis);
    }
    if expected.is_some_and(|k| *k != key) {
        return Err(Tamper::WrongKey);
    }
    if genesis.chain(&key, &[0; HASH_LEN]) != genesis.hash {
        return Err(Tamper::Genesis);
    }
    let mut rest: Vec<Entry> = Vec::new();
    for r in recs {
        rest.push(Entry::from_bytes(r).ok_or(Tamper::Malformed("a record no entry encodes"))?);
    }
    let (lost, before) = match rest.first() {
        Some(m) if m.kind == Kind::Lost => {
            let m = rest.remove(0);
            // Only its count and hash mean anything; anything else is not a marker.
            if m != Entry::lost(m.args[0], m.hash) {
                return Err(Tamper::Malformed(
                    "a lost-entries marker with other fields set",
                ));
            }
            (m.args[0], m.hash)
        }
        _ => (0, genesis.hash),
    };
    let mut prev = before;
    for (index, e) in rest.iter().enumerate() {
        // `lost` is the marker's word: not trusted to leave room for the count.
        let seq = lost.checked_add(1 + index as u64).ok_or(Tamper::Malformed(
            "a lost count past the end of sequence numbers",
        ))?;
        let fits = e.seq == seq
            && !matches!(e.kind, Kind::Genesis | Kind::Lost)
            && e.chain(&key, &prev) == e.hash;
        if !fits {
            return Err(Tamper::Entry { index, seq: e.seq });
        }
        prev = e.hash;
    }
    let count = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let signed_lost = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    let hash: [u8; HASH_LEN] = head[16..16 + HASH_LEN].try_into().expect("32 bytes");
    let nonce: [u8; NONCE_LEN] = head[16 + HASH_LEN..][..NONCE_LEN]
        .try_into()
        .expect("16 bytes");
    let sig =
        Signature::from_slice(&head[16 + HASH_LEN + NONCE_LEN..]).map_err(|_| Tamper::Signature)?;
    let pk = PublicKey::from_slice(&key).map_err(|_| Tamper::Signature)?;
    pk.verify(
        head_bytes(
            Purpose::Export,
            count,
            signed_lost,
            &hash,
            &nonce,
            &genesis.hash,
        ),
        &sig,
    )
    .map_err(|_| Tamper::Signature)?;
    if lost.checked_add(rest.len() as u64) != Some(count) || signed_lost != lost || hash != prev {
        return Err(Tamper::Head);
    }
    Ok(Report {
        key,
        lost,
        entries: rest,
        nonce,
        before,
        genesis: genesis.hash,
    })
}
