//! Making threads: kernel threads running a closure, user threads of a process, with
//! their options (tickets, real-time class, a CPU to pin to).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use zen_sched::TaskDesc;

use super::{
    irqs_off, kick, switch, this_cpu, thread_entry, Entry, Inner, Owner, SpawnError, Thread,
    DEFAULT_TICKETS, SCHED, STACK_BYTES, THREADS,
};
use crate::arch::{self, percpu};

/// A spawned thread, to join.
pub struct JoinHandle(pub(super) Arc<Thread>);

impl JoinHandle {
    pub fn thread(&self) -> &Arc<Thread> {
        &self.0
    }
}

/// Options for [`spawn`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub name: &'static str,
    pub tickets: u16,
    pub realtime: bool,
    pub pin: Option<usize>,
}

impl Options {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            tickets: DEFAULT_TICKETS,
            realtime: false,
            pin: None,
        }
    }
    pub const fn tickets(mut self, t: u16) -> Self {
        self.tickets = t;
        self
    }
    pub const fn pin(mut self, cpu: usize) -> Self {
        self.pin = Some(cpu);
        self
    }
    pub const fn realtime(mut self) -> Self {
        self.realtime = true;
        self
    }
}

/// Creates a kernel thread running `f`; its return value is the exit code.
pub fn spawn(
    opts: Options,
    f: impl FnOnce() -> u64 + Send + 'static,
) -> Result<JoinHandle, SpawnError> {
    spawn_inner(opts, None, Entry::Kernel(Box::new(f))).map(JoinHandle)
}

/// Creates a detached thread of `owner` that enters user mode at `rip` with stack
/// `rsp` and `rdi = arg` (it runs on the owner's address space and is never joined; the owner
/// tracks its end).
pub fn spawn_user(
    opts: Options,
    owner: Arc<dyn Owner>,
    rip: u64,
    rsp: u64,
    arg: u64,
) -> Result<Arc<Thread>, SpawnError> {
    spawn_inner(opts, Some(owner), Entry::User { rip, rsp, arg })
}

fn spawn_inner(
    opts: Options,
    owner: Option<Arc<dyn Owner>>,
    entry: Entry,
) -> Result<Arc<Thread>, SpawnError> {
    if let Some(p) = opts.pin {
        if percpu::cpu(p).is_none_or(|c| !c.is_online()) {
            return Err(SpawnError::NoSuchCpu);
        }
    }
    // Fallible: processes make threads, and a full heap must be their error, not a
    // kernel panic.
    let mut stack = Vec::new();
    stack
        .try_reserve_exact(STACK_BYTES / 8)
        .map_err(|_| SpawnError::NoMemory)?;
    stack.resize(STACK_BYTES / 8, 0u64);
    let mut stack = stack.into_boxed_slice();
    let mut fpu = if owner.is_some() {
        Some(arch::fpu::FpuArea::try_new().ok_or(SpawnError::NoMemory)?)
    } else {
        None
    };
    // 16-byte aligned, as the CPU leaves it on an interrupt from user mode anyway.
    let kstack_top = (stack.as_ptr() as u64 + STACK_BYTES as u64) & !15;
    let detached = owner.is_some();
    let t = irqs_off(|| {
        let mut pool = THREADS.lock();
        let handle = pool
            .alloc_with(|handle| {
                let rsp = switch::init_stack(&mut stack, thread_entry, 0);
                Arc::new(Thread {
                    handle,
                    name: opts.name,
                    saved_rsp: AtomicU64::new(rsp),
                    on_cpu: AtomicBool::new(false),
                    last_cpu: AtomicU32::new(opts.pin.unwrap_or_else(this_cpu) as u32),
                    ticks_run: AtomicU64::new(0),
                    inner: Mutex::new(Inner::new(Some(entry), detached)),
                    owner,
                    kstack_top,
                    fpu: fpu.take(),
                    _stack: Some(core::mem::take(&mut stack)),
                })
            })
            .ok_or(SpawnError::TooManyThreads)?;
        Ok(pool.get(handle).cloned().expect("just allocated"))
    })?;
    let id = t.handle.index();
    let mut desc = if opts.realtime {
        TaskDesc::realtime(id)
    } else {
        TaskDesc::stride(id, opts.tickets.max(1))
    };
    if let Some(p) = opts.pin {
        desc = desc.pinned(p as u8);
    }
    let target = t.last_cpu.load(Ordering::Relaxed) as usize;
    if irqs_off(|| SCHED.enqueue(target, desc)).is_err() {
        irqs_off(|| THREADS.lock().free(t.handle));
        return Err(SpawnError::QueueFull);
    }
    kick(target);
    Ok(t)
}
