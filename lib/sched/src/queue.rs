//! One CPU's run queue: the scheduling policy itself, single-threaded.
//!
//! Waiting tasks sit in a fixed circular buffer in arrival order; the running task is
//! held apart in `current`. Picking scans the buffer: the first real-time task in ring
//! order wins (so re-queuing the current one at the tail is round-robin), otherwise the
//! stride task with the smallest pass (ties to the earlier in ring order, which is FIFO).
//! A scan of at most `CAP` 20-byte entries is a few cache lines, cheaper in practice
//! than keeping a heap ordered under removals and steals.
//!
//! All methods take `&mut self`; locking is the caller's business (see `Scheduler`).

use crate::task::{TaskDesc, TaskId};

/// The running task. Not `Option<TaskDesc>`: its niche would make "none" a non-zero
/// byte pattern, and an empty queue must be all zeros so a kernel's static scheduler
/// lands in .bss rather than in the kernel image.
#[derive(Clone, Copy)]
struct Running {
    some: bool,
    desc: TaskDesc,
}

impl Running {
    const NONE: Self = Self {
        some: false,
        desc: TaskDesc::EMPTY,
    };

    fn get(&self) -> Option<TaskDesc> {
        self.some.then_some(self.desc)
    }

    fn take(&mut self) -> Option<TaskDesc> {
        let r = self.get();
        self.some = false;
        r
    }

    fn set(&mut self, t: TaskDesc) {
        *self = Self {
            some: true,
            desc: t,
        };
    }

    fn as_mut(&mut self) -> Option<&mut TaskDesc> {
        if self.some {
            Some(&mut self.desc)
        } else {
            None
        }
    }
}

/// Charge units in one full quantum; see [`RunQueue::charge`].
pub const QUANTUM: u32 = 1024;

/// A run queue of at most `CAP` tasks (waiting plus running), cache-line aligned so
/// two CPUs' queues never share a line.
#[repr(align(64))]
pub struct RunQueue<const CAP: usize> {
    /// The virtual time: the pass of the last stride task picked, brought up to the
    /// smallest runnable pass when a task joins or leaves. Never decreases (modulo
    /// 2^64), and every runnable stride task's pass is at or after it.
    vtime: u64,
    /// The running task, out of the ring while it runs.
    current: Running,
    /// Whether `current` has been charged since it was picked; an uncharged dispatch
    /// still costs one unit, so a task yielding in a loop cannot stall the queue.
    charged: bool,
    /// Index in `ring` of the oldest waiting task.
    head: usize,
    /// Waiting tasks.
    len: usize,
    /// Waiting tasks that may be stolen (unpinned).
    stealable: usize,
    /// Waiting real-time tasks.
    rt_waiting: usize,
    ring: [TaskDesc; CAP],
}

impl<const CAP: usize> core::fmt::Debug for RunQueue<CAP> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunQueue")
            .field("vtime", &self.vtime)
            .field("current", &self.current.get())
            .field("waiting", &self.len)
            .finish()
    }
}

impl<const CAP: usize> Default for RunQueue<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> RunQueue<CAP> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            vtime: 0,
            current: Running::NONE,
            charged: false,
            head: 0,
            len: 0,
            stealable: 0,
            rt_waiting: 0,
            ring: [TaskDesc::EMPTY; CAP],
        }
    }

    /// Adds a runnable task whose `pass` is a lag (0 for a new task). Returns whether
    /// the running task should be preempted for it (a real-time task arriving while a
    /// stride task or nothing runs), or gives the task back if the queue is full.
    pub fn push(&mut self, mut task: TaskDesc) -> Result<bool, TaskDesc> {
        if self.tasks() >= CAP {
            return Err(task);
        }
        if !task.is_rt() {
            // Join at the virtual time plus the lag the task left with: a newcomer
            // competes from now on, neither owed the past nor charged for it.
            self.sync_vtime();
            task.set_pass(self.vtime.wrapping_add(task.pass()));
        }
        let preempt = task.is_rt() && !self.current.get().is_some_and(|c| c.is_rt());
        self.ring_push(task);
        Ok(preempt)
    }

    /// Ends the current task's turn (re-queuing it at the tail if it is still there) and
    /// makes the next task current. `None` if nothing is runnable.
    pub fn pick(&mut self) -> Option<TaskId> {
        if !self.charged {
            self.charge(1);
        }
        if let Some(cur) = self.current.take() {
            // It left the ring when picked and `push` counts it, so there is room.
            self.ring_push(cur);
        }
        self.charged = false;
        let pos = self.select()?;
        let task = self.ring_remove(pos);
        if !task.is_rt() {
            self.vtime = task.pass();
        }
        self.current.set(task);
        Some(task.id())
    }

    /// Charges the running task for `units` of CPU time (`QUANTUM` = one full quantum;
    /// at least 1): its pass advances by `stride * units / QUANTUM`, rounded up.
    /// Real-time tasks are not charged.
    pub fn charge(&mut self, units: u32) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        self.charged = true;
        if cur.is_rt() {
            return;
        }
        let units = u64::from(units.max(1));
        let cost = (u64::from(cur.stride_len()) * units).div_ceil(u64::from(QUANTUM));
        cur.set_pass(cur.pass().wrapping_add(cost));
    }

    /// The timer tick: charges a full quantum and says whether to call [`pick`](Self::pick).
    /// A stride task yields the CPU whenever anything else waits; a real-time task only
    /// to another real-time task (round-robin); an idle CPU whenever work arrived.
    pub fn tick(&mut self) -> bool {
        self.charge(QUANTUM);
        match self.current.get() {
            Some(cur) if cur.is_rt() => self.rt_waiting > 0,
            _ => self.len > 0,
        }
    }

    /// The running task stops being runnable (sleeps, blocks, exits). Returns it with
    /// its lag, ready for a later `push` anywhere.
    pub fn block_current(&mut self) -> Option<TaskDesc> {
        self.sync_vtime();
        let mut task = self.current.take()?;
        self.charged = false;
        self.to_lag(&mut task);
        Some(task)
    }

    /// A direct switch: the running task blocks and `next` (a task that was blocked,
    /// with its lag) runs in its place at once, without a pick. A call that hands the
    /// CPU to the server that will answer it uses this, and the server's reply hands
    /// it back. `next` joins at the virtual time plus its lag, where `push` would
    /// place it, so it is neither owed nor charged for skipping the queue, and the
    /// rest of the turn passes to it. Returns the blocked task with its lag.
    ///
    /// Refused (`next` given back; push it and pick instead) when nothing runs, or
    /// when a real-time task waits and `next` is not one: a hand-off never jumps over
    /// a task the policy would run first.
    pub fn hand_off(&mut self, mut next: TaskDesc) -> Result<TaskDesc, TaskDesc> {
        if self.current.get().is_none() || (self.rt_waiting > 0 && !next.is_rt()) {
            return Err(next);
        }
        let cur = self.block_current().ok_or(next)?;
        if !next.is_rt() {
            self.sync_vtime();
            next.set_pass(self.vtime.wrapping_add(next.pass()));
        }
        self.current.set(next);
        Ok(cur)
    }

    /// Removes a waiting task (not the running one) and returns it with its lag.
    pub fn remove(&mut self, id: TaskId) -> Option<TaskDesc> {
        let pos = (0..self.len).find(|&k| self.at(k).id() == id)?;
        self.sync_vtime();
        let mut task = self.ring_remove(pos);
        self.to_lag(&mut task);
        Some(task)
    }

    /// Takes the waiting task best given away to an idle CPU, with its lag: the oldest
    /// unpinned real-time task, else the unpinned stride task with the largest pass
    /// (the one this CPU would run last). Pinned tasks are never taken.
    pub fn take_stealable(&mut self) -> Option<TaskDesc> {
        if self.stealable == 0 {
            return None;
        }
        let candidates = (0..self.len).filter(|&k| self.at(k).stealable());
        let pos = match candidates.clone().find(|&k| self.at(k).is_rt()) {
            Some(k) => k,
            // `max_by_key` keeps the last of equals; the ring's tail is the youngest.
            None => candidates.max_by_key(|&k| self.key(&self.at(k)))?,
        };
        self.sync_vtime();
        let mut task = self.ring_remove(pos);
        self.to_lag(&mut task);
        Some(task)
    }

    /// The running task.
    pub fn current(&self) -> Option<TaskDesc> {
        self.current.get()
    }

    /// Waiting tasks (not counting the running one).
    pub fn waiting(&self) -> usize {
        self.len
    }

    /// Waiting tasks another CPU may steal.
    pub fn stealable(&self) -> usize {
        self.stealable
    }

    /// Tasks owned: waiting plus running. At most `CAP`.
    pub fn tasks(&self) -> usize {
        self.len + usize::from(self.current.get().is_some())
    }

    /// The queue's virtual time.
    pub fn vtime(&self) -> u64 {
        self.vtime
    }

    /// Waiting tasks in ring order, with absolute passes.
    pub fn iter(&self) -> impl Iterator<Item = TaskDesc> + '_ {
        (0..self.len).map(|k| self.at(k))
    }

    /// The position of the task to run next.
    fn select(&self) -> Option<usize> {
        if self.rt_waiting > 0 {
            return (0..self.len).find(|&k| self.at(k).is_rt());
        }
        // `min_by_key` keeps the first of equals: FIFO among equal passes.
        (0..self.len).min_by_key(|&k| self.key(&self.at(k)))
    }

    /// A stride task's pass relative to the virtual time. Every waiting pass is at or
    /// after `vtime` (modulo 2^64), so comparing offsets orders them correctly even
    /// across the wrap of `u64` passes.
    fn key(&self, task: &TaskDesc) -> u64 {
        task.pass().wrapping_sub(self.vtime)
    }

    /// Brings the virtual time up to the smallest pass of any runnable stride task,
    /// running one included. `pick` keeps it so, but a task running alone may be
    /// charged many quanta without a pick (its `tick` asks for none); joining or
    /// leaving against that stale time would hand the joiner a burst, or the leaver a
    /// debt, of every quantum since.
    fn sync_vtime(&mut self) {
        let min = self
            .current
            .get()
            .into_iter()
            .chain(self.iter())
            .filter(|t| !t.is_rt())
            .map(|t| self.key(&t))
            .min();
        // Keys are offsets at or after `vtime`, so this only moves it forward.
        if let Some(k) = min {
            self.vtime = self.vtime.wrapping_add(k);
        }
    }

    fn to_lag(&self, task: &mut TaskDesc) {
        if !task.is_rt() {
            task.set_pass(self.key(task));
        }
    }

    fn at(&self, k: usize) -> TaskDesc {
        self.ring[(self.head + k) % CAP]
    }

    fn ring_push(&mut self, task: TaskDesc) {
        debug_assert!(self.len < CAP);
        self.ring[(self.head + self.len) % CAP] = task;
        self.len += 1;
        self.stealable += usize::from(task.stealable());
        self.rt_waiting += usize::from(task.is_rt());
    }

    /// Removes the `k`-th waiting task, closing the gap so ring order (arrival order)
    /// is kept for everyone else.
    fn ring_remove(&mut self, k: usize) -> TaskDesc {
        let task = self.at(k);
        if k == 0 {
            self.head = (self.head + 1) % CAP;
        } else {
            for j in k..self.len - 1 {
                self.ring[(self.head + j) % CAP] = self.ring[(self.head + j + 1) % CAP];
            }
        }
        self.len -= 1;
        self.stealable -= usize::from(task.stealable());
        self.rt_waiting -= usize::from(task.is_rt());
        task
    }
}

#[cfg(test)]
mod tests;
