//! Process teardown as a sequence of named steps, run in this order by the last
//! thread of a process ([`run`]) and one by one by the kernel tests, which check what
//! each step gives back.
//!
//! The order is what makes it safe: no CPU may run on the tables when they are freed
//! (1, 2); mappings go before the references that keep their frames (2 before 3, 4);
//! the process stops being found before the grants waiting for it are dropped, so no
//! grant is made for it afterwards (5 before 6); waiters are woken last, when
//! everything they could look at is final (8).

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::memory::give_granted;
use super::{Process, PROCS};
use crate::arch::paging;
use crate::arch::user::activate_root;

/// 1. Off the process's tables: its root becomes the kernel's, on this CPU too.
pub fn leave_tables(p: &Process) {
    let kernel = paging::kernel_root();
    p.root.store(kernel, Ordering::Release);
    activate_root(kernel);
}

/// 2. The address space goes: every owned page and page table is freed; shared
/// frames (channel pages, granted pages, the token page) stay with their owners.
pub fn drop_space(p: &Process) {
    let space = p.space.lock().take();
    drop(space);
}

/// 2b. The devices it drove stop (no more DMA), then their DMA memory is freed and
/// their interrupts unbound; each is free for its next driver.
pub fn release_devices(p: &Process) {
    crate::dev::release(p.pid);
}

/// 3. Granted pages are unmapped with the space: drop this process's references.
pub fn drop_granted(p: &Process) {
    let granted = core::mem::take(&mut *p.granted.lock());
    give_granted(granted.len() as u64);
    drop(granted);
}

/// 4. Channels: those it created leave the table, those it held forget it, and the
/// holdings (whose `Arc`s kept the frames while mapped) are dropped; calls it took
/// and never answered fail.
pub fn release_channels(p: &Process) {
    if p.serving.load(Ordering::Relaxed) {
        crate::ipc::call::server_gone(p.pid);
    }
    let owned = core::mem::take(&mut *p.owned.lock());
    crate::ipc::release_owned(&owned);
    let holdings = core::mem::take(&mut *p.holdings.lock());
    for h in &holdings {
        h.chan.forget(p.pid);
    }
    drop((owned, holdings));
}

/// 5. The process is a zombie with its exit code: `find` no longer returns it.
/// Whether it is an orphan (nobody will reap it).
pub fn mark_exited(p: &Process, code: u64) -> bool {
    let mut i = p.inner.lock();
    i.exit = Some(code);
    i.thread_exits.clear();
    i.mapped = 0;
    i.image_pages = 0;
    i.parent == 0
}

/// 6. Grants made for it or by it and never mapped are dropped (their frames, their
/// senders' charges). After 5: see `ipc::grant::grant_create`; its own threads are
/// gone, so it makes no grant after this.
pub fn drop_grants_to(p: &Process) {
    crate::ipc::grant::release_grants_of(p.pid);
}

/// 7. Its children become orphans (exited ones are reaped now), and an orphan leaves
/// the table itself.
pub fn reparent(p: &Process, orphan: bool) {
    let mut procs = PROCS.lock();
    let mut reap = Vec::new();
    for (pid, c) in procs.iter() {
        let mut ci = c.inner.lock();
        if ci.parent == p.pid {
            ci.parent = 0;
            if ci.exit.is_some() {
                reap.push(*pid);
            }
        }
    }
    for pid in reap {
        procs.remove(&pid);
    }
    if orphan {
        procs.remove(&u64::from(p.pid));
    }
}

/// 8. The parent's threads waiting for it wake (and reap it).
pub fn wake_waiters(p: &Process) {
    p.exit_queue.wake_all(|| {});
}

/// Every step, in order.
pub fn run(p: &Process, code: u64) {
    leave_tables(p);
    drop_space(p);
    release_devices(p);
    drop_granted(p);
    release_channels(p);
    let orphan = mark_exited(p, code);
    drop_grants_to(p);
    reparent(p, orphan);
    wake_waiters(p);
}
