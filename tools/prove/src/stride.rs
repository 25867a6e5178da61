//! Stride scheduling (lib/sched `queue.rs`): passes are u64 and wrap; a queue orders
//! its tasks by `pass - vtime` (wrapping), the virtual time being at or below every
//! waiting pass. A task is charged at most `STRIDE1` (2^30) a quantum, and passes stay
//! within a window above the virtual time far smaller than 2^62 (a pass moves ahead
//! only while its task runs, which it does only while its pass is the smallest).
//!
//! Proved for every virtual time and offsets below 2^63 (2^62 for the charge):
//! - ordering by `pass - vtime` is the order of the true, unwrapped passes;
//! - a charge of up to `STRIDE1` to a pass inside the window keeps it in order.

use crate::{agree, c, prove, samples, value, Proof};
use z3::ast::{Ast, Bool, BV};
use z3::Context;
use zen_sched::STRIDE1;

pub const PROOFS: &[Proof] = &[
    Proof {
        name: "stride: pass order survives the wrap",
        claim: "d1, d2 < 2^63: (vtime + d1) - vtime < (vtime + d2) - vtime iff d1 < d2",
        check: order,
    },
    Proof {
        name: "stride: a charge keeps a pass in order",
        claim: "d < 2^62, s <= STRIDE1: (vtime + d + s) - vtime == d + s < 2^63",
        check: charge,
    },
];

fn order(ctx: &Context) -> Result<(), String> {
    let vt = BV::new_const(ctx, "vtime", 64);
    let d1 = BV::new_const(ctx, "d1", 64);
    let d2 = BV::new_const(ctx, "d2", 64);
    let half = c(ctx, 1 << 63, 64);
    let (k1, k2) = (vt.bvadd(&d1).bvsub(&vt), vt.bvadd(&d2).bvsub(&vt));
    let pre = Bool::and(ctx, &[&d1.bvult(&half), &d2.bvult(&half)]);
    let claim = k1.bvult(&k2)._eq(&d1.bvult(&d2));
    prove(ctx, &pre.implies(&claim), &[&vt, &d1, &d2])?;
    // The code's key, `pass.wrapping_sub(vtime)`, against the model's.
    let inputs: Vec<[u64; 2]> = samples(64, 40)
        .into_iter()
        .flat_map(|p| samples(64, 10).into_iter().map(move |v| [p, v]))
        .collect();
    agree(
        &inputs,
        |&[p, v]| value(&c(ctx, p, 64).bvsub(&c(ctx, v, 64))),
        |&[p, v]| p.wrapping_sub(v),
    )
}

fn charge(ctx: &Context) -> Result<(), String> {
    let vt = BV::new_const(ctx, "vtime", 64);
    let d = BV::new_const(ctx, "d", 64);
    let s = BV::new_const(ctx, "s", 64);
    let pre = Bool::and(
        ctx,
        &[
            &d.bvult(&c(ctx, 1 << 62, 64)),
            &s.bvule(&c(ctx, u64::from(STRIDE1), 64)),
        ],
    );
    let key = vt.bvadd(&d).bvadd(&s).bvsub(&vt);
    let claim = Bool::and(
        ctx,
        &[&key._eq(&d.bvadd(&s)), &key.bvult(&c(ctx, 1 << 63, 64))],
    );
    prove(ctx, &pre.implies(&claim), &[&vt, &d, &s])
}
