//! `WaitQueue`: the one way a thread waits for something in the kernel (a channel's
//! ring, a child's exit, a thread's end).
//!
//! A waiter registers under the queue's lock *with the check that it must wait*
//! ([`WaitQueue::prepare`]), then parks. A waker changes the state first, then takes the
//! queue's lock and wakes every registered thread ([`WaitQueue::wake_all`]). So a
//! wake-up is never lost: either the waiter's check sees the new state, or it was
//! registered before the waker looked (and `unpark` before `park` makes `park` return).
//!
//! Entries belong to a [`Waiter`] guard on the waiting thread's stack: however the wait
//! ends (woken, timed out, killed, an error on the way out) the guard's drop removes
//! the entry, so a queue never keeps a dead thread (its stack, its process) alive, and
//! any number of threads may wait on one queue: all are woken, each re-checks.
//!
//! Lock order: a queue's lock comes before the locks `prepare`'s check takes (a
//! process's state) and before `unpark`'s (the thread's, the run queue's); see the
//! lock table in `sync.rs`. So a waker must not hold the state lock when it wakes.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Thread;
use crate::sync::IrqMutex;

/// Threads waiting for one condition.
pub struct WaitQueue {
    waiters: IrqMutex<Vec<Arc<Thread>>>,
}

/// A registration in a [`WaitQueue`]; dropping it removes the entry.
pub struct Waiter<'q> {
    queue: &'q WaitQueue,
    me: Arc<Thread>,
}

/// Registering needed memory the kernel heap did not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMemory;

impl WaitQueue {
    pub const fn new() -> Self {
        Self {
            waiters: IrqMutex::new(Vec::new()),
        }
    }

    /// Under the queue's lock: if `must_wait()` still holds, registers the calling
    /// thread and returns its guard (then park, and check again when woken); `None`
    /// if it no longer holds. A thread already registered is not added twice.
    pub fn prepare(
        &self,
        must_wait: impl FnOnce() -> bool,
    ) -> Result<Option<Waiter<'_>>, NoMemory> {
        self.prepare_as(&super::current(), must_wait)
    }

    /// [`prepare`](Self::prepare) for `me`, the calling thread (`task::current()`,
    /// looked up once by a caller that waits in a loop).
    pub fn prepare_as(
        &self,
        me: &Arc<Thread>,
        must_wait: impl FnOnce() -> bool,
    ) -> Result<Option<Waiter<'_>>, NoMemory> {
        let mut w = self.waiters.lock();
        if !must_wait() {
            return Ok(None);
        }
        if !w.iter().any(|t| Arc::ptr_eq(t, me)) {
            // Fallible: a full heap is the caller's error, never a kernel panic.
            w.try_reserve(1).map_err(|_| NoMemory)?;
            w.push(me.clone());
        }
        Ok(Some(Waiter {
            queue: self,
            me: me.clone(),
        }))
    }

    /// Wakes every registered thread. `on_wake` runs under the queue's lock, only if
    /// there was somebody to wake (a ring's waiting flag goes down there). Returns how
    /// many were woken.
    pub fn wake_all(&self, on_wake: impl FnOnce()) -> usize {
        let mut w = self.waiters.lock();
        if w.is_empty() {
            return 0;
        }
        on_wake();
        // Under the lock (queue, then each thread's and the run queue's locks: nothing
        // takes them the other way round), so the vector keeps its capacity and a busy
        // channel's wake-ups allocate nothing.
        for t in w.iter() {
            super::unpark(t);
        }
        let n = w.len();
        w.clear();
        n
    }
}

impl WaitQueue {
    /// As [`wake_all`](Self::wake_all), but the first registered thread is not
    /// woken: it comes back as a [`Handoff`](super::Handoff), for the caller to run
    /// in its own place (`park_handing_off`) or, by dropping it, to wake after all.
    pub fn wake_all_handing_off(&self, on_wake: impl FnOnce()) -> Option<super::Handoff> {
        let mut w = self.waiters.lock();
        if w.is_empty() {
            return None;
        }
        on_wake();
        for t in w.iter().skip(1) {
            super::unpark(t);
        }
        // The entry goes (as `wake_all` clears them); its guard finds nothing.
        let first = w.swap_remove(0);
        w.clear();
        Some(super::Handoff::new(first))
    }
}

#[cfg(feature = "ktest")]
impl WaitQueue {
    /// Threads registered now.
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut w = self.queue.waiters.lock();
        // A waker takes every entry out, so after a wake-up there is nothing to find.
        if let Some(i) = w.iter().position(|t| Arc::ptr_eq(t, &self.me)) {
            w.remove(i);
        }
    }
}
