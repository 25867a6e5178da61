//! A checkpoint: the log's head signed at an interval, not for a reader (its nonce is
//! zero). The kernel prints each on the console, so a record of the chain leaves the
//! machine's memory before the ring can overwrite what it covers; an export made later
//! must agree with every checkpoint it reaches ([`crate::Report::check`]).
//!
//! As a line: `count=N lost=L hash=<64 hex> sig=<128 hex>` ([`Checkpoint::parse`]
//! finds those words anywhere in a line, such as the kernel's
//! `zen: audit checkpoint count=...`).

use crate::HASH_LEN;

/// The head at a checkpoint and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Entries recorded after genesis when it was made (the last one's seq).
    pub count: u64,
    /// Entries overwritten by then.
    pub lost: u64,
    /// The chain hash of entry `count`.
    pub hash: [u8; HASH_LEN],
    /// ed25519 over the head with a zero nonce and the genesis hash.
    pub sig: [u8; 64],
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != 2 * out.len() {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

impl Checkpoint {
    /// The checkpoint in a line of text, if the line holds one (each of its four
    /// words once, well-formed).
    pub fn parse(line: &str) -> Option<Checkpoint> {
        let mut found = (None, None, None, None);
        for w in line.split_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            match k {
                "count" if found.0.is_none() => found.0 = Some(v.parse().ok()?),
                "lost" if found.1.is_none() => found.1 = Some(v.parse().ok()?),
                "hash" if found.2.is_none() => {
                    let mut h = [0u8; HASH_LEN];
                    hex_into(v, &mut h)?;
                    found.2 = Some(h);
                }
                "sig" if found.3.is_none() => {
                    let mut s = [0u8; 64];
                    hex_into(v, &mut s)?;
                    found.3 = Some(s);
                }
                "count" | "lost" | "hash" | "sig" => return None,
                _ => {}
            }
        }
        Some(Checkpoint {
            count: found.0?,
            lost: found.1?,
            hash: found.2?,
            sig: found.3?,
        })
    }
}

impl core::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "count={} lost={} hash=", self.count, self.lost)?;
        for b in self.hash {
            write!(f, "{b:02x}")?;
        }
        f.write_str(" sig=")?;
        for b in self.sig {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
