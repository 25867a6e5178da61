//! zen-sched: the scheduler's policy and per-CPU queues, as host-testable logic.
//!
//! The kernel owns the hardware side (timer interrupt, context switch, IPIs, task
//! structures) and drives this crate through [`Scheduler`]: `enqueue` a runnable task,
//! `tick` on every timer interrupt, `charge` before a voluntary yield, `pick_next` to
//! choose what runs, `block_current` when the running task sleeps or exits, `remove`
//! to take a waiting task away, `steal` or `balance` to move work. Call it with
//! interrupts disabled: its locks spin.
//!
//! # Policy
//!
//! **Two classes.** Real-time tasks always run before stride tasks, round-robin among
//! themselves: one quantum each, in arrival order, while more than one is runnable.
//! A real-time task arriving on a CPU that runs a stride task asks for preemption
//! (`Placed::preempt`). Real-time tasks are trusted: one that never blocks starves the
//! stride tasks of its CPU, by design (they are for drivers and the like, which do
//! little work per wake-up).
//!
//! **Stride scheduling** (Waldspurger & Weihl, 1995) shares the rest in proportion to
//! tickets. A task with `t` tickets has stride `STRIDE1 / t`; each quantum it runs
//! advances its pass by its stride (partial quanta by the part used, at least 1/1024
//! per dispatch, so a yield loop still pays); the task with the lowest pass runs next,
//! ties going to the one waiting longest. Over any run, CPU time is proportional to
//! tickets within one quantum per task.
//!
//! **Joining and leaving.** Each queue keeps a virtual time: the pass of the last stride
//! task it picked, the minimum of all waiting passes. A task joins at virtual time plus
//! its *lag*, 0 for a new task: it competes from now on, so it is neither starved
//! (it starts at the front) nor given a burst (it is not owed time from before it
//! existed). A task leaving (sleeping, blocking, migrating) takes its lag with it, how
//! far its pass was ahead of the virtual time, and rejoins anywhere with it, so it
//! cannot gain by sleeping or moving. Passes are compared relative to the virtual time,
//! so their `u64` wrap-around is harmless.
//!
//! **Per-CPU queues and stealing.** Each CPU has its own queue: a `#[repr(align(64))]`
//! [`RunQueue`] holding packed 20-byte [`TaskDesc`]s in a fixed circular buffer of `CAP`
//! entries (waiting plus running), under its own spin lock (no global lock; see
//! [`Scheduler`] for the locking). Tickets are proportional within a
//! CPU; across CPUs the kernel balances by placement and stealing. A CPU with nothing to
//! run steals one task, before idling, from the queue with the most stealable waiting
//! tasks: its oldest real-time task if it has one, else the stride task it would run
//! last. The kernel may also call `balance` every few ticks, which pulls one task when
//! another queue holds at least two more, so task counts even out between busy CPUs.
//! A running task is never stolen; a pinned task is never stolen and is always queued
//! on its CPU.
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

mod queue;
mod sched;
mod sync;
mod task;

pub use queue::{RunQueue, QUANTUM};
pub use sched::{EnqueueError, Placed, Removal, Scheduler};
pub use task::{Class, TaskDesc, TaskId, STRIDE1};
