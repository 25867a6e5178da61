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
//! | # | lock | kind | taken inside it |
//! |---|---|---|---|
//! | 1 | a process's `holdings` | spin, interrupts on | a channel's `attached` (7), the process's `inner` (6), its address space (5) |
//! | 2 | `GRANTS` | Irq | `PROCS` (3) and the receiver's `inner` (6): the liveness check |
//! | 3 | `PROCS` | Irq | processes' `inner` (6) |
//! | 4 | a `WaitQueue`'s lock | Irq | the state its waiters check (a process's `inner` (6); ring words are atomics), then `unpark`: a thread's `inner` (8) and the run queues (9) |
//! | 5 | a process's address space, then its tables' lock | spin, interrupts on | `granted` (6), the frame allocator |
//! | 6 | a process's `inner`, `granted`, `owned`, `tokens`, `verified` | Irq | nothing |
//! | 7 | `CHANNELS`, a channel's `attached` | Irq | nothing, but for `CHANNELS` when a channel leaves it: its calls' ends (7b) |
//! | 7b | a channel's `calls` end (ipc::call) | Irq | `unpark`: a thread's `inner` (8) and the run queues (9) |
//! | 8 | a thread's `inner` | spin, interrupts off | the run queues (9) |
//! | 9 | the scheduler's run queues | zen-sched | nothing |
//! | 10 | the console ring | Irq | nothing (the serial port is written outside it) |
//!
//! The two spin locks taken with interrupts on (1, 5) are never taken with
//! interrupts off (a thread holding one may be preempted: a spinner with interrupts
//! off on the same CPU would wait forever); that is why a fault or kill ends a
//! process with interrupts on.
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

    #[inline]
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
    #[inline]
    fn drop(&mut self) {
        // Unlock first, then restore interrupts.
        self.guard.take();
        if self.were_enabled {
            cpu::enable_interrupts();
        }
    }
}
