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
use zen_abi::archive::Archive;
use zen_abi::syscall::{
    Error, ProcInfo, FAULT_EXIT_CODE, KILLED_EXIT_CODE, USER_BASE, USER_MAP_BASE, USER_STACK_SIZE,
    USER_STACK_TOP,
};

use crate::arch::paging::{self, Flags};
use crate::arch::phys::SharedFrame;
use crate::arch::user::{activate_root, AddressSpace};
use crate::kprintln;
use crate::sync::IrqMutex;
use crate::task::{self, Options, Thread, WaitQueue};

mod quota;
pub use quota::{Charge, Quota, KMEM_LIMIT};
use zen_abi::cap::TokenSlot;

/// Most processes alive (zombies included).
pub const MAX_PROCS: usize = 64;
/// Largest program image.
const IMAGE_LIMIT: u64 = 256 << 20;
/// Most pages one process may `map`: one process cannot take all memory.
pub const MAP_LIMIT_PAGES: u64 = 16384;

static ARCHIVE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/archive.bin"));
static ARCHIVE: spin::Once<Option<Archive<'static>>> = spin::Once::new();

/// The boot archive, or `None` (reported once) if it is damaged.
pub fn archive() -> Option<Archive<'static>> {
    *ARCHIVE.call_once(|| match Archive::parse(ARCHIVE_BYTES) {
        Ok(a) => Some(a),
        Err(e) => {
            kprintln!("zen: boot archive refused: {}", e.as_str());
            None
        }
    })
}

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
    arg: Vec<u8>,
    /// Level-4 table the scheduler loads for this process's thread; the kernel's once
    /// the address space is gone.
    root: AtomicU64,
    space: spin::Mutex<Option<AddressSpace>>,
    killed: AtomicBool,
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
    holdings: IrqMutex<Vec<crate::ipc::Holding>>,
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
    /// Checks a token this process presents (`zen_cap::verify`, through its memo).
    pub fn verify_token(
        &self,
        key: &zen_cap::MacKey,
        slot: &TokenSlot,
        expected: &zen_abi::cap::Binding,
        required: zen_abi::cap::Rights,
    ) -> Result<zen_abi::cap::Rights, zen_cap::CapError> {
        self.verified.lock().verify(key, slot, expected, required)
    }
    pub fn own_channel(&self, id: u64) -> Result<(), Error> {
        let mut o = self.owned.lock();
        o.try_reserve(1).map_err(|_| Error::NoMemory)?;
        o.push(id);
        Ok(())
    }
    pub fn disown_channel(&self, id: u64) {
        self.owned.lock().retain(|&c| c != id);
    }
    /// Runs `f` on the channel holdings, under their lock (taken before the address
    /// space's: `f` may map and unmap).
    pub fn with_holdings<R>(&self, f: impl FnOnce(&mut Vec<crate::ipc::Holding>) -> R) -> R {
        f(&mut self.holdings.lock())
    }
    /// Unmaps this process's pages of channel `id` and returns its holdings of it,
    /// for the caller to drop once no TLB can reach the pages (see `ipc::revoke`).
    pub fn drop_holdings_of(&self, id: u64) -> Vec<crate::ipc::Holding> {
        let mut h = self.holdings.lock();
        let mut taken = Vec::new();
        let mut i = 0;
        while i < h.len() {
            if h[i].chan.id() != id {
                i += 1;
                continue;
            }
            let x = h.swap_remove(i);
            let _ = self.with_space(|s| {
                for p in (0..zen_abi::ipc::CHANNEL_PAGES).filter(|p| x.mapped & 1 << p != 0) {
                    let _ = s.unmap_keep_tables(x.va + p as u64 * 4096);
                }
            });
            self.unreserve(zen_abi::ipc::CHANNEL_PAGES as u64);
            taken.push(x);
        }
        taken
    }
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
    pub fn quota(&self) -> &Arc<Quota> {
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

static PROCS: IrqMutex<BTreeMap<u32, Arc<Process>>> = IrqMutex::new(BTreeMap::new());

/// Entries of every process's `granted` map together: each costs kernel heap, so
/// processes cannot make more than this many (the total RAM of a 256 MiB machine in
/// pages; about 1.5 MiB of heap).
const MAX_GRANTED_PAGES: u64 = 1 << 16;
/// Kernel memory one entry of a process's `granted` map costs it (a B-tree slot of
/// address and `Arc`, with the tree's overhead).
const GRANTED_ENTRY_KMEM: u64 = 32;
static GRANTED_PAGES: AtomicU64 = AtomicU64::new(0);

/// Takes `n` of the granted-page budget: `NoMemory` if it is spent.
fn take_granted(n: u64) -> Result<(), Error> {
    GRANTED_PAGES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
            cur.checked_add(n).filter(|&t| t <= MAX_GRANTED_PAGES)
        })
        .map(|_| ())
        .map_err(|_| Error::NoMemory)
}

fn give_granted(n: u64) {
    GRANTED_PAGES.fetch_sub(n, Ordering::AcqRel);
}
static NEXT_PID: AtomicU32 = AtomicU32::new(1);

/// The live process `pid`.
pub fn find(pid: u32) -> Option<Arc<Process>> {
    PROCS
        .lock()
        .get(&pid)
        .filter(|p| p.inner.lock().exit.is_none())
        .cloned()
}

/// The calling thread's process.
pub fn current() -> Option<Arc<Process>> {
    task::current().process().cloned()
}

/// Loads the program into a fresh address space: (space, entry, pages).
fn load(program: &[u8]) -> Result<(AddressSpace, u64, u64), Error> {
    struct Loader<'a>(&'a AddressSpace);
    impl zen_loader::Target for Loader<'_> {
        fn map(
            &mut self,
            va: u64,
            writable: bool,
            executable: bool,
        ) -> Result<(), zen_loader::LoadError> {
            let frame = zeroed_frame().ok_or(zen_loader::LoadError::NoMemory)?;
            self.0
                .map(
                    va,
                    frame,
                    Flags {
                        writable,
                        user: true,
                        executable,
                    },
                )
                .map_err(|e| match e {
                    paging::MapError::AlreadyMapped => zen_loader::LoadError::Overlap,
                    _ => zen_loader::LoadError::NoMemory,
                })
        }
        fn write(&mut self, va: u64, data: &[u8]) -> Result<(), zen_loader::LoadError> {
            self.0
                .write_image(va, data)
                .ok_or(zen_loader::LoadError::BadSegment)
        }
    }
    let space = AddressSpace::new().ok_or(Error::NoMemory)?;
    let loaded =
        zen_loader::load(program, USER_BASE, IMAGE_LIMIT, &mut Loader(&space)).map_err(|e| {
            kprintln!("zen: cannot load program: {}", e.as_str());
            match e {
                zen_loader::LoadError::NoMemory => Error::NoMemory,
                _ => Error::BadExecutable,
            }
        })?;
    // The stack, with an unmapped guard page below it.
    let stack_pages = USER_STACK_SIZE / 4096;
    for i in 1..=stack_pages {
        let frame = zeroed_frame().ok_or(Error::NoMemory)?;
        space
            .map(
                USER_STACK_TOP - i * 4096,
                frame,
                Flags {
                    writable: true,
                    user: true,
                    executable: false,
                },
            )
            .map_err(|_| Error::NoMemory)?;
    }
    Ok((space, loaded.entry, loaded.pages + stack_pages))
}

/// A zeroed frame for user memory.
pub fn zeroed_frame() -> Option<crate::mm::Frame> {
    let mut f = crate::mm::alloc_frame()?;
    crate::arch::phys::frame_bytes(&mut f).fill(0);
    Some(f)
}

/// Starts program `name` of the boot archive with argument `arg`, as a child of
/// `parent` (0: no parent); returns the pid. `setup` runs on the new process before its thread starts (to give
/// it a token); if it fails, the process is not started.
pub fn spawn_with(
    name: &str,
    arg: &[u8],
    parent: u32,
    setup: impl FnOnce(&Process) -> Result<(), Error>,
) -> Result<u32, Error> {
    let program = archive()
        .and_then(|a| a.find(name))
        .ok_or(Error::NoSuchProgram)?;
    if PROCS.lock().len() >= MAX_PROCS {
        return Err(Error::TooManyProcesses);
    }
    let (space, entry, pages) = load(program)?;
    let tokens = SharedFrame::new().ok_or(Error::NoMemory)?;
    space
        .map_shared(
            zen_abi::syscall::TOKEN_PAGE,
            tokens.addr(),
            Flags {
                writable: false,
                user: true,
                executable: false,
            },
        )
        .map_err(|_| Error::NoMemory)?;
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    let p = Arc::new(Process {
        pid,
        name: String::from(name),
        arg: arg.to_vec(),
        root: AtomicU64::new(space.root()),
        space: spin::Mutex::new(Some(space)),
        killed: AtomicBool::new(false),
        inner: IrqMutex::new(Inner {
            parent,
            exit: None,
            threads: Vec::new(),
            next_tid: 2,
            thread_exits: Vec::new(),
            ending: None,
            cpu: None,
            next_map: USER_MAP_BASE,
            mapped: 0,
            image_pages: pages,
        }),
        exit_queue: WaitQueue::new(),
        join_queue: WaitQueue::new(),
        kmem: Quota::new(KMEM_LIMIT),
        table_bytes: AtomicU64::new(0),
        tokens: IrqMutex::new(tokens),
        owned: IrqMutex::new(Vec::new()),
        holdings: IrqMutex::new(Vec::new()),
        granted: IrqMutex::new(BTreeMap::new()),
        verified: IrqMutex::new(zen_cap::Verified::new()),
    });
    setup(&p)?;
    // In the table before the thread runs, so it can find itself.
    {
        let mut procs = PROCS.lock();
        if procs.len() >= MAX_PROCS {
            return Err(Error::TooManyProcesses);
        }
        procs.insert(pid, p.clone());
    }
    // Its image's page tables and its first thread are its first kernel memory.
    if let Ok(t) = p.with_space(|s| s.table_frames()) {
        p.sync_tables(t);
    }
    p.kmem.force(THREAD_KMEM);
    // Listed before it can run, so its exit finds itself (no IRQs: not preempted).
    let mut i = p.inner.lock();
    match task::spawn_user(Options::new("user"), p.clone(), entry, USER_STACK_TOP, 0) {
        Ok(t) => {
            i.threads.push((1, t));
            Ok(pid)
        }
        Err(_) => {
            drop(i);
            PROCS.lock().remove(&pid);
            Err(Error::NoMemory)
        }
    }
}

/// Most threads of one process.
pub const MAX_THREADS: usize = 16;
/// Kernel memory a thread costs its process: its 32 KiB kernel stack and the thread
/// object, scheduler entry and bookkeeping.
const THREAD_KMEM: u64 = 36 * 1024;
/// Exit codes of unjoined threads kept per process (older ones are dropped).
const MAX_THREAD_EXITS: usize = 64;

/// Ends the calling thread's process with `code` (the first cause wins if another
/// thread ended it already). Never returns.
pub fn exit_current(code: u64) -> ! {
    end_thread(code, true)
}

/// Ends the calling thread with `code` (for `thread_join`); the last thread to end
/// ends the process with its code.
pub fn thread_exit(code: u64) -> ! {
    end_thread(code, false)
}

fn end_thread(code: u64, whole_process: bool) -> ! {
    let p = current().expect("end_thread outside a process");
    let me = task::current();
    let (last, others, code) = {
        let mut i = p.inner.lock();
        if whole_process {
            i.ending.get_or_insert(code);
        }
        let tid = i
            .threads
            .iter()
            .find(|(_, t)| Arc::ptr_eq(t, &me))
            .map(|(id, _)| *id);
        i.threads.retain(|(_, t)| !Arc::ptr_eq(t, &me));
        if let (Some(tid), false) = (tid, whole_process) {
            if i.thread_exits.len() >= MAX_THREAD_EXITS {
                i.thread_exits.remove(0);
            }
            i.thread_exits.push((tid, code));
        }
        let others: Vec<Arc<Thread>> = if i.ending.is_some() {
            i.threads.iter().map(|(_, t)| t.clone()).collect()
        } else {
            Vec::new()
        };
        (i.threads.is_empty(), others, i.ending.unwrap_or(code))
    };
    drop(me);
    // Its stack is freed once the next thread has left it; the account forgets it now.
    p.kmem.give(THREAD_KMEM);
    // After the state changed, with no lock held (see `task::WaitQueue`).
    p.join_queue.wake_all(|| {});
    if !last {
        // The others end at their next return to user mode (or from their sleep).
        if !others.is_empty() {
            p.killed.store(true, Ordering::Release);
            for t in others {
                task::unpark(&t);
            }
        }
        drop(p);
        task::exit(code)
    }
    drop(others);
    // The last thread: the process ends.
    // Off the process's tables before they are freed.
    let kernel = paging::kernel_root();
    p.root.store(kernel, Ordering::Release);
    activate_root(kernel);
    let space = p.space.lock().take();
    drop(space);
    // Granted pages are unmapped with the space: drop our references.
    let granted = core::mem::take(&mut *p.granted.lock());
    give_granted(granted.len() as u64);
    drop(granted);
    // Mappings are gone: the channels may go too.
    let owned = core::mem::take(&mut *p.owned.lock());
    crate::ipc::release_owned(&owned);
    let holdings = core::mem::take(&mut *p.holdings.lock());
    for h in &holdings {
        h.chan.forget(p.pid);
    }
    drop((owned, holdings));
    let orphan = {
        let mut i = p.inner.lock();
        i.exit = Some(code);
        i.thread_exits.clear();
        i.mapped = 0;
        i.image_pages = 0;
        i.parent == 0
    };
    // After `exit` is set (nobody finds us any more), see `ipc::grant_create`.
    crate::ipc::grant::release_grants_to(p.pid);
    {
        // Children outlive their parent as orphans; exited ones are reaped now.
        let mut procs = PROCS.lock();
        let mut reap = Vec::new();
        for (pid, c) in procs.iter() {
            let mut ci = c.inner.lock();
            if ci.parent == p.pid {
                ci.parent = 0;
                if ci.exit.is_some() {
                    reap.push(*pid);
                }
            }
        }
        for pid in reap {
            procs.remove(&pid);
        }
        if orphan {
            procs.remove(&p.pid);
        }
    }
    p.exit_queue.wake_all(|| {});
    drop(p);
    task::exit(code)
}

/// A CPU exception in user mode: the process is killed and the fault reported.
pub fn user_fault(vector: u8, error: u64, rip: u64, cr2: u64) -> ! {
    let (pid, name) = current().map_or((0, String::new()), |p| (p.pid, p.name.clone()));
    if vector == 14 {
        kprintln!(
            "zen: process {} ({}) killed: page fault at rip={:#x}, address {:#x} ({} {})",
            pid,
            name,
            rip,
            cr2,
            if error & 1 != 0 {
                "protection violation,"
            } else {
                "unmapped,"
            },
            if error & 2 != 0 { "write" } else { "read" }
        );
        crate::edge::report_detail(zen_edge::EdgeKind::PageFault, error as u16, cr2 as u32);
    } else {
        kprintln!(
            "zen: process {} ({}) killed: exception {} at rip={:#x}, error {:#x}",
            pid,
            name,
            vector,
            rip,
            error
        );
        let kind = if vector == 13 {
            zen_edge::EdgeKind::GeneralProtection
        } else {
            zen_edge::EdgeKind::Exception
        };
        let detail = if vector == 13 {
            error as u16
        } else {
            vector as u16
        };
        crate::edge::report_detail(kind, detail, rip as u32);
    }
    // This stack is never unwound: free what it holds first.
    drop(name);
    exit_current(FAULT_EXIT_CODE)
}

/// On the way back to user mode (end of a system call, an interrupt from user mode):
/// a killed process ends here.
pub fn check_killed() {
    if let Some(p) = current() {
        if p.killed() {
            drop(p);
            exit_current(KILLED_EXIT_CODE);
        }
    }
}

/// Waits for child `pid` to exit, reaps it and returns its exit code. Several
/// threads may wait for one child: all are woken, one reaps, the others get
/// `NoSuchProcess`.
pub fn wait(me: &Process, pid: u32) -> Result<u64, Error> {
    loop {
        let child = {
            let mut procs = PROCS.lock();
            let child = procs.get(&pid).ok_or(Error::NoSuchProcess)?.clone();
            let ci = child.inner.lock();
            if ci.parent != me.pid || pid == me.pid {
                return Err(Error::NoSuchProcess);
            }
            if let Some(code) = ci.exit {
                drop(ci);
                procs.remove(&pid);
                return Ok(code);
            }
            drop(ci);
            child
        };
        // Registered under the queue's lock with the check, so an exit between the
        // look above and here is seen (then: round again, and reap).
        let waiter = child
            .exit_queue
            .prepare(|| child.inner.lock().exit.is_none())
            .map_err(|_| Error::NoMemory)?;
        if waiter.is_none() {
            continue;
        }
        if me.killed() {
            // The guard drops the entry; the system-call exit path ends the process
            // (`check_killed`).
            return Err(Error::NoSuchProcess);
        }
        task::park();
    }
}

/// Kills `pid`, which must be the caller or one of its descendants; nobody may kill
/// process 1 (init).
pub fn kill(me: &Process, pid: u32) -> Result<(), Error> {
    if pid == 1 {
        return Err(Error::Denied);
    }
    let target = {
        let procs = PROCS.lock();
        let target = procs.get(&pid).ok_or(Error::NoSuchProcess)?.clone();
        // Walk up from the target: the caller must be on the way.
        let mut at = pid;
        let mut hops = 0;
        while at != me.pid {
            at = match procs.get(&at) {
                Some(p) if hops < MAX_PROCS => p.inner.lock().parent,
                _ => return Err(Error::Denied),
            };
            hops += 1;
            if at == 0 {
                return Err(Error::Denied);
            }
        }
        target
    };
    target.killed.store(true, Ordering::Release);
    let threads: Vec<Arc<Thread>> = target
        .inner
        .lock()
        .threads
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    for t in threads {
        task::unpark(&t);
    }
    Ok(())
}

/// Starts a thread of the caller's process in user mode at `rip`, with stack `rsp`
/// and `rdi = arg`; its thread id.
///
/// Every thread of a process runs on one CPU: the caller is pinned where it is when
/// it makes its first thread, and new threads join it. So an address space is only
/// ever live on one CPU, and unmapping needs no TLB shootdown between CPUs; processes
/// (not threads) spread over CPUs. Threads give a process concurrency (one blocks,
/// another runs), not parallelism, until shootdowns exist.
pub fn thread_create(me: &Arc<Process>, rip: u64, rsp: u64, arg: u64) -> Result<u64, Error> {
    if rip >= zen_abi::syscall::USER_END || rsp >= zen_abi::syscall::USER_END {
        return Err(Error::InvalidArgument);
    }
    if me.inner.lock().threads.len() >= MAX_THREADS {
        return Err(Error::NoMemory);
    }
    let pinned = me.inner.lock().cpu;
    let cpu = match pinned {
        Some(c) => c,
        None => {
            let c = task::this_cpu();
            task::pin_current(c).map_err(|_| Error::NoMemory)?;
            me.inner.lock().cpu = Some(c);
            c
        }
    };
    // Listed before it can run (it is pinned to this CPU, whose IRQs the lock holds off),
    // so its exit finds itself.
    let mut i = me.inner.lock();
    if i.threads.len() >= MAX_THREADS || i.ending.is_some() {
        return Err(Error::NoMemory);
    }
    me.kmem.take(THREAD_KMEM)?;
    let t = match task::spawn_user(Options::new("user").pin(cpu), me.clone(), rip, rsp, arg) {
        Ok(t) => t,
        Err(_) => {
            me.kmem.give(THREAD_KMEM);
            return Err(Error::NoMemory);
        }
    };
    let tid = i.next_tid;
    i.next_tid += 1;
    i.threads.push((tid, t));
    Ok(tid as u64)
}

/// Moves the caller's process to CPU `cpu` for good (its future threads too). Only
/// while it has one thread: moving several at once is not worth its races yet.
pub fn set_cpu(me: &Process, cpu: u64) -> Result<(), Error> {
    let cpu = usize::try_from(cpu).map_err(|_| Error::InvalidArgument)?;
    if me.inner.lock().threads.len() > 1 {
        return Err(Error::InvalidArgument);
    }
    task::pin_current(cpu).map_err(|_| Error::InvalidArgument)?;
    me.inner.lock().cpu = Some(cpu);
    Ok(())
}

/// Waits for thread `tid` of the caller's process to end; its exit code.
pub fn thread_join(me: &Process, tid: u64) -> Result<u64, Error> {
    let tid = u32::try_from(tid).map_err(|_| Error::NoSuchProcess)?;
    let current = task::current();
    loop {
        {
            let mut i = me.inner.lock();
            if let Some(pos) = i.thread_exits.iter().position(|(t, _)| *t == tid) {
                return Ok(i.thread_exits.remove(pos).1);
            }
            match i.threads.iter().find(|(t, _)| *t == tid) {
                None => return Err(Error::NoSuchProcess),
                Some((_, t)) if Arc::ptr_eq(t, &current) => return Err(Error::InvalidArgument),
                Some(_) => {}
            }
        }
        let waiter = me
            .join_queue
            .prepare(|| me.inner.lock().threads.iter().any(|(t, _)| *t == tid))
            .map_err(|_| Error::NoMemory)?;
        if waiter.is_none() {
            continue;
        }
        if me.killed() {
            return Err(Error::NoSuchProcess);
        }
        task::park();
    }
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
    let end = addr
        .checked_add(pages * 4096)
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
            let _ = s.unmap(addr + n * 4096);
            // Unmapped first: a granted frame may be freed only once no table has it.
            released += granted.remove(&(addr + n * 4096)).is_some() as u64;
        }
        give_granted(released);
        me.kmem.give(released * GRANTED_ENTRY_KMEM);
        Ok(s.table_frames())
    })??;
    // Tables that emptied were freed: their charge goes back.
    me.sync_tables(tables);
    let mut i = me.inner.lock();
    i.mapped = i.mapped.saturating_sub(pages);
    Ok(())
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

/// Starts the first process: the program named by `init=` on the command line, or
/// `init`. Without a boot archive (a bare kernel build) there is none.
pub fn start_init(cmdline: &str) {
    let Some(a) = archive() else { return };
    if a.is_empty() {
        kprintln!("zen: no programs in the boot archive, no init");
        return;
    }
    let name = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("init="))
        .unwrap_or("init");
    let arg = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("arg="))
        .unwrap_or("");
    // init alone starts with the system token (POWER, GRANT): it decides who else
    // may power the machine off.
    let give_system = |p: &Process| {
        p.insert_token(crate::cap::system_token(p.pid()))
            .map(|_| ())
    };
    match spawn_with(name, arg.as_bytes(), 0, give_system) {
        Ok(pid) => kprintln!("zen: started {} as process {}", name, pid),
        Err(e) => kprintln!("zen: cannot start {}: {}", name, e.as_str()),
    }
}
