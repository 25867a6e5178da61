//! Making processes: the boot archive, loading a program into a fresh address space,
//! `spawn_with`, and init.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use zen_abi::archive::Archive;
use zen_abi::syscall::{Error, USER_BASE, USER_MAP_BASE, USER_STACK_SIZE, USER_STACK_TOP};

use super::memory::zeroed_frame;
use super::threads::THREAD_KMEM;
use super::{Inner, Process, Quota, MAX_PROCS, NEXT_PID, PROCS};
use crate::arch::paging::{self, Flags};
use crate::arch::phys::SharedFrame;
use crate::arch::user::AddressSpace;
use crate::kprintln;
use crate::sync::IrqMutex;
use crate::task::{self, Options, WaitQueue};

/// Largest program image of the boot archive (its programs are the system's own).
const IMAGE_LIMIT: u64 = 256 << 20;
/// Largest image (in memory, bss included) of a program from spawn_image: no more
/// than any process may map anyway, so a program from memory takes no more frames
/// than its caller could (the loader maps every page up front).
const SPAWNED_IMAGE_LIMIT: u64 = zen_abi::syscall::MAP_LIMIT_PAGES * 4096;

static ARCHIVE: spin::Once<Option<Archive<'static>>> = spin::Once::new();

/// The boot archive (after the kernel in `zenos.bin`), or `None` (reported once) if it
/// is damaged or absent.
pub fn archive() -> Option<Archive<'static>> {
    *ARCHIVE.call_once(|| {
        let bytes = crate::BOOT_INFO
            .get()
            .map_or(&[][..], |b| crate::arch::boot_archive(b));
        if bytes.is_empty() {
            kprintln!("zen: no boot archive after the kernel, no init");
            return None;
        }
        match Archive::parse(bytes) {
            Ok(a) => Some(a),
            Err(e) => {
                kprintln!("zen: boot archive refused: {}", e.as_str());
                None
            }
        }
    })
}

/// Loads the program into a fresh address space: (space, entry, pages).
fn load(program: &[u8], limit: u64) -> Result<(AddressSpace, u64, u64), Error> {
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
    let loaded = zen_loader::load(program, USER_BASE, limit, &mut Loader(&space)).map_err(|e| {
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

/// Starts program `name` of the boot archive with argument `arg`, as a child of
/// `parent` (`None`: the kernel's own, init), if the policy lets the parent; returns
/// the pid. `setup` runs on the new process before its thread starts (to give it a
/// token); if it fails, the process is not started.
pub fn spawn_with(
    name: &str,
    arg: &[u8],
    parent: Option<&Process>,
    setup: impl FnOnce(&Process) -> Result<(), Error>,
) -> Result<u32, Error> {
    if let Some(pp) = parent {
        crate::policy::spawn(crate::ipc::Party::program(pp), name, name)?;
    }
    let (p, entry) = create(name, arg, parent.map_or(0, |p| p.pid))?;
    setup(&p)?;
    start(p, entry)
}

/// As [`spawn_with`], for a program image from the caller (spawn_image) instead of
/// the boot archive, run under `name`: never the name of a boot-archive program,
/// which the policy knows as that program's signed code.
pub fn spawn_image_with(
    image: &[u8],
    name: &str,
    arg: &[u8],
    parent: &Process,
    setup: impl FnOnce(&Process) -> Result<(), Error>,
) -> Result<u32, Error> {
    if archive().is_some_and(|a| a.find(name).is_some()) {
        return Err(crate::policy::reserved(name));
    }
    // Its code is not the image's: the policy knows it as no program (`any` rules).
    crate::policy::spawn(crate::ipc::Party::program(parent), "", name)?;
    let (p, entry) = create_from(image, name, false, arg, parent.pid, SPAWNED_IMAGE_LIMIT)?;
    setup(&p)?;
    start(p, entry)
}

/// Program `name` loaded into a new process that is in no table and has no thread
/// yet (dropping it frees everything), and its entry point. Also what the kernel
/// tests use to build a process they take apart step by step.
pub fn create(name: &str, arg: &[u8], parent: u32) -> Result<(Arc<Process>, u64), Error> {
    let program = archive()
        .and_then(|a| a.find(name))
        .ok_or(Error::NoSuchProgram)?;
    create_from(program, name, true, arg, parent, IMAGE_LIMIT)
}

/// `program` (an ELF image, checked by the loader, at most `limit` bytes loaded) in
/// a new process named `name`, `signed` if it is the boot archive's program of that
/// name (then the policy knows it by the name).
fn create_from(
    program: &[u8],
    name: &str,
    signed: bool,
    arg: &[u8],
    parent: u32,
    limit: u64,
) -> Result<(Arc<Process>, u64), Error> {
    if PROCS.lock().len() >= MAX_PROCS {
        return Err(Error::TooManyProcesses);
    }
    let (space, entry, pages) = load(program, limit)?;
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
        signed,
        arg: arg.to_vec(),
        root: AtomicU64::new(space.root()),
        space: spin::Mutex::new(Some(space)),
        killed: AtomicBool::new(false),
        serving: AtomicBool::new(false),
        refusals: core::sync::atomic::AtomicU32::new(0),
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
        kmem: Quota::new(crate::policy::memory(if signed { name } else { "" })),
        table_bytes: AtomicU64::new(0),
        tokens: IrqMutex::new(tokens),
        owned: IrqMutex::new(Vec::new()),
        holdings: spin::Mutex::new(Vec::new()),
        granted: IrqMutex::new(BTreeMap::new()),
        verified: IrqMutex::new(zen_cap::Verified::new()),
    });
    // Its image's page tables are its first kernel memory.
    if let Ok(t) = p.with_space(|s| s.table_frames()) {
        p.sync_tables(t);
    }
    Ok((p, entry))
}

/// Puts a created process in the table and starts its first thread at `entry`.
fn start(p: Arc<Process>, entry: u64) -> Result<u32, Error> {
    let pid = p.pid;
    // In the table before the thread runs, so it can find itself.
    {
        let mut procs = PROCS.lock();
        if procs.len() >= MAX_PROCS {
            return Err(Error::TooManyProcesses);
        }
        procs.insert(pid.into(), p.clone());
    }
    p.kmem.force(THREAD_KMEM);
    // Listed before it can run, so its exit finds itself (no IRQs: not preempted).
    let mut i = p.inner.lock();
    match task::spawn_user(Options::new("user"), p.clone(), entry, USER_STACK_TOP, 0) {
        Ok(t) => {
            i.threads.push((1, t));
            crate::audit::record_for(zen_audit::Kind::Spawn, i.parent, [u64::from(pid), 0, 0, 0]);
            Ok(pid)
        }
        Err(_) => {
            // Never ran: out of the table again, and a parent already waiting for this
            // pid wakes to find it gone (NoSuchProcess) instead of sleeping forever.
            i.exit = Some(zen_abi::syscall::KILLED_EXIT_CODE);
            drop(i);
            PROCS.lock().remove(&u64::from(pid));
            p.exit_queue.wake_all(|| {});
            Err(Error::NoMemory)
        }
    }
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
    match spawn_with(name, arg.as_bytes(), None, give_system) {
        Ok(pid) => kprintln!("zen: started {} as process {}", name, pid),
        Err(e) => kprintln!("zen: cannot start {}: {}", name, e.as_str()),
    }
}
