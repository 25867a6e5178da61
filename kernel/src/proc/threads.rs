//! A process's threads: create, pin to a CPU, join.

use alloc::sync::Arc;
use zen_abi::syscall::Error;

use super::Process;
use crate::task::{self, Options};

/// Most threads of one process.
pub const MAX_THREADS: usize = 16;

/// Kernel memory a thread costs its process: its 32 KiB kernel stack and the thread
/// object, scheduler entry and bookkeeping.
pub(super) const THREAD_KMEM: u64 = 36 * 1024;

/// Exit codes of unjoined threads kept per process (older ones are dropped).
pub(super) const MAX_THREAD_EXITS: usize = 64;

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
/// while it has never had a second thread: a thread that has ended may still be
/// finishing on the old CPU with the process's tables loaded, and if the process
/// moved and ended elsewhere its tables would be freed under that CPU.
pub fn set_cpu(me: &Process, cpu: usize) -> Result<(), Error> {
    {
        let i = me.inner.lock();
        // Thread ids start at 1 and never come back: 2 means no other thread ever.
        if i.threads.len() > 1 || i.next_tid > 2 {
            return Err(Error::InvalidArgument);
        }
    }
    task::pin_current(cpu).map_err(|_| Error::InvalidArgument)?;
    me.inner.lock().cpu = Some(cpu);
    Ok(())
}

/// Waits for thread `tid` of the caller's process to end; its exit code.
pub fn thread_join(me: &Process, tid: u32) -> Result<u64, Error> {
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
