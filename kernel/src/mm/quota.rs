//! Kernel-memory quotas: every kernel object a process causes (page tables, thread
//! stacks, grant page lists and granted-page entries, channel holdings, wait
//! entries) is charged to that process before it is allocated, and given back when
//! it is freed. A process over its quota gets `NoMemory`; the kernel never runs out
//! of heap because one process looped.
//!
//! A [`Charge`] is the receipt: it holds its quota and gives the bytes back when
//! dropped, so whatever object carries it (a grant waiting for its receiver after the
//! sender died, a thread's entry) returns its share however it ends.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::syscall::Error;

/// Kernel memory one process may hold: room for its 16 threads' stacks, the page
/// tables of its whole map area, and a few MiB of grants.
pub const KMEM_LIMIT: u64 = 4 << 20;

/// One process's kernel-memory account.
#[derive(Debug)]
pub struct Quota {
    used: AtomicU64,
    limit: u64,
}

impl Quota {
    pub fn new(limit: u64) -> Arc<Quota> {
        Arc::new(Quota {
            used: AtomicU64::new(0),
            limit,
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `bytes` of the quota: `NoMemory` (and nothing taken) if it would go over.
    pub fn take(&self, bytes: u64) -> Result<(), Error> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|&t| t <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Error::NoMemory)
    }

    /// Takes `bytes` whatever the limit (what is already allocated, such as page
    /// tables a charged mapping made, must be counted).
    pub fn force(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Gives back `bytes` taken before.
    pub fn give(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes taken from a quota, given back on drop.
#[derive(Debug)]
pub struct Charge {
    quota: Arc<Quota>,
    bytes: u64,
}

impl Charge {
    /// Takes `bytes` of `quota` for an object about to be allocated.
    pub fn take(quota: &Arc<Quota>, bytes: u64) -> Result<Charge, Error> {
        quota.take(bytes)?;
        Ok(Charge {
            quota: quota.clone(),
            bytes,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.quota.give(self.bytes);
    }
}
