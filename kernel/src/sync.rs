//! `IrqMutex`: a spin lock that keeps interrupts off on this CPU while held.
//!
//! Any lock that code with interrupts disabled may take (the scheduler's paths, the
//! timer handler) must be one of these: otherwise a thread preempted while holding it
//! leaves the next thread on the same CPU spinning with interrupts off, forever.

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
