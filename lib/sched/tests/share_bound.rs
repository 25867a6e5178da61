//! Stride scheduling's proportional-share bound, checked exhaustively up to a stated
//! bound: every mix of two or three tasks with 1 to 12 tickets each (1,872 mixes), every
//! prefix of 1,000 quanta. After any number of quanta `e`, a task with `t` of `T`
//! tickets has run within `n - 1` quanta of its share `e * t / T` (n tasks), and any
//! two tasks' quanta per ticket differ by at most one stride of the one with fewer
//! tickets (`|got_i / t_i - got_j / t_j| <= 1 / min(t_i, t_j)`).
//! (The classic bound for stride scheduling; the integer strides `STRIDE1 / t` add an
//! error below 10^-5 quanta over this length.)
use zen_sched::{RunQueue, TaskDesc};

type Q = RunQueue<16>;

const QUANTA: usize = 1000;

/// The largest absolute lag of any task at any prefix, and the largest pairwise lag.
fn worst(tickets: &[u16]) -> (f64, f64) {
    let mut q = Q::new();
    for (id, &t) in tickets.iter().enumerate() {
        q.push(TaskDesc::stride(id as u32, t)).unwrap();
    }
    let total: f64 = tickets.iter().map(|&t| f64::from(t)).sum();
    let mut got = vec![0usize; tickets.len()];
    let (mut abs, mut pair) = (0f64, 0f64);
    for e in 1..=QUANTA {
        let id = q.pick().expect("runnable") as usize;
        got[id] += 1;
        q.tick();
        for (i, &t) in tickets.iter().enumerate() {
            let share = e as f64 * f64::from(t) / total;
            abs = abs.max((got[i] as f64 - share).abs());
            for (j, &u) in tickets.iter().enumerate() {
                // Quanta per ticket apart, in strides of the one with fewer tickets:
                // the one with the smallest pass runs, so passes stay within a stride.
                let lag = got[i] as f64 / f64::from(t) - got[j] as f64 / f64::from(u);
                pair = pair.max(lag.abs() * f64::from(t.min(u)));
            }
        }
    }
    (abs, pair)
}

#[test]
fn every_small_mix_stays_within_the_stride_bound() {
    let mut mixes: Vec<Vec<u16>> = Vec::new();
    // Every order too: equal passes go first come, first served.
    for a in 1..=12u16 {
        for b in 1..=12 {
            mixes.push(vec![a, b]);
            for c in 1..=12 {
                mixes.push(vec![a, b, c]);
            }
        }
    }
    let (mut max_abs, mut max_pair) = (0f64, 0f64);
    for m in &mixes {
        let (abs, pair) = worst(m);
        let n = m.len() as f64;
        assert!(
            abs <= n - 1.0 + 1e-9,
            "{m:?}: a task {abs} quanta off its share"
        );
        assert!(pair <= 1.0 + 1e-9, "{m:?}: two tasks {pair} strides apart");
        max_abs = max_abs.max(abs);
        max_pair = max_pair.max(pair);
    }
    eprintln!(
        "{} mixes: worst absolute lag {max_abs:.3}, worst pairwise {max_pair:.3}",
        mixes.len()
    );
}
