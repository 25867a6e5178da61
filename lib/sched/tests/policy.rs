//! One CPU's policy through `RunQueue`'s public API: proportional share, joining and
//! leaving, starvation, the real-time class, yields and capacity.
use zen_sched::{RunQueue, TaskDesc, TaskId, QUANTUM};

type Q = RunQueue<16>;

/// Runs `quanta` full quanta, returning how many each id below `n` got.
fn run(q: &mut Q, quanta: usize, n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for _ in 0..quanta {
        let id = q.pick().expect("runnable");
        counts[id as usize] += 1;
        q.tick();
    }
    counts
}

fn queue_of(tasks: &[TaskDesc]) -> Q {
    let mut q = Q::new();
    for &t in tasks {
        q.push(t).unwrap();
    }
    q
}

#[test]
fn three_to_one_tickets_give_three_to_one_cpu_within_one_percent() {
    let mut q = queue_of(&[TaskDesc::stride(0, 300), TaskDesc::stride(1, 100)]);
    let c = run(&mut q, 10_000, 2);
    let ratio = c[0] as f64 / c[1] as f64;
    assert!((ratio - 3.0).abs() <= 0.03, "{c:?} ratio {ratio}");
    assert_eq!(c[0] + c[1], 10_000);
}

#[test]
fn every_ticket_mix_gets_its_share_within_one_percent() {
    for tickets in [
        [1u16, 2, 3, 4],
        [10, 10, 10, 70],
        [1, 1, 1, 997],
        [7, 13, 29, 51],
    ] {
        let mut q = queue_of(
            &tickets
                .iter()
                .zip(0..)
                .map(|(&t, id)| TaskDesc::stride(id, t))
                .collect::<Vec<_>>(),
        );
        let c = run(&mut q, 10_000, 4);
        let total: u32 = tickets.iter().map(|&t| u32::from(t)).sum();
        for (i, &t) in tickets.iter().enumerate() {
            let want = 10_000.0 * f64::from(t) / f64::from(total);
            assert!((c[i] as f64 - want).abs() <= 100.0, "{tickets:?}: {c:?}");
        }
    }
}

#[test]
fn a_late_joiner_gets_its_share_from_then_on_and_no_burst() {
    let mut q = queue_of(&[TaskDesc::stride(0, 10), TaskDesc::stride(1, 10)]);
    run(&mut q, 1000, 3);
    q.push(TaskDesc::stride(2, 10)).unwrap();
    // In every window after the join the newcomer gets a third, give or take one
    // quantum: not the 1000 quanta the others had before it existed.
    for _ in 0..100 {
        let c = run(&mut q, 30, 3);
        assert!((9..=11).contains(&c[2]), "window {c:?}");
    }
}

#[test]
fn a_leaver_returns_its_share_to_the_others() {
    let mut q = queue_of(&[
        TaskDesc::stride(0, 10),
        TaskDesc::stride(1, 10),
        TaskDesc::stride(2, 20),
    ]);
    let c = run(&mut q, 4000, 3);
    assert_eq!(c, [1000, 1000, 2000]);
    // Take task 2 out wherever it is: running (block) or waiting (remove).
    if q.current().map(|t| t.id()) == Some(2) {
        q.block_current().unwrap();
    } else {
        q.remove(2).unwrap();
    }
    let c = run(&mut q, 2000, 3);
    assert_eq!(c, [1000, 1000, 0]);
}

#[test]
fn a_sleeper_gets_no_burst_on_waking() {
    let mut q = queue_of(&[TaskDesc::stride(0, 10), TaskDesc::stride(1, 10)]);
    run(&mut q, 10, 2);
    // Put task 1 to sleep the next time it runs.
    let sleeper = loop {
        if q.pick() == Some(1) {
            break q.block_current().unwrap();
        }
        q.tick();
    };
    run(&mut q, 1000, 2);
    q.push(sleeper).unwrap();
    for _ in 0..50 {
        let c = run(&mut q, 20, 2);
        assert!((9..=11).contains(&c[1]), "window {c:?}");
    }
}

#[test]
fn time_run_alone_without_picks_is_neither_a_gift_nor_a_debt() {
    // Task 0 runs alone; its ticks ask for no pick, so the kernel makes none.
    let mut q = queue_of(&[TaskDesc::stride(0, 1)]);
    assert_eq!(q.pick(), Some(0));
    for _ in 0..1000 {
        assert!(!q.tick());
    }
    // A newcomer still gets only its share from now on, not 1000 quanta in a row.
    q.push(TaskDesc::stride(1, 1)).unwrap();
    for _ in 0..10 {
        let c = run(&mut q, 20, 2);
        assert!((9..=11).contains(&c[1]), "window {c:?}");
    }
    // And a task that ran alone and sleeps owes nothing for it when it wakes.
    let mut q = queue_of(&[TaskDesc::stride(0, 1)]);
    q.pick();
    for _ in 0..1000 {
        q.tick();
    }
    let sleeper = q.block_current().unwrap();
    assert_eq!(sleeper.pass(), 0);
    q.push(TaskDesc::stride(1, 1)).unwrap();
    run(&mut q, 10, 2);
    q.push(sleeper).unwrap();
    let c = run(&mut q, 30, 2);
    assert!((14..=16).contains(&c[0]), "{c:?}");
}

#[test]
fn lag_is_kept_across_sleep() {
    let mut q = queue_of(&[TaskDesc::stride(0, 1), TaskDesc::stride(1, 1)]);
    assert_eq!(q.pick(), Some(0));
    // Task 0 ran a full quantum, then sleeps: it leaves one stride ahead.
    q.tick();
    let t = q.block_current().unwrap();
    assert_eq!(t.pass(), u64::from(zen_sched::STRIDE1));
    q.push(t).unwrap();
    // So task 1, which has not run yet, goes first.
    assert_eq!(q.pick(), Some(1));
}

#[test]
fn no_stride_task_starves_however_few_its_tickets() {
    let mut q = queue_of(&[
        TaskDesc::stride(0, 1),
        TaskDesc::stride(1, 1000),
        TaskDesc::stride(2, 500),
    ]);
    let mut last = [0usize; 3];
    for now in 1..=20_000 {
        let id = q.pick().unwrap() as usize;
        last[id] = now;
        for (i, &l) in last.iter().enumerate() {
            // Task i waits at most total/tickets quanta (+1 for rounding).
            let bound = [1502, 3, 5][i];
            assert!(now - l <= bound, "task {i} waited {} quanta", now - l);
        }
        q.tick();
    }
}

#[test]
fn real_time_tasks_run_first_and_round_robin() {
    let mut q = queue_of(&[TaskDesc::stride(0, 100)]);
    assert_eq!(q.pick(), Some(0));
    assert_eq!(
        q.push(TaskDesc::realtime(10)),
        Ok(true),
        "asks to preempt a stride task"
    );
    assert_eq!(
        q.push(TaskDesc::realtime(11)),
        Ok(true),
        "a stride task still runs"
    );
    assert!(q.tick());
    let order: Vec<_> = (0..6)
        .map(|_| {
            let id = q.pick().unwrap();
            q.tick();
            id
        })
        .collect();
    assert_eq!(order, [10, 11, 10, 11, 10, 11]);
    // The stride task only runs once no real-time task is runnable.
    assert_eq!(q.pick(), Some(10));
    q.block_current();
    assert_eq!(q.pick(), Some(11));
    assert!(
        !q.tick(),
        "alone with stride tasks, a real-time task keeps the CPU"
    );
    q.block_current();
    assert_eq!(q.pick(), Some(0));
}

#[test]
fn a_stride_arrival_does_not_ask_for_preemption_but_a_tick_does() {
    let mut q = queue_of(&[TaskDesc::stride(0, 1)]);
    q.pick();
    assert!(!q.tick(), "nothing else to run");
    assert_eq!(q.push(TaskDesc::stride(1, 1)), Ok(false));
    assert!(q.tick());
}

#[test]
fn a_yield_loop_pays_for_each_dispatch() {
    let mut q = queue_of(&[TaskDesc::stride(0, 1), TaskDesc::stride(1, 1)]);
    let mut ran = [0; 2];
    for _ in 0..10_000 {
        let id = q.pick().unwrap();
        ran[id as usize] += 1;
        if id == 1 {
            // Task 1 does full quanta; task 0 yields at once without being charged.
            q.tick();
        }
    }
    // Each uncharged dispatch still costs 1/QUANTUM of a quantum, so the yielder
    // advances and task 1 gets one full quantum per QUANTUM yields: equal CPU time.
    // (Charging nothing would let task 0 hold the CPU forever after task 1's first run.)
    let per = QUANTUM as usize + 1;
    assert!(
        (10_000 / per..=10_000 / per + 1).contains(&ran[1]),
        "{ran:?}"
    );
}

#[test]
fn partial_quanta_are_charged_by_what_was_used() {
    let mut q = queue_of(&[TaskDesc::stride(0, 1), TaskDesc::stride(1, 1)]);
    let mut time = [0u64; 2];
    for _ in 0..10_000 {
        let id = q.pick().unwrap();
        // Task 0 always yields after a quarter quantum; task 1 uses whole ones.
        let used = if id == 0 { QUANTUM / 4 } else { QUANTUM };
        q.charge(used);
        time[id as usize] += u64::from(used);
    }
    let ratio = time[0] as f64 / time[1] as f64;
    assert!(
        (ratio - 1.0).abs() < 0.01,
        "equal tickets, equal CPU time: {time:?}"
    );
}

#[test]
fn capacity_counts_the_running_task() {
    let mut q = RunQueue::<2>::new();
    q.push(TaskDesc::stride(0, 1)).unwrap();
    q.push(TaskDesc::stride(1, 1)).unwrap();
    q.pick();
    let extra = TaskDesc::stride(2, 1);
    assert_eq!(q.push(extra), Err(extra));
    assert_eq!((q.tasks(), q.waiting()), (2, 1));
    // Re-queuing the running task always fits.
    assert_eq!(q.pick(), Some(1));
    assert_eq!(q.pick(), Some(0));
}

#[test]
fn remove_takes_only_waiting_tasks_and_returns_their_lag() {
    let mut q = queue_of(&[
        TaskDesc::stride(0, 1),
        TaskDesc::stride(1, 1),
        TaskDesc::realtime(2),
    ]);
    assert_eq!(q.pick(), Some(2));
    assert_eq!(q.remove(2), None, "running");
    let t = q.remove(1).unwrap();
    assert_eq!((t.id(), t.pass()), (1, 0));
    assert_eq!(q.remove(1), None);
    let ids: Vec<TaskId> = q.iter().map(|t| t.id()).collect();
    assert_eq!(ids, [0]);
}

#[test]
fn take_stealable_prefers_real_time_then_the_last_stride_task_and_skips_pinned() {
    let mut q = queue_of(&[
        TaskDesc::stride(0, 1),
        TaskDesc::stride(1, 1).pinned(0),
        TaskDesc::stride(2, 1),
        TaskDesc::realtime(3).pinned(0),
        TaskDesc::realtime(4),
    ]);
    assert_eq!(q.stealable(), 3);
    assert_eq!(q.take_stealable().map(|t| t.id()), Some(4));
    // Equal passes: the youngest, the one that would run last.
    assert_eq!(q.take_stealable().map(|t| t.id()), Some(2));
    assert_eq!(q.take_stealable().map(|t| t.id()), Some(0));
    assert_eq!(q.take_stealable(), None, "only pinned tasks are left");
    assert_eq!(q.waiting(), 2);
}

#[test]
fn descriptors_are_packed_and_queues_cache_aligned() {
    assert_eq!(std::mem::size_of::<TaskDesc>(), 20);
    assert_eq!(std::mem::align_of::<RunQueue<16>>(), 64);
    let t = TaskDesc::stride(7, 0);
    assert_eq!(
        (t.tickets(), t.stride_len()),
        (1, zen_sched::STRIDE1),
        "0 tickets is taken as 1"
    );
    assert_eq!(t.pinned(3).pin(), Some(3));
    assert_eq!(t.pinned(3).unpinned().pin(), None);
    assert_eq!(
        TaskDesc::stride(7, 4).with_tickets(2),
        TaskDesc::stride(7, 2)
    );
}

#[test]
fn descriptors_keep_what_they_are_given() {
    let t = TaskDesc::stride(3, 40).pinned(1);
    assert_eq!((t.tickets(), t.pin(), t.id()), (40, Some(1), 3));
    // A queue of two, run for a while.
    let mut q = queue_of(&[TaskDesc::stride(0, 10), TaskDesc::stride(1, 10).pinned(1)]);
    for _ in 0..3 {
        q.pick();
        q.tick();
    }
    let first = q.vtime();
    // New tickets keep the pin.
    let d = q
        .remove(1)
        .or_else(|| q.block_current())
        .expect("task 1 is there");
    let e = d.with_tickets(20);
    assert_eq!(
        (e.pin(), e.tickets(), e.stride_len()),
        (Some(1), 20, zen_sched::STRIDE1 / 20)
    );
    q.push(e).unwrap();
    // The virtual time moves on as tasks run.
    for _ in 0..4 {
        q.pick();
        q.tick();
    }
    assert!(q.vtime() > first, "virtual time {first} -> {}", q.vtime());
    let shown = format!("{q:?}");
    assert!(!shown.is_empty() && shown.contains("RunQueue"), "{shown}");
}
