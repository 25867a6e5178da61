//! zen-pool: `LazyPool`, fixed storage for kernel objects with generation-checked handles.
//!
//! Kernel objects (tasks now, channels later) live in pools sized at build time, so the
//! kernel never grows and running out is an explicit, reportable error rather than a
//! heap failure somewhere deep. A pool is:
//!
//! - **fixed**: `N` slots in the pool itself; no heap. `const fn new` lets it sit in a
//!   `static` (behind the kernel's lock);
//! - **lazy**: a slot's value is only constructed when the slot is first handed out;
//!   untouched slots cost nothing but their storage, and [`LazyPool::touched`] says how
//!   many were ever used (the high-water mark);
//! - **O(1)**: a never-used slot is taken by bumping `fresh`; a freed slot goes on an
//!   intrusive free list (LIFO, so a hot slot is reused while still in cache);
//! - **generation-checked**: a [`Handle`] is (index, generation). Freeing a slot bumps
//!   its generation, so every handle to the old object is refused afterwards, the
//!   defence against use-after-free through a stale id. A slot whose generation would
//!   wrap is retired instead of reused, so a handle can never alias a later object.
//!
//! It is not concurrent: the kernel wraps each pool in a lock, and `&mut self` says so.
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

/// Marks the end of the free list. Links are slot index + 1, so an empty pool is all
/// zero bytes and a `static` pool lands in .bss, not in the kernel image.
const NIL: u32 = 0;

/// A reference to a pooled object: slot index plus the generation it was issued at.
///
/// `Copy` and small; `to_raw`/`from_raw` give a `u64` form for object ids in
/// capabilities and system calls. A handle from another pool is not detected (it names
/// a slot by number), so each pool's handles should stay in their own id space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// The slot number, `0 .. N`.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The generation the slot had when this handle was issued.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// `generation << 32 | index`.
    pub const fn to_raw(self) -> u64 {
        (self.generation as u64) << 32 | self.index as u64
    }

    /// The inverse of [`to_raw`](Self::to_raw). Any `u64` is accepted; the pool decides
    /// whether it names a live object.
    pub const fn from_raw(raw: u64) -> Self {
        Self {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

/// One slot. `value` is `None` while free or never used.
struct Slot<T> {
    value: Option<T>,
    /// Bumped on every free; a handle is live only if it matches and `value` is `Some`.
    generation: u32,
    /// Next free slot (index + 1, or `NIL`) while on the free list, else meaningless.
    next_free: u32,
}

/// A fixed pool of `N` slots of `T`; see the crate docs.
pub struct LazyPool<T, const N: usize> {
    slots: [Slot<T>; N],
    /// Head of the list of freed slots (index + 1; all below `fresh`), or `NIL`.
    free_head: u32,
    /// Slots `0 .. fresh` have been used at least once; `fresh .. N` never.
    fresh: u32,
    /// Live objects.
    live: u32,
}

impl<T, const N: usize> core::fmt::Debug for LazyPool<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LazyPool")
            .field("capacity", &N)
            .field("live", &self.live)
            .field("touched", &self.fresh)
            .finish()
    }
}

impl<T, const N: usize> Default for LazyPool<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> LazyPool<T, N> {
    /// Indices are `u32` and `u32::MAX` is the list terminator.
    const FITS: () = assert!(
        N < u32::MAX as usize,
        "LazyPool capacity must be below u32::MAX"
    );

    /// An empty pool; no slot is initialised.
    pub const fn new() -> Self {
        // Evaluating the constant turns an oversized `N` into a compile error.
        #[allow(clippy::let_unit_value)] // reason: forces the compile-time check
        let () = Self::FITS;
        Self {
            slots: [const {
                Slot {
                    value: None,
                    generation: 0,
                    next_free: NIL,
                }
            }; N],
            free_head: NIL,
            fresh: 0,
            live: 0,
        }
    }

    /// Stores `value` and returns its handle, or gives `value` back if the pool is full.
    pub fn alloc(&mut self, value: T) -> Result<Handle, T> {
        let mut value = Some(value);
        // `alloc_with` calls the closure exactly once, and only on success.
        match self.alloc_with(|_| value.take().expect("called once")) {
            Some(h) => Ok(h),
            None => Err(value.take().expect("not consumed on failure")),
        }
    }

    /// Like [`alloc`](Self::alloc), but builds the value from its own handle, for objects
    /// that need to know their id. `f` is not called if the pool is full.
    pub fn alloc_with(&mut self, f: impl FnOnce(Handle) -> T) -> Option<Handle> {
        let index = if self.free_head != NIL {
            let i = self.free_head - 1;
            self.free_head = self.slots[i as usize].next_free;
            i
        } else if (self.fresh as usize) < N {
            // First use of this slot: the lazy part.
            self.fresh += 1;
            self.fresh - 1
        } else {
            return None;
        };
        let slot = &mut self.slots[index as usize];
        let handle = Handle {
            index,
            generation: slot.generation,
        };
        slot.value = Some(f(handle));
        self.live += 1;
        Some(handle)
    }

    /// The slot `h` names, if `h` is live.
    fn live_slot(&self, h: Handle) -> Option<&Slot<T>> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.generation == h.generation && s.value.is_some())
    }

    /// The object, if `h` is live (not freed since it was issued).
    pub fn get(&self, h: Handle) -> Option<&T> {
        self.live_slot(h)?.value.as_ref()
    }

    /// The object, mutably, if `h` is live.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The live object in slot `index` and its current handle. For ids that carry only
    /// the index (the scheduler's 32-bit task ids), where the caller knows the slot
    /// cannot have been reused meanwhile (a task in a run queue is never freed).
    pub fn get_by_index(&self, index: u32) -> Option<(Handle, &T)> {
        let slot = self.slots.get(index as usize)?;
        let value = slot.value.as_ref()?;
        Some((
            Handle {
                index,
                generation: slot.generation,
            },
            value,
        ))
    }

    /// True if `h` names a live object.
    pub fn contains(&self, h: Handle) -> bool {
        self.live_slot(h).is_some()
    }

    /// Removes the object and returns it; `None` (and nothing changes) if `h` is stale,
    /// already freed or out of range. Every other handle to it becomes stale.
    pub fn free(&mut self, h: Handle) -> Option<T> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let value = slot.value.take()?;
        self.live -= 1;
        slot.generation = slot.generation.wrapping_add(1);
        // Retire a slot whose next generation would repeat an old one: reusing it could
        // make a 2^32-frees-old handle valid again. Losing one slot is the safer cost.
        if slot.generation != u32::MAX {
            slot.next_free = self.free_head;
            self.free_head = h.index + 1;
        }
        Some(value)
    }

    /// Live objects.
    pub const fn len(&self) -> usize {
        self.live as usize
    }

    /// True if no object is live.
    pub const fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Slots ever initialised: the pool's high-water mark.
    pub const fn touched(&self) -> usize {
        self.fresh as usize
    }

    /// True if the next `alloc` would fail.
    pub const fn is_full(&self) -> bool {
        self.free_head == NIL && self.fresh as usize == N
    }

    /// Every live object with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> {
        self.slots[..self.fresh as usize]
            .iter()
            .zip(0u32..)
            .filter_map(|(s, index)| {
                s.value.as_ref().map(|v| {
                    (
                        Handle {
                            index,
                            generation: s.generation,
                        },
                        v,
                    )
                })
            })
    }

    /// Every live object, mutably, with its handle, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Handle, &mut T)> {
        self.slots[..self.fresh as usize]
            .iter_mut()
            .zip(0u32..)
            .filter_map(|(s, index)| {
                let generation = s.generation;
                s.value.as_mut().map(|v| (Handle { index, generation }, v))
            })
    }
}

#[cfg(test)]
mod tests;
