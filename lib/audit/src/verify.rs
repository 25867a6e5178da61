//! The offline check of an exported log: genesis (with the key the verifier expects),
//! an optional `Lost` marker, consecutive entries each chained to the one before, and
//! a head whose signature, count and hash match. The first entry that fails is named.

use crate::entry::{Entry, Kind, ENTRY_SIZE, HASH_LEN};
use crate::{head_bytes, HEAD_SIZE};
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
    let (lost, mut prev) = match rest.first() {
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
    let sig = Signature::from_slice(&head[16 + HASH_LEN..]).map_err(|_| Tamper::Signature)?;
    let pk = PublicKey::from_slice(&key).map_err(|_| Tamper::Signature)?;
    pk.verify(head_bytes(count, signed_lost, &hash, &genesis.hash), &sig)
        .map_err(|_| Tamper::Signature)?;
    if lost.checked_add(rest.len() as u64) != Some(count) || signed_lost != lost || hash != prev {
        return Err(Tamper::Head);
    }
    Ok(Report {
        key,
        lost,
        entries: rest,
    })
}
