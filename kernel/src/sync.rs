//! `IrqMutex`: a spin lock that keeps interrupts off on this CPU while held.
//!
//! Any lock that code with interrupts disabled may take (the scheduler's paths, the
//! timer handler) must be one of these: otherwise a thread preempted while holding it
//! leaves the next thread on the same CPU spinning with interrupts off, forever.
//!
//! # Lock order
//! The one table of every nested lock in the kernel. A lock may be taken while
//! holding only locks above it; never the other way round.
//!
//! | # | lock | where | nested inside it |
//! |---|---|---|---|
//! | 1 | `PROCS` | proc | a process's `inner` (wait, kill, exit reaping) |
//! | 2 | a process's `holdings` | proc, ipc::attach, revoke | `inner` (reserve), the address space |
//! | 3 | a `WaitQueue`'s lock | task::wait | the checked state (`inner`, ring words: atomics), then `unpark`: a thread's `inner`, the run queues |
//! | 4 | a process's `inner` | proc | — |
//! | 5 | a process's `granted` | proc | — (taken inside the address space) |
//! | 6 | a process's address space (`spin::Mutex`) and its tables' lock | proc, arch::user | `granted`; the frame allocator |
//! | 7 | `GRANTS`, `CHANNELS`, a channel's `attached` | ipc | — (never around another) |
//! | 8 | a process's `tokens`, `verified` | proc | — |
//! | 9 | a thread's `inner` | task | the scheduler's run queues |
//! | 10 | the console ring | console | — (the serial port is written outside it) |
//!
//! Wakers change state first and call `WaitQueue::wake_all` with no state lock held
//! (the queue's lock comes before the state locks its waiters' checks take).

use core::ops::{Deref, DerefMut};

use crate::arch::cpu;

pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    were_enabled: bool,
}

impl<T> IrqMutex<T> {
    pub const fn new(v: T) -> Self {
        Self {
            inner: spin::Mutex::new(v),
        }
    }

    pub fn lock(&self) -> IrqGuard<'_, T> {
        let were_enabled = cpu::interrupts_enabled();
        cpu::disable_interrupts();
        IrqGuard {
            guard: Some(self.inner.lock()),
            were_enabled,
        }
    }
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard present until drop")
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard present until drop")
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        // Unlock first, then restore interrupts.
        self.guard.take();
        if self.were_enabled {
            cpu::enable_interrupts();
        }
    }
}
