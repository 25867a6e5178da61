//! The direct switch: a thread that is about to sleep (a `msg_call` waiting for its
//! answer) runs the thread it has just woken in its own place, at once, instead of
//! queueing it and going through `schedule`. The scheduler's side is zen-sched's
//! `hand_off`; the thread states and the `on_cpu` protocol are those of the module
//! above (see its invariants): the target is taken out of its blocked state under its
//! own lock, on this CPU only, and every way the hand-off can fail wakes it the
//! ordinary way, so a wake-up is never lost (loom: zen-ipc `calls_never_lose_a_wakeup`).

use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use zen_sched::TaskDesc;

use super::{current, enqueue_locked, irqs_off, park, park_now, run_next, this_cpu, unpark};
use super::{State, Thread, SCHED};

/// A thread woken to run at once in the caller's place: see [`park_handing_off`].
/// Dropped unused, it is woken the ordinary way, so a hand-off is never lost.
pub struct Handoff(Option<Arc<Thread>>);

impl Handoff {
    pub fn new(t: Arc<Thread>) -> Self {
        Self(Some(t))
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            unpark(&t);
        }
    }
}

/// Blocks like [`park`] and runs the thread of `h` in the caller's place at once (a
/// direct switch: no trip through the run queue, the rest of the turn passes to it).
/// That is for a call whose server sleeps on this CPU: the caller waits for the
/// answer, the server runs now. When the hand-off cannot be made (the thread is not
/// blocked on this CPU, a real-time task waits, a wake-up for the caller is pending)
/// it is woken the ordinary way and the caller parks. May return spuriously, as park.
pub fn park_handing_off(mut h: Handoff) {
    let Some(to) = h.0.take() else {
        return park();
    };
    irqs_off(|| {
        let cpu = this_cpu();
        // Take the target out of its blocked state, if it is blocked here.
        let taken = {
            let mut ti = to.inner.lock();
            let here = to.last_cpu.load(Ordering::Relaxed) as usize == cpu
                && !to.on_cpu.load(Ordering::Acquire);
            match (ti.state, here) {
                (State::Blocked, true) => ti.desc.take().inspect(|_| {
                    ti.state = State::Runnable;
                    ti.wake_pending = false;
                }),
                _ => None,
            }
        };
        let Some(desc) = taken else {
            unpark(&to);
            return park_now();
        };
        let me = current();
        let mut inner = me.inner.lock();
        if inner.wake_pending {
            // Our answer (or a kill) came already: do not block; the target runs the
            // ordinary way.
            inner.wake_pending = false;
            drop(inner);
            return requeue(&to, desc);
        }
        match SCHED.hand_off(cpu, desc) {
            Ok(mine) => {
                inner.state = State::Blocked;
                inner.desc = Some(mine);
                drop(inner);
                crate::prof::mark(crate::prof::Step::Park);
                run_next(cpu, me, to);
            }
            Err(desc) => {
                drop(inner);
                drop(me);
                requeue(&to, desc);
                park_now();
            }
        }
    })
}

/// Puts a thread taken out of its blocked state for a hand-off that did not happen
/// back in a run queue (as `unpark` would have).
fn requeue(t: &Arc<Thread>, desc: TaskDesc) {
    enqueue_locked(t, t.inner.lock(), desc);
}
