//! `CpuArc`: one `Option<Arc<T>>` per CPU, read and replaced by its own CPU only, with
//! no lock. The scheduler keeps the running thread and its owner here, so finding "who
//! is calling" on every system call costs one interrupt-off window and one reference
//! count, not a lock and a search.
//!
//! Why it is sound: every access indexes the cell of the CPU it runs on and runs with
//! interrupts off, so nothing else on that CPU (no interrupt handler, no other thread)
//! can reach the cell meanwhile, and no other CPU ever reaches it at all. The cell
//! hands out clones, never references, and `Arc::clone` cannot re-enter it.

use alloc::sync::Arc;
use core::cell::UnsafeCell;

use super::percpu::{self, MAX_CPUS};

/// One CPU's cell, alone on its cache line (a CPU writes its own on every switch).
#[repr(align(64))]
struct Cell<T: ?Sized>(UnsafeCell<Option<Arc<T>>>);

/// An `Option<Arc<T>>` per CPU; see the module comment.
pub struct CpuArc<T: ?Sized> {
    cells: [Cell<T>; MAX_CPUS],
}

// SAFETY: a CPU only touches its own cell, with interrupts off (see the module
// comment), so sharing the array between CPUs shares no cell; the values themselves
// move between threads, hence `Send + Sync` on `T`.
unsafe impl<T: ?Sized + Send + Sync> Sync for CpuArc<T> {}

impl<T: ?Sized> CpuArc<T> {
    /// Every CPU's cell empty.
    pub const fn new() -> Self {
        Self {
            cells: [const { Cell(UnsafeCell::new(None)) }; MAX_CPUS],
        }
    }

    /// Runs `f` on this CPU's cell with interrupts off.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Option<Arc<T>>) -> R) -> R {
        let were = super::cpu::interrupts_enabled();
        super::cpu::disable_interrupts();
        let cell = &self.cells[percpu::current().id()].0;
        // SAFETY: this CPU's cell, interrupts off, and `f` below is one of this
        // module's own closures (a clone or a swap), which cannot reach the cell
        // again: this is the only reference to it.
        let r = f(unsafe { &mut *cell.get() });
        if were {
            super::cpu::enable_interrupts();
        }
        r
    }

    /// A clone of this CPU's value.
    #[inline]
    pub fn get(&self) -> Option<Arc<T>> {
        self.with(|c| c.clone())
    }

    /// Whether this CPU's cell holds a value.
    #[inline]
    pub fn is_some(&self) -> bool {
        self.with(|c| c.is_some())
    }

    /// Puts `v` in this CPU's cell; returns what was there (the caller drops it, after
    /// the cell is let go).
    #[inline]
    pub fn replace(&self, v: Option<Arc<T>>) -> Option<Arc<T>> {
        self.with(|c| core::mem::replace(c, v))
    }
}

impl<T: ?Sized> Default for CpuArc<T> {
    fn default() -> Self {
        Self::new()
    }
}
