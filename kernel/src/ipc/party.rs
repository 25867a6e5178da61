//! `Party`: what ipc needs of a process, the caller context every channel call gets.
//! The process layer implements it; ipc never names a process, so calls flow one way
//! (proc → ipc → cap → mm/arch) and ipc can be driven by anything that keeps these
//! promises (a kernel test builds one from a process that never runs).

use alloc::sync::Arc;
use alloc::vec::Vec;
use zen_abi::cap::TokenSlot;
use zen_abi::syscall::Error;

use super::Holding;
use crate::arch::phys::SharedFrame;
use crate::arch::user::AddressSpace;
use crate::cap::Holder;
use crate::mm::quota::Quota;

pub trait Party: Holder + Send + Sync {
    /// The name the policy knows it by (its program's).
    fn program(&self) -> &str;
    /// Killed (or ending): a wait returns at once.
    fn killed(&self) -> bool;
    /// It waits for calls (reply_recv), so its end must fail the calls it took
    /// (`ipc::call::server_gone`).
    fn note_serving(&self);
    /// Its kernel-memory account: channels, holdings, grants and waits are charged here.
    fn quota(&self) -> &Arc<Quota>;
    fn remove_token(&self, slot: usize) -> Result<(), Error>;
    /// Replaces the live token equal to `old` (by MAC) with `new`, in place.
    fn replace_token(&self, old: &TokenSlot, new: TokenSlot);
    /// How many channels it created and still owns.
    fn owned_channels(&self) -> usize;
    /// Records channel `id` as created by it, if it owns fewer than `max`.
    fn own_channel(&self, id: u64, max: usize) -> Result<(), Error>;
    fn disown_channel(&self, id: u64) -> bool;
    /// Its channel holdings, locked (a plain spin lock: its address space's lock is
    /// taken inside it, and a preempted thread may hold that one).
    fn holdings(&self) -> spin::MutexGuard<'_, Vec<Holding>>;
    /// Reserves `pages` of its map area; the address.
    fn reserve_map_range(&self, pages: u64) -> Result<u64, Error>;
    /// Gives back the count of a reservation whose mapping failed.
    fn unreserve(&self, pages: u64);
    /// Runs `f` on its address space with the page tables up to `pages` pages may need
    /// charged first; `f`'s result.
    fn map_in_space(
        &self,
        pages: u64,
        f: &mut dyn FnMut(&AddressSpace) -> bool,
    ) -> Result<bool, Error>;
    /// Runs `f` on its address space; `NoSuchProcess` once it is gone.
    fn in_space(&self, f: &mut dyn FnMut(&AddressSpace)) -> Result<(), Error>;
    /// Its pages at `addr` made shared frames, to grant.
    fn share_pages(
        &self,
        addr: u64,
        pages: u64,
        write: bool,
    ) -> Result<Vec<Arc<SharedFrame>>, Error>;
    /// Granted frames mapped at a fresh range of its map area; the address.
    fn map_granted(&self, frames: &[Arc<SharedFrame>], write: bool) -> Result<u64, Error>;
    /// The granted frame mapped at its page `va` (one it shared out or mapped from a
    /// grant), and whether it maps it writable.
    fn granted_frame(&self, va: u64) -> Option<(Arc<SharedFrame>, bool)>;
    /// Brings its page-table charge up to date after tables were taken out of its
    /// space by another party (a revoke).
    fn resync_tables(&self);
    /// Another live party by pid (where a token or a grant goes).
    fn find(&self, pid: u32) -> Option<Arc<dyn Party>>;
}
