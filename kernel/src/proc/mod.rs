//! Processes: an address space, a thread, a parent, an exit code.
//!
//! A process is created from a program of the boot archive (see `zen_abi::archive`),
//! loaded as a static-PIE ELF by zen-loader at `USER_BASE`, with a stack under
//! `USER_STACK_TOP`. Its thread is a kernel thread that drops to ring 3; system calls
//! and interrupts bring it back onto its own kernel stack.
//!
//! Life cycle: running, then exited (a zombie holding only its exit code: the address
//! space is freed at exit), then reaped by the parent's `wait`. Orphans (whose parent
//! exited first) are reaped at once. A user fault or a `kill` ends a process the same
//! way as `exit`, with the codes `FAULT_EXIT_CODE` and `KILLED_EXIT_CODE`; the kernel
//! carries on.
//!
//! Lock order: `PROCS`, then one process's `inner`. Never the other way round.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use zen_abi::syscall::{Error, ProcInfo};

use crate::arch::phys::SharedFrame;
use crate::arch::user::AddressSpace;
use crate::sync::IrqMutex;
use crate::task::{self, Thread, WaitQueue};

mod exit;
mod memory;
mod spawn;
pub mod teardown;
mod threads;

pub use crate::mm::quota::Quota;
pub use exit::{check_killed, exit_current, kill, thread_exit, user_fault, wait};
pub use memory::{map, unmap};
#[cfg(feature = "ktest")]
pub use spawn::create;
pub use spawn::{archive, spawn_image_with, spawn_with, start_init};
pub use threads::{set_cpu, thread_create, thread_join};
use zen_abi::cap::TokenSlot;

/// Most processes alive (zombies included).
pub const MAX_PROCS: usize = 64;
pub use zen_abi::syscall::MAP_LIMIT_PAGES;

struct Inner {
    parent: u32,
    exit: Option<u64>,
    /// The live threads, with their thread ids (the first is 1).
    threads: Vec<(u32, Arc<Thread>)>,
    next_tid: u32,
    /// Exited threads nobody joined yet: (tid, code).
    thread_exits: Vec<(u32, u64)>,
    /// The code the process ends with, once a thread ended it (exit, fault, kill):
    /// the first cause wins, the other threads end at their next kernel exit.
    ending: Option<u64>,
    /// The CPU every thread runs on, once there is more than one (see `thread_create`).
    cpu: Option<usize>,
    /// Where the next `map` goes.
    next_map: u64,
    /// Pages mapped by `map` and not unmapped.
    mapped: u64,
    /// Pages of the image and stack.
    image_pages: u64,
}

pub struct Process {
    pid: u32,
    name: String,
    /// Its program is the boot archive's of that name (signed code), not an image from
    /// spawn_image: the policy knows it by `name` only then.
    signed: bool,
    arg: Vec<u8>,
    /// Level-4 table the scheduler loads for this process's thread; the kernel's once
    /// the address space is gone.
    root: AtomicU64,
    space: spin::Mutex<Option<AddressSpace>>,
    killed: AtomicBool,
    /// A thread of it has waited for calls (reply_recv): at its end, the calls it took
    /// and did not answer fail (teardown step 4).
    pub(super) serving: AtomicBool,
    /// Refusals this process has caused, audited or not (`audit::REFUSALS_PER_PROCESS`
    /// of them are; its Exit entry says how many in all).
    refusals: AtomicU32,
    inner: IrqMutex<Inner>,
    /// The parent's threads waiting in `wait` for this process to exit.
    exit_queue: WaitQueue,
    /// This process's threads waiting in `thread_join`.
    join_queue: WaitQueue,
    /// The token page, mapped read-only at `TOKEN_PAGE`; only the kernel writes it.
    tokens: IrqMutex<SharedFrame>,
    /// Channels this process created (it owns their lifetime).
    owned: IrqMutex<Vec<u64>>,
    /// Channel ends this process maps: one holding per (channel, end), whose `Arc`
    /// keeps the frames until the pages are unmapped (exit, or a revoke by another).
    /// A plain spin lock, never taken with interrupts off: the address space's lock
    /// is taken inside it, and another thread of the process may hold that one
    /// preempted (with interrupts on, a spinner is preempted in turn).
    holdings: spin::Mutex<Vec<crate::ipc::Holding>>,
    /// Pages of page grants this process maps (as sender or receiver), by address:
    /// each mapping holds its frame until `unmap` or exit.
    granted: IrqMutex<BTreeMap<u64, Arc<SharedFrame>>>,
    /// Kernel memory charged to this process (see `quota`).
    kmem: Arc<Quota>,
    /// The part of `kmem` that is page tables now (resynced after each map/unmap).
    table_bytes: AtomicU64,
    /// Tokens this process presented that verified (see `zen_cap::Verified`): a
    /// channel call with a remembered token skips the MAC computation.
    verified: IrqMutex<zen_cap::Verified<8>>,
}

impl Process {
    /// Puts a token in the first free slot of the token page.
    pub fn insert_token(&self, t: TokenSlot) -> Result<usize, Error> {
        zen_cap::page::insert(self.tokens.lock().token_page(), t).map_err(|_| Error::NoMemory)
    }
    pub fn remove_token(&self, i: usize) -> Result<(), Error> {
        zen_cap::page::remove(self.tokens.lock().token_page(), i)
            .map(|_| ())
            .map_err(|_| Error::InvalidArgument)
    }
    /// Replaces the live token equal to `old` (by MAC) with `new`, in place.
    pub fn replace_token(&self, old: &TokenSlot, new: TokenSlot) {
        let mut f = self.tokens.lock();
        let page = f.token_page();
        let found = zen_cap::page::iter(page)
            .find(|(_, t)| t.token.mac == old.token.mac)
            .map(|(i, _)| i);
        if let Some(i) = found {
            page.slots[i] = new;
        }
    }
    /// Records channel `id` as created by this process, if it owns fewer than `max`.
    pub fn own_channel(&self, id: u64, max: usize) -> Result<(), Error> {
        let mut o = self.owned.lock();
        if o.len() >= max {
            return Err(Error::NoMemory);
        }
        o.try_reserve(1).map_err(|_| Error::NoMemory)?;
        o.push(id);
        Ok(())
    }
    /// Forgets channel `id` as this process's; whether it was.
    pub fn disown_channel(&self, id: u64) -> bool {
        let mut o = self.owned.lock();
        let before = o.len();
        o.retain(|&c| c != id);
        o.len() != before
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn arg(&self) -> &[u8] {
        &self.arg
    }
    pub fn root(&self) -> u64 {
        self.root.load(Ordering::Acquire)
    }
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
    /// Runs `f` on the address space; `Error::NoSuchProcess` once it is gone.
    pub fn with_space<R>(&self, f: impl FnOnce(&AddressSpace) -> R) -> Result<R, Error> {
        self.space
            .lock()
            .as_ref()
            .map(f)
            .ok_or(Error::NoSuchProcess)
    }

    /// This process's kernel-memory account.
    pub fn quota_ref(&self) -> &Arc<Quota> {
        &self.kmem
    }

    /// Runs `f`, which maps up to `pages` pages, with the page tables it may need
    /// charged first (the worst case, `NoMemory` if over quota); afterwards the charge
    /// is what the tables really are.
    pub fn map_charged<R>(
        &self,
        pages: u64,
        f: impl FnOnce(&AddressSpace) -> R,
    ) -> Result<R, Error> {
        // New level-1 tables for `pages` contiguous pages, plus a level-2 and -3 at
        // each end of the range.
        let worst = (pages.div_ceil(512) + 1 + 2 * crate::arch::user::TABLES_PER_MAP) * 4096;
        self.kmem.take(worst)?;
        let r = self.with_space(|s| {
            let r = f(s);
            (r, s.table_frames())
        });
        self.kmem.give(worst);
        let (r, tables) = r?;
        self.sync_tables(tables);
        Ok(r)
    }

    /// Makes the page-table part of the charge `tables` frames (tables freed by
    /// unmap give their share back; new ones were reserved by `map_charged`).
    pub fn sync_tables(&self, tables: u64) {
        let now = tables * 4096;
        let old = self.table_bytes.swap(now, Ordering::AcqRel);
        if now > old {
            // Within the worst case just reserved: may pass the limit only by what
            // the reservation allowed.
            let _ = self
                .kmem
                .take(now - old)
                .map_err(|_| self.kmem.force(now - old));
        } else {
            self.kmem.give(old - now);
        }
    }
}

/// Keyed by pid as a u64, though pids are u32: then this map is the same
/// `BTreeMap<u64, Arc<_>>` as the channel table's, and the compiler merges the two
/// instantiations of the B-tree code (6 KiB of .text).
static PROCS: IrqMutex<BTreeMap<u64, Arc<Process>>> = IrqMutex::new(BTreeMap::new());

static NEXT_PID: AtomicU32 = AtomicU32::new(1);

/// The live process `pid`.
pub fn find(pid: u32) -> Option<Arc<Process>> {
    PROCS
        .lock()
        .get(&u64::from(pid))
        .filter(|p| p.inner.lock().exit.is_none())
        .cloned()
}

/// The calling thread's process. `#[inline]` as `task::current` is: each system call
/// asks.
#[inline]
pub fn current() -> Option<Arc<Process>> {
    let owner: Arc<dyn core::any::Any + Send + Sync> = task::current_owner()?;
    owner.downcast::<Process>().ok()
}

/// The process as cap sees it (cap never names a process).
impl crate::cap::Holder for Process {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn read_user(&self, ptr: u64, out: &mut [u8]) -> Result<(), Error> {
        self.with_space(|s| s.read_into(ptr, out))?
            .ok_or(Error::BadAddress)
    }
    fn verify_token(
        &self,
        key: &zen_cap::MacKey,
        slot: &TokenSlot,
        expected: &zen_abi::cap::Binding,
        required: zen_abi::cap::Rights,
    ) -> Result<zen_abi::cap::Rights, zen_cap::CapError> {
        // Through this process's memo of tokens that verified (`zen_cap::Verified`).
        self.verified.lock().verify(key, slot, expected, required)
    }
    fn insert_token(&self, t: TokenSlot) -> Result<usize, Error> {
        Process::insert_token(self, t)
    }
    fn token_at(&self, i: usize) -> Option<TokenSlot> {
        zen_cap::page::get(self.tokens.lock().token_page(), i)
            .ok()
            .copied()
    }
}

/// The process as ipc sees it: the caller context of every channel call.
impl crate::ipc::Party for Process {
    fn program(&self) -> &str {
        if self.signed {
            &self.name
        } else {
            ""
        }
    }
    fn killed(&self) -> bool {
        Process::killed(self)
    }
    fn note_serving(&self) {
        if !self.serving.load(Ordering::Relaxed) {
            self.serving.store(true, Ordering::Relaxed);
        }
    }
    fn quota(&self) -> &Arc<Quota> {
        &self.kmem
    }
    fn remove_token(&self, slot: usize) -> Result<(), Error> {
        Process::remove_token(self, slot)
    }
    fn replace_token(&self, old: &TokenSlot, new: TokenSlot) {
        Process::replace_token(self, old, new)
    }
    fn own_channel(&self, id: u64, max: usize) -> Result<(), Error> {
        Process::own_channel(self, id, max)
    }
    fn owned_channels(&self) -> usize {
        self.owned.lock().len()
    }
    fn disown_channel(&self, id: u64) -> bool {
        Process::disown_channel(self, id)
    }
    fn holdings(&self) -> spin::MutexGuard<'_, Vec<crate::ipc::Holding>> {
        self.holdings.lock()
    }
    fn reserve_map_range(&self, pages: u64) -> Result<u64, Error> {
        Process::reserve_map_range(self, pages)
    }
    fn unreserve(&self, pages: u64) {
        Process::unreserve(self, pages)
    }
    fn map_in_space(
        &self,
        pages: u64,
        f: &mut dyn FnMut(&AddressSpace) -> bool,
    ) -> Result<bool, Error> {
        self.map_charged(pages, f)
    }
    fn in_space(&self, f: &mut dyn FnMut(&AddressSpace)) -> Result<(), Error> {
        self.with_space(f)
    }
    fn share_pages(
        &self,
        addr: u64,
        pages: u64,
        write: bool,
    ) -> Result<Vec<Arc<SharedFrame>>, Error> {
        Process::share_pages(self, addr, pages, write)
    }
    fn map_granted(&self, frames: &[Arc<SharedFrame>], write: bool) -> Result<u64, Error> {
        Process::map_granted(self, frames, write)
    }
    fn granted_frame(&self, va: u64) -> Option<(Arc<SharedFrame>, bool)> {
        let f = self.granted.lock().get(&va)?.clone();
        let (phys, writable, _) = self.with_space(|s| s.page_info(va)).ok()??;
        (phys == f.addr()).then_some((f, writable))
    }
    fn resync_tables(&self) {
        if let Ok(t) = self.with_space(|s| s.table_frames()) {
            self.sync_tables(t);
        }
    }
    fn find(&self, pid: u32) -> Option<Arc<dyn crate::ipc::Party>> {
        find(pid).map(|p| p as Arc<dyn crate::ipc::Party>)
    }
}

impl task::Owner for Process {
    fn root(&self) -> u64 {
        Process::root(self)
    }
    fn pid(&self) -> u32 {
        self.pid
    }
    fn audit_refusal(&self) -> bool {
        let spent = self.refusals.fetch_add(1, Ordering::Relaxed);
        spent < crate::audit::REFUSALS_PER_PROCESS
    }
}

/// A snapshot of the process table.
pub fn list() -> Vec<ProcInfo> {
    let procs = PROCS.lock();
    procs
        .values()
        .map(|p| {
            let i = p.inner.lock();
            let mut name = [0u8; 16];
            let n = p.name.len().min(16);
            name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
            ProcInfo {
                pid: p.pid,
                parent: i.parent,
                state: i.exit.is_some() as u32,
                threads: i.threads.len() as u32,
                pages: i.mapped + i.image_pages,
                name,
                kmem: p.kmem.used(),
                kmem_limit: p.kmem.limit(),
            }
        })
        .collect()
}
