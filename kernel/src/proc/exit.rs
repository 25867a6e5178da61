//! Ending processes: exit (of a thread, of the whole process), faults, kill, and
//! the parent's `wait` that reaps.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use zen_abi::syscall::{Error, FAULT_EXIT_CODE, KILLED_EXIT_CODE};

use super::threads::{MAX_THREAD_EXITS, THREAD_KMEM};
use super::{current, Process, MAX_PROCS, PROCS};
use crate::kprintln;
use crate::task::{self, Thread};

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
    let refusals = u64::from(p.refusals.load(Ordering::Relaxed));
    crate::audit::record_for(zen_audit::Kind::Exit, p.pid, [code, refusals, 0, 0]);
    // The last thread: the process ends, step by step.
    super::teardown::run(&p, code);
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
    // From an exception gate, interrupts are off; teardown takes spin locks that a
    // preempted thread may hold, so it must run preemptible (the interrupted context
    // was user mode on this thread's own stack, and this frame never returns).
    crate::arch::cpu::enable_interrupts();
    exit_current(FAULT_EXIT_CODE)
}

/// On the way back to user mode (end of a system call, an interrupt from user mode):
/// a killed process ends here. `#[inline]`: on every system call's path.
#[inline]
pub fn check_killed() {
    if let Some(p) = current() {
        if p.killed() {
            drop(p);
            // Called on the way back to user mode, from a system call or an interrupt
            // gate (interrupts off): the end runs preemptible, as in `user_fault`.
            crate::arch::cpu::enable_interrupts();
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
            let child = procs
                .get(&u64::from(pid))
                .ok_or(Error::NoSuchProcess)?
                .clone();
            let ci = child.inner.lock();
            if ci.parent != me.pid || pid == me.pid {
                return Err(Error::NoSuchProcess);
            }
            if let Some(code) = ci.exit {
                drop(ci);
                procs.remove(&u64::from(pid));
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
        let target = procs
            .get(&u64::from(pid))
            .ok_or(Error::NoSuchProcess)?
            .clone();
        // Walk up from the target: the caller must be on the way.
        let mut at = pid;
        let mut hops = 0;
        while at != me.pid {
            at = match procs.get(&u64::from(at)) {
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
