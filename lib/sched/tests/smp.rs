//! The multi-CPU scheduler: stealing, pinning, removal across queues, and real threads.
//!
//! Not built under `--cfg loom`: loom's types only work inside a loom model.
#![cfg(not(loom))]
use std::collections::HashSet;
use zen_sched::{EnqueueError, Removal, Scheduler, TaskDesc, TaskId};

// Only compiles if `new` is const, which is how the kernel holds it.
static _STATIC: Scheduler<8, 64> = Scheduler::new();

/// One quantum on every CPU, in CPU order: tick what runs, then pick. Returns what
/// each CPU runs for the next quantum.
fn round<const C: usize, const K: usize>(s: &Scheduler<C, K>) -> [Option<TaskId>; C] {
    core::array::from_fn(|cpu| {
        s.tick(cpu);
        s.pick_next(cpu)
    })
}

/// Every task id in the scheduler, running or waiting, checking none is duplicated.
fn all_tasks<const C: usize, const K: usize>(s: &Scheduler<C, K>) -> HashSet<TaskId> {
    let mut seen = HashSet::new();
    for cpu in 0..C {
        s.inspect(cpu, |q| {
            for t in q.iter().chain(q.current()) {
                assert!(seen.insert(t.id()), "task {} twice", t.id());
            }
        });
    }
    seen
}

#[test]
fn stealing_keeps_every_cpu_busy_while_work_exists() {
    let s = Scheduler::<4, 16>::new();
    for id in 0..10 {
        s.enqueue(0, TaskDesc::stride(id, 1)).unwrap();
    }
    for r in 0..200 {
        let running = round(&s);
        assert!(
            running.iter().all(Option::is_some),
            "round {r}: {running:?}"
        );
        let distinct: HashSet<_> = running.iter().flatten().collect();
        assert_eq!(distinct.len(), 4, "a task runs on one CPU at a time");
    }
    assert_eq!(all_tasks(&s), (0..10).collect());
}

#[test]
fn with_fewer_tasks_than_cpus_each_task_gets_a_cpu() {
    let s = Scheduler::<4, 8>::new();
    for id in 0..3 {
        s.enqueue(1, TaskDesc::stride(id, 1)).unwrap();
    }
    for _ in 0..50 {
        let running = round(&s);
        let mut ids: Vec<_> = running.iter().flatten().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2]);
    }
}

#[test]
fn tasks_leaving_and_arriving_keep_every_cpu_busy() {
    // Blocking and waking at random, all wakes on CPU 0: stealing must spread them.
    let s = Scheduler::<3, 16>::new();
    for id in 0..9 {
        s.enqueue(0, TaskDesc::stride(id, (id + 1) as u16)).unwrap();
    }
    let mut asleep = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let running = round(&s);
        let awake = 9 - asleep.len();
        assert_eq!(
            running.iter().flatten().count(),
            awake.min(3),
            "{running:?}"
        );
        let cpu = (rng % 3) as usize;
        if rng & 8 != 0 && awake > 1 {
            asleep.extend(s.block_current(cpu));
        } else if let Some(t) = asleep.pop() {
            s.enqueue(0, t).unwrap();
        }
    }
    assert_eq!(all_tasks(&s).len() + asleep.len(), 9);
}

#[test]
fn balancing_evens_out_queues_and_then_shares_fairly() {
    let s = Scheduler::<2, 16>::new();
    for id in 0..8 {
        s.enqueue(0, TaskDesc::stride(id, 1)).unwrap();
    }
    // Idle stealing alone: CPU 1 takes one task and keeps it to itself.
    let mut ran = [0usize; 8];
    for _ in 0..100 {
        round(&s)
            .iter()
            .flatten()
            .for_each(|&id| ran[id as usize] += 1);
    }
    assert_eq!(
        ran.iter().filter(|&&n| n == 100).count(),
        1,
        "one task owns CPU 1: {ran:?}"
    );
    // With the kernel balancing every quantum the queues even out at 4 and 4, and then
    // every task gets a quarter of a CPU.
    for _ in 0..10 {
        round(&s);
        s.balance(0);
        s.balance(1);
    }
    let tasks = |cpu| s.inspect(cpu, |q| q.tasks());
    assert_eq!((tasks(0), tasks(1)), (4, 4));
    let mut ran = [0usize; 8];
    for _ in 0..4000 {
        round(&s)
            .iter()
            .flatten()
            .for_each(|&id| ran[id as usize] += 1);
        assert_eq!(s.balance(0), None, "balanced queues stay put");
        assert_eq!(s.balance(1), None);
    }
    assert!(ran.iter().all(|&n| n.abs_diff(1000) <= 1), "{ran:?}");
}

#[test]
fn pinned_tasks_stay_put_even_when_others_idle() {
    let s = Scheduler::<4, 8>::new();
    // Pinned tasks go to their CPU whatever CPU is named.
    for id in 0..3 {
        assert_eq!(
            s.enqueue(3, TaskDesc::stride(id, 1).pinned(1)).unwrap().cpu,
            1
        );
    }
    s.enqueue(0, TaskDesc::stride(9, 1)).unwrap();
    for _ in 0..100 {
        let running = round(&s);
        for (cpu, id) in running.iter().enumerate() {
            if let Some(id) = id {
                assert!(*id == 9 || cpu == 1, "pinned task {id} ran on CPU {cpu}");
            }
        }
        assert!(running[1].is_some(), "CPU 1 always has its pinned work");
    }
    assert_eq!(
        s.steal(1, 2),
        None,
        "only pinned tasks are waiting on CPU 1"
    );
}

#[test]
fn enqueue_refuses_a_missing_cpu_and_a_full_queue() {
    let s = Scheduler::<2, 2>::new();
    let t = TaskDesc::stride(1, 1).pinned(2);
    assert_eq!(s.enqueue(0, t), Err(EnqueueError::NoSuchCpu(t)));
    s.enqueue(0, TaskDesc::stride(2, 1)).unwrap();
    s.enqueue(0, TaskDesc::stride(3, 1)).unwrap();
    let t = TaskDesc::stride(4, 1);
    assert_eq!(s.enqueue(0, t), Err(EnqueueError::Full(t)));
    assert_eq!(s.enqueue(1, t).map(|p| p.cpu), Ok(1));
}

#[test]
fn a_real_time_wake_asks_the_target_cpu_to_preempt() {
    let s = Scheduler::<2, 4>::new();
    s.enqueue(1, TaskDesc::stride(1, 1)).unwrap();
    assert_eq!(s.pick_next(1), Some(1));
    let placed = s.enqueue(0, TaskDesc::realtime(2).pinned(1)).unwrap();
    assert!(placed.cpu == 1 && placed.preempt);
    assert!(s.tick(1));
    assert_eq!(s.pick_next(1), Some(2));
}

#[test]
fn steal_moves_one_task_and_respects_capacity() {
    let s = Scheduler::<2, 2>::new();
    for id in 0..2 {
        s.enqueue(0, TaskDesc::stride(id, 1)).unwrap();
    }
    s.enqueue(1, TaskDesc::stride(7, 1)).unwrap();
    s.enqueue(1, TaskDesc::stride(8, 1)).unwrap();
    assert_eq!(s.steal(0, 1), None, "CPU 1 is full");
    assert_eq!(s.steal(0, 0), None);
    s.block_current(1);
    assert_eq!(s.pick_next(1), Some(7));
    assert_eq!(s.block_current(1).map(|t| t.id()), Some(7));
    assert_eq!(s.steal(0, 1), Some(1), "the youngest of equal passes");
    assert_eq!(all_tasks(&s), HashSet::from([0, 1, 8]));
}

#[test]
fn remove_finds_tasks_wherever_they_went() {
    let s = Scheduler::<3, 8>::new();
    for id in 0..6 {
        s.enqueue(0, TaskDesc::stride(id, 1)).unwrap();
    }
    round(&s);
    let running: Vec<_> = (0..3).filter_map(|c| s.current(c)).collect();
    assert_eq!(running.len(), 3);
    for id in 0..6 {
        match s.remove(id) {
            Removal::Running(cpu) => assert_eq!(s.current(cpu), Some(id)),
            Removal::Removed(t) => assert_eq!(t.id(), id),
            Removal::NotFound => panic!("task {id} lost"),
        }
    }
    assert_eq!(all_tasks(&s), running.iter().copied().collect());
    assert_eq!(s.remove(42), Removal::NotFound);
}

#[test]
fn real_threads_driving_cpus_lose_and_duplicate_nothing() {
    const CPUS: usize = 4;
    const TASKS: u32 = 24;
    let s = Scheduler::<CPUS, 32>::new();
    for id in 0..TASKS {
        s.enqueue(0, TaskDesc::stride(id, 1 + id as u16 % 3))
            .unwrap();
    }
    let parked: Vec<TaskDesc> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CPUS)
            .map(|cpu| {
                let s = &s;
                scope.spawn(move || {
                    let mut parked = Vec::new();
                    for i in 0..3000u32 {
                        s.tick(cpu);
                        s.pick_next(cpu);
                        match i % 7 {
                            // Sleep, and wake an earlier sleeper on another CPU.
                            0 => parked.extend(s.block_current(cpu)),
                            3 => {
                                if let Some(t) = parked.pop() {
                                    s.enqueue((cpu + 1) % CPUS, t).unwrap();
                                }
                            }
                            5 => {
                                s.steal((cpu + 2) % CPUS, cpu);
                            }
                            _ => {}
                        }
                    }
                    parked
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut ids = all_tasks(&s);
    for t in parked {
        assert!(ids.insert(t.id()), "task {} both parked and queued", t.id());
    }
    assert_eq!(ids, (0..TASKS).collect());
}

#[test]
fn yield_next_is_charge_then_pick_and_hand_off_keeps_every_task_once() {
    // The same history through yield_next and through charge + pick_next gives the
    // same choices: a yield is one lock, not a different policy.
    let (a, b) = (Scheduler::<2, 8>::new(), Scheduler::<2, 8>::new());
    for s in [&a, &b] {
        s.enqueue(0, TaskDesc::stride(0, 1)).unwrap();
        s.enqueue(0, TaskDesc::stride(1, 3)).unwrap();
        s.enqueue(0, TaskDesc::stride(2, 2)).unwrap();
        s.pick_next(0);
    }
    for units in [1, 700, 5, 1024, 33, 1, 1, 900] {
        let x = a.yield_next(0, units);
        b.charge(0, units);
        assert_eq!(x, b.pick_next(0));
    }
    // A hand-off on CPU 0 to a blocked task: it runs, the caller leaves, nothing is
    // lost or doubled; pinned elsewhere, it is refused and nothing changes.
    let before = all_tasks(&a);
    let blocked = a.block_current(0).unwrap();
    let runner = a.pick_next(0).unwrap();
    let out = a.hand_off(0, blocked).unwrap();
    assert_eq!(out.id(), runner);
    assert_eq!(a.current(0), Some(blocked.id()));
    let mut now = all_tasks(&a);
    now.insert(out.id());
    assert_eq!(now, before);
    let pinned = TaskDesc::stride(7, 1).pinned(1);
    assert!(a.hand_off(0, pinned).is_err());
    assert_eq!(a.current(0), Some(blocked.id()));
}
