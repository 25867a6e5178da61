//! The IPC ring (lib/ipc `ring.rs`): the producer's `head` and the consumer's `tail`
//! are u32 counters that wrap; `used = head - tail` (wrapping) and a message's slot is
//! `counter % n`, with `n` a power of two up to 2^31 (`slot_count` refuses others).
//!
//! Proved for every head, tail, offset and `n = 2^k`, k in 0..=31:
//! - the slot index moves on by one (mod n) when a counter does, also across 2^32;
//! - while `used < n`, the producer's slot is none of the `used` slots still held;
//! - publishing at `used < n` and releasing at `used > 0` keep `used` in 0..=n.

use crate::{agree, c, prove, samples, value, Proof};
use z3::ast::{Ast, Bool, BV};
use z3::Context;

pub const PROOFS: &[Proof] = &[
    Proof {
        name: "ring: slot index continues across the wrap",
        claim: "(h + 1) % n == (h % n + 1) % n for every u32 h and n = 2^k",
        check: continuous,
    },
    Proof {
        name: "ring: the producer's slot is never a held one",
        claim: "used = head - tail < n and i < used imply head % n != (tail + i) % n",
        check: no_overlap,
    },
    Proof {
        name: "ring: used stays within 0..=n",
        claim: "publish at used < n gives used + 1 <= n; release at used > 0 gives used - 1",
        check: bounded,
    },
];

/// `n = 1 << k` with `k <= 31`, as a constraint on a fresh `k`.
fn size<'a>(ctx: &'a Context) -> (BV<'a>, BV<'a>, Bool<'a>) {
    let k = BV::new_const(ctx, "k", 32);
    let n = c(ctx, 1, 32).bvshl(&k);
    let ok = k.bvule(&c(ctx, 31, 32));
    (k, n, ok)
}

fn continuous(ctx: &Context) -> Result<(), String> {
    let h = BV::new_const(ctx, "h", 32);
    let (k, n, ok) = size(ctx);
    let one = c(ctx, 1, 32);
    let claim = h
        .bvadd(&one)
        .bvurem(&n)
        ._eq(&h.bvurem(&n).bvadd(&one).bvurem(&n));
    prove(ctx, &ok.implies(&claim), &[&h, &k])?;
    // The model is the code's own expression: `wrapping_add(1) % n`.
    let inputs: Vec<[u64; 2]> = samples(32, 64)
        .into_iter()
        .flat_map(|h| [0, 1, 5, 31].map(|k| [h, k]))
        .collect();
    agree(
        &inputs,
        |&[h, k]| {
            value(
                &c(ctx, h, 32)
                    .bvadd(&c(ctx, 1, 32))
                    .bvurem(&c(ctx, 1 << k, 32)),
            )
        },
        |&[h, k]| u64::from((h as u32).wrapping_add(1) % (1u32 << k)),
    )
}

fn no_overlap(ctx: &Context) -> Result<(), String> {
    let head = BV::new_const(ctx, "head", 32);
    let tail = BV::new_const(ctx, "tail", 32);
    let i = BV::new_const(ctx, "i", 32);
    let (k, n, ok) = size(ctx);
    let used = head.bvsub(&tail);
    let pre = Bool::and(ctx, &[&ok, &used.bvult(&n), &i.bvult(&used)]);
    let claim = head.bvurem(&n)._eq(&tail.bvadd(&i).bvurem(&n)).not();
    prove(ctx, &pre.implies(&claim), &[&head, &tail, &i, &k])?;
    let inputs: Vec<[u64; 2]> = samples(32, 48)
        .into_iter()
        .flat_map(|h| samples(32, 12).into_iter().map(move |t| [h, t]))
        .collect();
    agree(
        &inputs,
        |&[h, t]| value(&c(ctx, h, 32).bvsub(&c(ctx, t, 32))),
        |&[h, t]| u64::from((h as u32).wrapping_sub(t as u32)),
    )
}

fn bounded(ctx: &Context) -> Result<(), String> {
    let head = BV::new_const(ctx, "head", 32);
    let tail = BV::new_const(ctx, "tail", 32);
    let (k, n, ok) = size(ctx);
    let one = c(ctx, 1, 32);
    let used = head.bvsub(&tail);
    let inv = Bool::and(ctx, &[&ok, &used.bvule(&n)]);
    let published = head.bvadd(&one).bvsub(&tail);
    let after_publish = used.bvult(&n).implies(&Bool::and(
        ctx,
        &[&published.bvule(&n), &published._eq(&used.bvadd(&one))],
    ));
    let released = head.bvsub(&tail.bvadd(&one));
    let zero = c(ctx, 0, 32);
    let after_release = used.bvugt(&zero).implies(&Bool::and(
        ctx,
        &[&released.bvule(&n), &released._eq(&used.bvsub(&one))],
    ));
    let claim = Bool::and(ctx, &[&after_publish, &after_release]);
    prove(ctx, &inv.implies(&claim), &[&head, &tail, &k])
}
