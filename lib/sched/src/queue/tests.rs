//! Unit tests that need the queue's insides: pass wrap-around and ring wrap-around.
use super::*;
use std::vec::Vec;

/// Runs `quanta` full quanta and counts how often each task id (0..n) ran.
fn run(q: &mut RunQueue<8>, quanta: usize, n: usize) -> Vec<usize> {
    let mut counts = std::vec![0; n];
    for _ in 0..quanta {
        let id = q.pick().expect("runnable");
        counts[id as usize] += 1;
        q.tick();
    }
    counts
}

#[test]
fn passes_wrapping_past_u64_max_keep_their_order() {
    let mut q = RunQueue::<8>::new();
    // About 30 quanta of a 1-ticket task before the wrap.
    q.vtime = u64::MAX - 30 * u64::from(crate::STRIDE1);
    q.push(TaskDesc::stride(0, 3)).unwrap();
    q.push(TaskDesc::stride(1, 1)).unwrap();
    let counts = run(&mut q, 400, 2);
    assert!(
        q.vtime() < 1 << 40,
        "the virtual time wrapped: {}",
        q.vtime()
    );
    assert_eq!(counts, [300, 100]);
}

#[test]
fn ring_order_survives_wrapping_and_removal_in_the_middle() {
    let mut q = RunQueue::<4>::new();
    // Move `head` around the ring a few times.
    for id in 0..10 {
        q.push(TaskDesc::realtime(id)).unwrap();
        assert_eq!(q.pick(), Some(id));
        q.block_current().unwrap();
    }
    assert_eq!(q.head, 10 % 4);
    for id in 20..24 {
        q.push(TaskDesc::realtime(id)).unwrap();
    }
    assert_eq!(q.remove(22).map(|t| t.id()), Some(22));
    let order: Vec<_> = q.iter().map(|t| t.id()).collect();
    assert_eq!(order, [20, 21, 23]);
    assert_eq!((q.waiting(), q.stealable(), q.rt_waiting), (3, 3, 3));
}

#[test]
fn hand_off_runs_the_blocked_task_in_place_and_keeps_the_counts() {
    let mut q = RunQueue::<8>::new();
    q.push(TaskDesc::stride(0, 1)).unwrap();
    q.push(TaskDesc::stride(1, 1)).unwrap();
    assert_eq!(q.pick(), Some(0));
    // 0 blocks handing the CPU to 2 (blocked until now, lag 0): 2 runs, 1 still waits.
    let blocked = q.hand_off(TaskDesc::stride(2, 1)).unwrap();
    assert_eq!(blocked.id(), 0);
    assert_eq!(q.current().map(|t| t.id()), Some(2));
    assert_eq!((q.waiting(), q.tasks()), (1, 2));
    // 2 joined at the virtual time: it is not ahead of 1, which was waiting.
    assert!(q.key(&q.current().unwrap()) <= q.key(&q.at(0)) + u64::from(crate::STRIDE1));
    // And back: 2 blocks, 0 runs again with the lag it left with.
    let back = q.hand_off(blocked).unwrap();
    assert_eq!((back.id(), q.current().map(|t| t.id())), (2, Some(0)));
    assert_eq!(q.tasks(), 2);
}

#[test]
fn hand_off_never_jumps_over_a_waiting_realtime_task() {
    let mut q = RunQueue::<8>::new();
    q.push(TaskDesc::stride(0, 1)).unwrap();
    assert_eq!(q.pick(), Some(0));
    q.push(TaskDesc::realtime(1)).unwrap();
    let next = TaskDesc::stride(2, 1);
    assert_eq!(q.hand_off(next).map_err(|t| t.id()), Err(2));
    // Nothing changed: 0 still runs, 1 still waits.
    assert_eq!(q.current().map(|t| t.id()), Some(0));
    assert_eq!(q.waiting(), 1);
    // A real-time task may be handed the CPU past another (it would preempt anyway).
    assert!(q.hand_off(TaskDesc::realtime(3)).is_ok());
    // With nothing running there is nothing to hand off from.
    let mut empty = RunQueue::<8>::new();
    assert!(empty.hand_off(TaskDesc::stride(4, 1)).is_err());
}
