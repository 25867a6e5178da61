//! The lock and atomics the scheduler uses, swapped for loom's under `--cfg loom`.
//!
//! Normally a `spin::Mutex`: the kernel calls the scheduler with interrupts disabled,
//! where spinning is the only option. Under loom, loom's mutex, so the model checker
//! sees every acquisition and can explore their interleavings (and find deadlocks).

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

/// A mutual-exclusion lock with a `const` constructor outside loom.
pub(crate) struct Mutex<T>(
    #[cfg(not(loom))] spin::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type Guard<'a, T> = spin::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type Guard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self(spin::Mutex::new(value))
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    #[cfg(not(loom))]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        self.0.lock()
    }

    #[cfg(loom)]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        // Poisoning only follows a panic, which already fails the model.
        self.0.lock().unwrap()
    }
}
