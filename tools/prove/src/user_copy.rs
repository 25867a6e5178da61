//! The kernel's copies from and to a process (kernel `arch/x86_64/user.rs`): the range
//! is checked with `user_range_end(va, len)`, then moved a page at a time, each piece
//! `page_piece(at, end)` bytes through one frame (abi `syscall.rs`).
//!
//! Proved for every 64-bit `va`, `len`, `at`, `end`:
//! - `user_range_end` accepts exactly the ranges that neither wrap nor reach
//!   `USER_END`, and then every byte of the range is below `USER_END`;
//! - for `at < end`, a piece is at least one byte, stays inside `at`'s page, and ends
//!   at or before `end`: the copy loop moves through whole frames, never past its
//!   range, and ends.

use crate::{agree, c, prove, samples, value, Proof};
use z3::ast::{Ast, Bool, BV};
use z3::Context;
use zen_abi::syscall::{page_piece, user_range_end, USER_END};

pub const PROOFS: &[Proof] = &[
    Proof {
        name: "user copy: the range check is exact",
        claim: "user_range_end(va, len) accepts iff va + len does not wrap and <= USER_END",
        check: range,
    },
    Proof {
        name: "user copy: each piece lies in one page and in the range",
        claim: "at < end: 1 <= piece, at % 4096 + piece <= 4096, at + piece <= end",
        check: piece,
    },
];

/// `user_range_end` as the code computes it: (accepted, end).
fn range_model<'a>(ctx: &'a Context, va: &BV<'a>, len: &BV<'a>) -> (Bool<'a>, BV<'a>) {
    let end = va.bvadd(len);
    let no_wrap = end.bvuge(va);
    let ok = Bool::and(ctx, &[&no_wrap, &end.bvule(&c(ctx, USER_END, 64))]);
    (ok, end)
}

fn piece_model<'a>(ctx: &'a Context, at: &BV<'a>, end: &BV<'a>) -> BV<'a> {
    let room = c(ctx, 4096, 64).bvsub(&at.bvurem(&c(ctx, 4096, 64)));
    let left = end.bvsub(at);
    room.bvult(&left).ite(&room, &left)
}

fn range(ctx: &Context) -> Result<(), String> {
    let va = BV::new_const(ctx, "va", 64);
    let len = BV::new_const(ctx, "len", 64);
    let x = BV::new_const(ctx, "x", 64);
    let (ok, end) = range_model(ctx, &va, &len);
    // Accepted iff the mathematical sum (in 65 bits) is at most USER_END.
    let wide = va.zero_ext(1).bvadd(&len.zero_ext(1));
    let exact = ok._eq(&wide.bvule(&c(ctx, USER_END, 65)));
    let inside = Bool::and(ctx, &[&ok, &x.bvuge(&va), &x.bvult(&end)])
        .implies(&x.bvult(&c(ctx, USER_END, 64)));
    prove(ctx, &Bool::and(ctx, &[&exact, &inside]), &[&va, &len, &x])?;
    let inputs: Vec<[u64; 2]> = samples(64, 60)
        .into_iter()
        .flat_map(|v| samples(64, 20).into_iter().map(move |l| [v, l]))
        .chain([[USER_END - 1, 1], [USER_END, 0], [USER_END - 4096, 4097]])
        .collect();
    agree(
        &inputs,
        |&[v, l]| {
            let (ok, end) = range_model(ctx, &c(ctx, v, 64), &c(ctx, l, 64));
            if crate::truth(&ok) {
                value(&end)
            } else {
                u64::MAX
            }
        },
        |&[v, l]| user_range_end(v, l).unwrap_or(u64::MAX),
    )
}

fn piece(ctx: &Context) -> Result<(), String> {
    let at = BV::new_const(ctx, "at", 64);
    let end = BV::new_const(ctx, "end", 64);
    let p = piece_model(ctx, &at, &end);
    let page = at.bvurem(&c(ctx, 4096, 64));
    let claim = Bool::and(
        ctx,
        &[
            &p.bvuge(&c(ctx, 1, 64)),
            &page.bvadd(&p).bvule(&c(ctx, 4096, 64)),
            // No wrap on the way: at + p computed in 65 bits.
            &at.zero_ext(1).bvadd(&p.zero_ext(1)).bvule(&end.zero_ext(1)),
        ],
    );
    prove(ctx, &at.bvult(&end).implies(&claim), &[&at, &end])?;
    let inputs: Vec<[u64; 2]> = samples(64, 60)
        .into_iter()
        .flat_map(|a| samples(64, 20).into_iter().map(move |e| [a, e]))
        .filter(|[a, e]| a < e)
        .collect();
    agree(
        &inputs,
        |&[a, e]| value(&piece_model(ctx, &c(ctx, a, 64), &c(ctx, e, 64))),
        |&[a, e]| page_piece(a, e),
    )
}
