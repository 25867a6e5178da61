//! Process memory: the map area (`map`, `unmap`, ranges reserved for channels and
//! grants) and the pages a process shares or receives as page grants, with the
//! global granted-page budget.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use zen_abi::syscall::{Error, USER_MAP_BASE};

use super::{Process, MAP_LIMIT_PAGES};
use crate::arch::paging::Flags;
use crate::arch::phys::SharedFrame;

impl Process {
    /// Reserves `pages` of the map area (for a channel's pages, a grant) and counts
    /// them as mapped; `unmap` or `unreserve` gives them back.
    pub fn reserve_map_range(&self, pages: u64) -> Result<u64, Error> {
        let mut i = self.inner.lock();
        if i.mapped.saturating_add(pages) > MAP_LIMIT_PAGES {
            return Err(Error::NoMemory);
        }
        let va = i.next_map;
        i.next_map += pages * 4096;
        i.mapped += pages;
        Ok(va)
    }
    /// Undoes the count of a `reserve_map_range` whose mapping failed (the range stays a
    /// hole).
    pub fn unreserve(&self, pages: u64) {
        let mut i = self.inner.lock();
        i.mapped = i.mapped.saturating_sub(pages);
    }

    /// The frames of `pages` pages at `addr` of the map area, to grant: owned pages
    /// become shared (this process keeps them mapped and holds a reference), pages
    /// already shared by a grant are shared again. `BadAddress` if a page is not
    /// mapped memory of the map area, `Denied` if `write` and one is read-only.
    pub fn share_pages(
        &self,
        addr: u64,
        pages: u64,
        write: bool,
    ) -> Result<Vec<Arc<SharedFrame>>, Error> {
        let end = addr
            .checked_add(pages.checked_mul(4096).ok_or(Error::BadAddress)?)
            .ok_or(Error::BadAddress)?;
        if addr < USER_MAP_BASE || end > self.inner.lock().next_map {
            return Err(Error::BadAddress);
        }
        self.with_space(|s| {
            let mut granted = self.granted.lock();
            // Check every page before changing any.
            for va in (addr..end).step_by(4096) {
                let (_, writable, shared) = s.page_info(va).ok_or(Error::BadAddress)?;
                if shared && !granted.contains_key(&va) {
                    // A channel's page: never granted on.
                    return Err(Error::BadAddress);
                }
                if write && !writable {
                    return Err(Error::Denied);
                }
            }
            let mut frames = Vec::new();
            frames
                .try_reserve_exact(pages as usize)
                .map_err(|_| Error::NoMemory)?;
            let new = (addr..end)
                .step_by(4096)
                .filter(|va| !granted.contains_key(va))
                .count() as u64;
            take_granted(new)?;
            if let Err(e) = self.kmem.take(new * GRANTED_ENTRY_KMEM) {
                give_granted(new);
                return Err(e);
            }
            for va in (addr..end).step_by(4096) {
                let f = match granted.get(&va) {
                    Some(f) => f.clone(),
                    None => {
                        let frame = s.make_shared(va).ok_or(Error::BadAddress)?;
                        let f = Arc::new(SharedFrame::adopt(frame));
                        granted.insert(va, f.clone());
                        f
                    }
                };
                frames.push(f);
            }
            Ok(frames)
        })?
    }

    /// Maps granted frames at a fresh range of the map area; the address.
    pub fn map_granted(&self, frames: &[Arc<SharedFrame>], write: bool) -> Result<u64, Error> {
        let pages = frames.len() as u64;
        take_granted(pages)?;
        if let Err(e) = self.kmem.take(pages * GRANTED_ENTRY_KMEM) {
            give_granted(pages);
            return Err(e);
        }
        let va = match self.reserve_map_range(pages) {
            Ok(va) => va,
            Err(e) => {
                give_granted(pages);
                self.kmem.give(pages * GRANTED_ENTRY_KMEM);
                return Err(e);
            }
        };
        let flags = Flags {
            writable: write,
            user: true,
            executable: false,
        };
        let done = self.map_charged(pages, |s| {
            let mut granted = self.granted.lock();
            for (n, f) in frames.iter().enumerate() {
                let at = va + n as u64 * 4096;
                if s.map_shared(at, f.addr(), flags).is_err() {
                    for m in 0..n as u64 {
                        let _ = s.unmap(va + m * 4096);
                        granted.remove(&(va + m * 4096));
                    }
                    return false;
                }
                granted.insert(at, f.clone());
            }
            true
        });
        if done != Ok(true) {
            give_granted(pages);
            self.kmem.give(pages * GRANTED_ENTRY_KMEM);
            self.unreserve(pages);
            return Err(done.err().unwrap_or(Error::NoMemory));
        }
        Ok(va)
    }
}

/// Entries of every process's `granted` map together: each costs kernel heap, so
/// processes cannot make more than this many (the total RAM of a 256 MiB machine in
/// pages; about 1.5 MiB of heap).
const MAX_GRANTED_PAGES: u64 = 1 << 16;

/// Kernel memory one entry of a process's `granted` map costs it (a B-tree slot of
/// address and `Arc`, with the tree's overhead).
pub(super) const GRANTED_ENTRY_KMEM: u64 = 32;

static GRANTED_PAGES: AtomicU64 = AtomicU64::new(0);

/// Takes `n` of the granted-page budget: `NoMemory` if it is spent.
pub(super) fn take_granted(n: u64) -> Result<(), Error> {
    GRANTED_PAGES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
            cur.checked_add(n).filter(|&t| t <= MAX_GRANTED_PAGES)
        })
        .map(|_| ())
        .map_err(|_| Error::NoMemory)
}

pub(super) fn give_granted(n: u64) {
    GRANTED_PAGES.fetch_sub(n, Ordering::AcqRel);
}

/// A zeroed frame for user memory.
pub fn zeroed_frame() -> Option<crate::mm::Frame> {
    let mut f = crate::mm::alloc_frame()?;
    crate::arch::phys::frame_bytes(&mut f).fill(0);
    Some(f)
}

/// Maps `len` bytes (rounded up to pages) of zeroed memory; returns the address.
pub fn map(me: &Process, len: u64) -> Result<u64, Error> {
    if len == 0 {
        return Err(Error::InvalidArgument);
    }
    let pages = len.div_ceil(4096);
    let va = {
        let mut i = me.inner.lock();
        if i.mapped.saturating_add(pages) > MAP_LIMIT_PAGES {
            return Err(Error::NoMemory);
        }
        let va = i.next_map;
        // Reserve the range first; a failure below leaves a hole, never a clash.
        i.next_map += pages * 4096;
        i.mapped += pages;
        va
    };
    let done = me.map_charged(pages, |s| {
        for n in 0..pages {
            let ok = zeroed_frame()
                .map(|f| {
                    s.map(
                        va + n * 4096,
                        f,
                        Flags {
                            writable: true,
                            user: true,
                            executable: false,
                        },
                    )
                    .is_ok()
                })
                .unwrap_or(false);
            if !ok {
                for m in 0..n {
                    let _ = s.unmap(va + m * 4096);
                }
                return false;
            }
        }
        true
    });
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            me.inner.lock().mapped -= pages;
            return Err(e);
        }
    };
    if !done {
        me.inner.lock().mapped -= pages;
        return Err(Error::NoMemory);
    }
    Ok(va)
}

/// Unmaps `len` bytes at `addr` (page-aligned, all mapped by `map`).
pub fn unmap(me: &Process, addr: u64, len: u64) -> Result<(), Error> {
    if len == 0 || !addr.is_multiple_of(4096) || addr < USER_MAP_BASE {
        return Err(Error::InvalidArgument);
    }
    let pages = len.div_ceil(4096);
    let end = pages
        .checked_mul(4096)
        .and_then(|bytes| addr.checked_add(bytes))
        .ok_or(Error::InvalidArgument)?;
    if end > me.inner.lock().next_map {
        return Err(Error::InvalidArgument);
    }
    let tables = me.with_space(|s| {
        let mut granted = me.granted.lock();
        // Only memory from `map` and mapped grants: a channel's pages (shared, but no
        // grant) stay until exit or revoke, so their holding and mapping go together.
        let ours = |va: u64| match s.page_info(va) {
            Some((_, _, shared)) => !shared || granted.contains_key(&va),
            None => false,
        };
        if !(0..pages).all(|n| ours(addr + n * 4096)) {
            return Err(Error::InvalidArgument);
        }
        let mut released = 0;
        for n in 0..pages {
            let _ = s.unmap_keep_tables(addr + n * 4096);
            // Unmapped first: a granted frame may be freed only once no table has it.
            released += granted.remove(&(addr + n * 4096)).is_some() as u64;
        }
        // Then the tables that emptied, each looked at once.
        s.free_tables_in(addr, pages);
        give_granted(released);
        me.kmem.give(released * GRANTED_ENTRY_KMEM);
        Ok(s.table_frames())
    })??;
    // Tables that emptied were freed: their charge goes back. Granted pages a device
    // was given (`dma_addr`) are no longer the device's either.
    me.sync_tables(tables);
    crate::dev::unpin(me.pid(), &me.kmem, addr, pages);
    let mut i = me.inner.lock();
    i.mapped = i.mapped.saturating_sub(pages);
    Ok(())
}
