//! Sleeping until a tick: each CPU keeps a list of its sleepers with their wake-up
//! tick, and its timer interrupt wakes the due ones ([`wake_due`]). An entry belongs
//! to a guard on the sleeper's stack and goes however the sleep ends.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{current, irqs_off, park, this_cpu, unpark, Thread, CPUS};

/// Sleeps for at least `ticks` timer ticks.
pub fn sleep_ticks(ticks: u64) {
    sleep_until(crate::time::ticks() + ticks.max(1), || false);
}

/// Sleeps until the tick count reaches `until`, or until an `unpark` finds `stop()`
/// true (a killed process). Returns whether the time was reached.
pub fn sleep_until(until: u64, stop: impl Fn() -> bool) -> bool {
    let _entry = Sleeper::add(until);
    while crate::time::ticks() < until {
        if stop() {
            return false;
        }
        park();
    }
    true
}

/// Parks once, with a wake-up at tick `until` at the latest (an `unpark` may come
/// first). Callers re-check their condition.
pub fn park_until(until: u64) {
    let _entry = Sleeper::add(until);
    park();
}

/// The calling thread's entry in a CPU's sleeper list, removed when the sleep ends
/// however it ends: an entry left behind would keep the thread (its stack, its
/// process) alive until the tick, forever for a long timeout.
struct Sleeper {
    cpu: usize,
    me: Arc<Thread>,
}

impl Sleeper {
    fn add(until: u64) -> Sleeper {
        let me = current();
        let cpu = this_cpu();
        irqs_off(|| CPUS[cpu].sleepers.lock().push((until, me.clone())));
        Sleeper { cpu, me }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        irqs_off(|| {
            CPUS[self.cpu]
                .sleepers
                .lock()
                .retain(|(_, t)| !Arc::ptr_eq(t, &self.me))
        });
    }
}

/// From this CPU's timer interrupt: wakes its sleepers whose tick has come.
pub(super) fn wake_due(cpu: usize) {
    let now = crate::time::ticks();
    let due: Vec<Arc<Thread>> = {
        let mut s = CPUS[cpu].sleepers.lock();
        let mut due = Vec::new();
        s.retain(|(until, t)| {
            if *until <= now {
                due.push(t.clone());
                false
            } else {
                true
            }
        });
        due
    };
    for t in &due {
        unpark(t);
    }
}
