//! Tests of processes and channels from inside the kernel: teardown step by step,
//! attach failing halfway (by failure injection), and the wait queue.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{check, TestResult};
use crate::arch::user::inject;
use crate::ipc::Party;
use crate::proc::{self, teardown, Process};
use crate::task::{self, Options, WaitQueue};
use zen_abi::cap::TokenSlot;
use zen_abi::ipc::CHANNEL_PAGES;
use zen_abi::syscall::{TOKEN_PAGE, USER_MAP_BASE};

/// Token `slot` of `p`'s token page, copied in from its address space as a system
/// call would.
fn token(p: &Process, slot: u64) -> Result<crate::cap::Presented, &'static str> {
    crate::cap::token_in(p, TOKEN_PAGE + 64 + slot * TokenSlot::SIZE as u64)
        .map_err(|_| "cannot read a token")
}

/// A fresh process (no thread, in no table) with a channel it owns: (process, slot
/// of end A, slot of end B).
fn process_with_channel() -> Result<(Arc<Process>, u64, u64), &'static str> {
    let (p, _) = proc::create("init", b"", 0).map_err(|_| "cannot create a process")?;
    let slots = crate::ipc::create(&*p).map_err(|_| "cannot create a channel")?;
    Ok((p, slots & 0xffff, slots >> 16))
}

fn heap_blocks() -> usize {
    crate::arch::heap::stats().0
}

/// Pages of the map area mapped in `p` (it has made no other mapping).
fn mapped_in_map_area(p: &Process, pages: u64) -> u64 {
    p.with_space(|s| {
        (0..pages)
            .filter(|n| s.page_info(USER_MAP_BASE + n * 4096).is_some())
            .count() as u64
    })
    .unwrap_or(u64::MAX)
}

pub fn attach_failing_halfway_maps_nothing() -> TestResult {
    for k in 0..CHANNEL_PAGES as u32 {
        let (p, a, _) = process_with_channel()?;
        inject::fail_map_shared_after(Some(k));
        let r = crate::ipc::attach(&*p, &token(&p, a)?);
        inject::fail_map_shared_after(None);
        check(
            r.is_err(),
            "attach succeeded although a page could not be mapped",
        )?;
        // Nothing of the failed attach may stay mapped: those pages would have no
        // holding keeping their frames.
        check(
            mapped_in_map_area(&p, 4 * CHANNEL_PAGES as u64) == 0,
            "a failed attach left channel pages mapped",
        )?;
        check(
            Party::holdings(&*p).is_empty(),
            "a failed attach left a holding",
        )?;
        // And the next attach works, all six pages mapped.
        let va = crate::ipc::attach(&*p, &token(&p, a)?).map_err(|_| "attach after a failure")?;
        check(
            p.with_space(|s| {
                (0..CHANNEL_PAGES as u64).all(|n| s.page_info(va + n * 4096).is_some())
            }) == Ok(true),
            "the attach after a failure did not map every page",
        )?;
        teardown::run(&p, 0);
    }
    Ok(())
}

pub fn teardown_steps_give_back_each_part() -> TestResult {
    let round = || -> TestResult {
        let frames0 = crate::mm::free_frames();
        let (p, a, _) = process_with_channel()?;
        crate::ipc::attach(&*p, &token(&p, a)?).map_err(|_| "attach")?;
        proc::map(&p, 16 * 4096).map_err(|_| "map")?;
        let made = crate::mm::free_frames();
        check(made < frames0, "a process costs frames")?;
        teardown::leave_tables(&p);
        teardown::drop_space(&p);
        let after_space = crate::mm::free_frames();
        // Image, stack, 16 mapped pages, page tables; the channel and token pages
        // stay (the holding and the process own them).
        check(
            after_space >= made + 16 && after_space < frames0,
            "dropping the space did not free its pages (or freed shared ones)",
        )?;
        teardown::drop_granted(&p);
        teardown::release_channels(&p);
        check(
            crate::mm::free_frames() == after_space + CHANNEL_PAGES as u64,
            "releasing the channels did not free exactly its six pages",
        )?;
        check(
            proc::find(p.pid()).is_none(),
            "a created process is not in the table",
        )?;
        let orphan = teardown::mark_exited(&p, 7);
        check(orphan, "a process without a parent is an orphan")?;
        teardown::drop_grants_to(&p);
        teardown::reparent(&p, orphan);
        teardown::wake_waiters(&p);
        drop(p);
        // The token page goes with the process object.
        check(
            crate::mm::free_frames() == frames0,
            "frames missing after every step",
        )
    };
    round()?; // warm-up: first uses may allocate for good (table nodes)
    let heap0 = heap_blocks();
    round()?;
    check(
        heap_blocks() <= heap0,
        "kernel heap blocks missing after every step",
    )
}

pub fn wait_queue_wakes_all_and_forgets_the_dead() -> TestResult {
    let q = Arc::new(WaitQueue::new());
    let woken = Arc::new(AtomicU32::new(0));
    let go = Arc::new(AtomicU32::new(0));
    let mut hs = alloc::vec::Vec::new();
    for _ in 0..2 {
        let (q, woken, go) = (q.clone(), woken.clone(), go.clone());
        hs.push(
            task::spawn(Options::new("waiter"), move || {
                loop {
                    let w = q.prepare(|| go.load(Ordering::SeqCst) == 0);
                    match w {
                        Ok(Some(_g)) => task::park(),
                        Ok(None) => break,
                        Err(_) => return 1,
                    }
                }
                woken.fetch_add(1, Ordering::SeqCst);
                0
            })
            .map_err(|_| "spawn")?,
        );
    }
    // Both register (a bounded wait: a broken queue fails, it does not hang).
    for _ in 0..1000 {
        if q.len() == 2 {
            break;
        }
        task::sleep_ticks(1);
    }
    check(q.len() == 2, "two waiters on one queue are both registered")?;
    go.store(1, Ordering::SeqCst);
    let n = q.wake_all(|| {});
    check(n == 2, "wake_all woke both")?;
    for h in hs {
        check(task::join(h) == 0, "a waiter failed")?;
    }
    check(woken.load(Ordering::SeqCst) == 2, "both waiters ran on")?;
    check(q.len() == 0, "entries left after the waits ended")?;
    // A guard dropped without a wake (a killed or timed-out wait) leaves nothing.
    {
        let g = q.prepare(|| true).map_err(|_| "prepare")?;
        check(g.is_some() && q.len() == 1, "registered")?;
    }
    check(q.len() == 0, "a dropped guard left its entry")
}
