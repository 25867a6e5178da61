//! The multi-CPU scheduler: one locked run queue per CPU, stealing between them.
//!
//! # Locking
//! Each CPU's [`RunQueue`] has its own spin lock; there is no global lock. A CPU's own
//! operations (`pick_next`, `tick`, `charge`, `block_current`) take only its lock;
//! `enqueue` takes the target CPU's lock (a remote wake-up). Only moves between two
//! queues (`steal`, and the idle steal inside `pick_next`) hold two locks, always
//! acquired in CPU-index order, so no cycle, no deadlock, and a task is never "in
//! flight" outside every queue.
//!
//! Lock-free parts: each CPU publishes how many of its waiting tasks are stealable in an
//! atomic *load hint*, so an idle CPU picks the busiest victim without taking every
//! lock; the hint may be stale and is re-checked under the lock. A *migration count*,
//! bumped under both locks by every move, lets `remove` (which looks at one queue at a
//! time) detect that a task may have moved behind it, and look again.

use crate::queue::RunQueue;
use crate::sync::{AtomicUsize, Guard, Mutex, Ordering};
use crate::task::{TaskDesc, TaskId};

/// One CPU's share: its queue and its load hint, alone on their cache lines.
#[repr(align(64))]
struct PerCpu<const CAP: usize> {
    queue: Mutex<RunQueue<CAP>>,
    /// `queue.stealable()` as of the last unlock.
    load: AtomicUsize,
}

/// Where `enqueue` put a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The CPU whose queue holds it (its pinned CPU, if pinned).
    pub cpu: usize,
    /// That CPU should reschedule now (IPI it if remote): a real-time task arrived
    /// while it ran a stride task or nothing.
    pub preempt: bool,
}

/// Why `enqueue` refused a task (which it gives back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// The target queue already holds `CAP` tasks.
    Full(TaskDesc),
    /// Pinned to a CPU this scheduler does not have.
    NoSuchCpu(TaskDesc),
}

/// What `remove` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Taken out of a queue; `pass` is its lag.
    Removed(TaskDesc),
    /// Running on this CPU: the kernel must stop it there (it will `block_current`).
    Running(usize),
    /// In no queue.
    NotFound,
}

/// The scheduler for `CPUS` CPUs with up to `CAP` tasks per CPU.
pub struct Scheduler<const CPUS: usize, const CAP: usize> {
    cpus: [PerCpu<CAP>; CPUS],
    /// Bumped (under both locks) by every move between queues.
    migrations: AtomicUsize,
}

impl<const CPUS: usize, const CAP: usize> core::fmt::Debug for Scheduler<CPUS, CAP> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scheduler")
            .field("cpus", &CPUS)
            .field("capacity", &CAP)
            .finish()
    }
}

impl<const CPUS: usize, const CAP: usize> Default for Scheduler<CPUS, CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize, const CAP: usize> Scheduler<CPUS, CAP> {
    /// Pins are `u8` with 255 meaning "none"; a queue must hold at least one task.
    const SHAPE: () = assert!(CPUS >= 1 && CPUS < 255 && CAP >= 1);

    /// Empty queues on every CPU.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)] // reason: forces the compile-time check
        let () = Self::SHAPE;
        Self {
            cpus: [const {
                PerCpu {
                    queue: Mutex::new(RunQueue::new()),
                    load: AtomicUsize::new(0),
                }
            }; CPUS],
            migrations: AtomicUsize::new(0),
        }
    }

    /// Empty queues on every CPU (loom's types have no `const` constructors).
    #[cfg(loom)]
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)] // reason: forces the compile-time check
        let () = Self::SHAPE;
        Self {
            cpus: core::array::from_fn(|_| PerCpu {
                queue: Mutex::new(RunQueue::new()),
                load: AtomicUsize::new(0),
            }),
            migrations: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on `cpu`'s queue under its lock, then republishes its load hint.
    fn with<R>(&self, cpu: usize, f: impl FnOnce(&mut RunQueue<CAP>) -> R) -> R {
        let mut q = self.cpus[cpu].queue.lock();
        let r = f(&mut q);
        self.cpus[cpu].load.store(q.stealable(), Ordering::Relaxed);
        r
    }

    /// Makes a task runnable: on its pinned CPU if pinned, else on `cpu` (the kernel's
    /// choice: the waker's CPU, or where the task last ran). `task.pass()` is its lag.
    /// The task must not already be queued or running: the kernel tracks task states,
    /// and the scheduler does not search every queue on each wake-up to catch that.
    pub fn enqueue(&self, cpu: usize, task: TaskDesc) -> Result<Placed, EnqueueError> {
        let cpu = match task.pin() {
            Some(p) if usize::from(p) >= CPUS => return Err(EnqueueError::NoSuchCpu(task)),
            Some(p) => usize::from(p),
            None => cpu,
        };
        match self.with(cpu, |q| q.push(task)) {
            Ok(preempt) => Ok(Placed { cpu, preempt }),
            Err(task) => Err(EnqueueError::Full(task)),
        }
    }

    /// Ends `cpu`'s current turn and returns the task to run next. If the CPU has
    /// nothing, it steals from the busiest other queue first; `None` means idle.
    pub fn pick_next(&self, cpu: usize) -> Option<TaskId> {
        self.with(cpu, |q| q.pick()).or_else(|| self.steal_for(cpu))
    }

    /// A voluntary yield on `cpu`: charges the running task `units` (as
    /// [`charge`](Self::charge)) and picks the next task (as
    /// [`pick_next`](Self::pick_next)), under one lock.
    pub fn yield_next(&self, cpu: usize, units: u32) -> Option<TaskId> {
        self.with(cpu, |q| {
            q.charge(units);
            q.pick()
        })
        .or_else(|| self.steal_for(cpu))
    }

    /// The timer tick on `cpu`: charges the running task a full quantum; `true` means
    /// call `pick_next` now.
    pub fn tick(&self, cpu: usize) -> bool {
        self.with(cpu, |q| q.tick())
    }

    /// Charges `cpu`'s running task for part of a quantum (`units` of
    /// [`QUANTUM`](crate::QUANTUM)), e.g. before a voluntary yield.
    pub fn charge(&self, cpu: usize, units: u32) {
        self.with(cpu, |q| q.charge(units));
    }

    /// `cpu`'s running task sleeps, blocks or exits; returns it (with its lag) for a
    /// later `enqueue`. Call `pick_next` after.
    pub fn block_current(&self, cpu: usize) -> Option<TaskDesc> {
        self.with(cpu, |q| q.block_current())
    }

    /// `cpu`'s running task blocks and `next` runs in its place without a pick
    /// ([`RunQueue::hand_off`]); the blocked task with its lag. `next` is given back
    /// when the queue refuses, or when it is pinned to another CPU.
    pub fn hand_off(&self, cpu: usize, next: TaskDesc) -> Result<TaskDesc, TaskDesc> {
        if next.pin().is_some_and(|p| usize::from(p) != cpu) || cpu >= CPUS {
            return Err(next);
        }
        self.with(cpu, |q| q.hand_off(next))
    }

    /// The task running on `cpu`.
    pub fn current(&self, cpu: usize) -> Option<TaskId> {
        self.with(cpu, |q| q.current().map(|t| t.id()))
    }

    /// Runs `f` on a consistent view of `cpu`'s queue (for tests and diagnostics).
    pub fn inspect<R>(&self, cpu: usize, f: impl FnOnce(&RunQueue<CAP>) -> R) -> R {
        f(&self.cpus[cpu].queue.lock())
    }

    /// Takes a waiting task out of whichever queue holds it (a kill, or a change of
    /// tickets or pin: remove, adjust, enqueue).
    pub fn remove(&self, id: TaskId) -> Removal {
        loop {
            let before = self.migrations.load(Ordering::Acquire);
            for cpu in 0..CPUS {
                let found = self.with(cpu, |q| match q.current() {
                    Some(t) if t.id() == id => Some(Removal::Running(cpu)),
                    _ => q.remove(id).map(Removal::Removed),
                });
                if let Some(r) = found {
                    return r;
                }
            }
            // A move from a queue not yet looked at into one already passed bumps the
            // count while holding the source lock, which this scan took later; so an
            // unchanged count proves the task was in no queue during the scan.
            if self.migrations.load(Ordering::Acquire) == before {
                return Removal::NotFound;
            }
        }
    }

    /// Moves one stealable waiting task from `from` to `to` (see
    /// [`RunQueue::take_stealable`] for which). Returns its id; `None` if `from` had
    /// nothing stealable or `to` is full.
    pub fn steal(&self, from: usize, to: usize) -> Option<TaskId> {
        if from == to {
            return None;
        }
        let (mut src, mut dst) = self.lock_pair(from, to);
        let moved = self.move_one(&mut src, &mut dst);
        self.cpus[from]
            .load
            .store(src.stealable(), Ordering::Relaxed);
        self.cpus[to].load.store(dst.stealable(), Ordering::Relaxed);
        moved
    }

    /// Periodic balancing, for the kernel to call every few ticks on each CPU: if the
    /// other queue with the most stealable tasks holds at least two tasks more than
    /// `cpu`'s, pull one stealable task from it. Idle stealing alone keeps CPUs busy
    /// but can leave 9 tasks sharing one CPU while 1 task has another to itself; this
    /// evens task counts out (not tickets), and never moves a task back and forth,
    /// since a move needs a difference of two.
    pub fn balance(&self, cpu: usize) -> Option<TaskId> {
        let from = (0..CPUS)
            .filter(|&c| c != cpu)
            .map(|c| (self.cpus[c].load.load(Ordering::Relaxed), c))
            .filter(|&(load, _)| load > 0)
            .max()?
            .1;
        let (mut src, mut dst) = self.lock_pair(from, cpu);
        let moved = if src.tasks() >= dst.tasks() + 2 {
            self.move_one(&mut src, &mut dst)
        } else {
            None
        };
        self.cpus[from]
            .load
            .store(src.stealable(), Ordering::Relaxed);
        self.cpus[cpu]
            .load
            .store(dst.stealable(), Ordering::Relaxed);
        moved
    }

    /// The idle path: steal from the busiest queue by load hint, trying the others in
    /// turn if the hint was stale, and run what was stolen.
    fn steal_for(&self, to: usize) -> Option<TaskId> {
        let mut tried = [false; CPUS];
        tried[to] = true;
        loop {
            let from = (0..CPUS)
                .filter(|&c| !tried[c])
                .map(|c| (self.cpus[c].load.load(Ordering::Relaxed), c))
                .filter(|&(load, _)| load > 0)
                .max()?
                .1;
            tried[from] = true;
            let (mut src, mut dst) = self.lock_pair(from, to);
            // Work may have been enqueued here meanwhile; otherwise steal.
            let picked = dst.pick().or_else(|| {
                self.move_one(&mut src, &mut dst)?;
                dst.pick()
            });
            self.cpus[from]
                .load
                .store(src.stealable(), Ordering::Relaxed);
            self.cpus[to].load.store(dst.stealable(), Ordering::Relaxed);
            if picked.is_some() {
                return picked;
            }
        }
    }

    fn move_one(&self, src: &mut RunQueue<CAP>, dst: &mut RunQueue<CAP>) -> Option<TaskId> {
        if dst.tasks() >= CAP {
            return None;
        }
        let task = src.take_stealable()?;
        if let Err(task) = dst.push(task) {
            // Cannot happen (room was checked under both locks), but never lose a task:
            // it goes back where it came from, which just had room for it.
            let _ = src.push(task);
            return None;
        }
        self.migrations.fetch_add(1, Ordering::AcqRel);
        Some(task.id())
    }

    /// Locks two distinct queues in index order; returns (a's guard, b's guard).
    fn lock_pair(
        &self,
        a: usize,
        b: usize,
    ) -> (Guard<'_, RunQueue<CAP>>, Guard<'_, RunQueue<CAP>>) {
        assert_ne!(a, b);
        if a < b {
            let ga = self.cpus[a].queue.lock();
            (ga, self.cpus[b].queue.lock())
        } else {
            let gb = self.cpus[b].queue.lock();
            (self.cpus[a].queue.lock(), gb)
        }
    }
}
