//! The token page (abi `cap.rs`): a process names a token by the address of its slot,
//! and the kernel turns that address back into a slot index with `slot_at` (a header
//! of 64 bytes, then `TOKENS_PER_PAGE` slots of 64 bytes in one 4 KiB page).
//!
//! Proved for every 64-bit address and every index:
//! - `slot_at(ptr) == Some(i)` only if `i < TOKENS_PER_PAGE`, `slot_addr(i) == ptr`
//!   and the whole slot lies inside the token page, after its header;
//! - `slot_at(slot_addr(i)) == Some(i)` for every `i < TOKENS_PER_PAGE`.

use crate::{agree, c, prove, samples, truth, value, Proof};
use z3::ast::{Ast, Bool, BV};
use z3::Context;
use zen_abi::cap::{slot_addr, slot_at, TokenSlot, TOKENS_PER_PAGE};
use zen_abi::syscall::TOKEN_PAGE;

pub const PROOFS: &[Proof] = &[
    Proof {
        name: "token: an accepted address is exactly one slot of the page",
        claim: "slot_at(p) = Some(i) implies i < 63, slot_addr(i) = p, slot inside the page",
        check: exact,
    },
    Proof {
        name: "token: every slot's address is accepted as itself",
        claim: "i < 63 implies slot_at(slot_addr(i)) = Some(i)",
        check: complete,
    },
];

const SIZE: u64 = TokenSlot::SIZE as u64;
const SLOTS: u64 = TOKENS_PER_PAGE as u64;

/// `slot_at` as the code computes it: (accepted, index).
fn model<'a>(ctx: &'a Context, ptr: &BV<'a>) -> (Bool<'a>, BV<'a>) {
    let off = ptr.bvsub(&c(ctx, slot_addr(0), 64));
    let size = c(ctx, SIZE, 64);
    let ok = Bool::and(
        ctx,
        &[
            &off.bvult(&c(ctx, SLOTS * SIZE, 64)),
            &off.bvurem(&size)._eq(&c(ctx, 0, 64)),
        ],
    );
    (ok, off.bvudiv(&size))
}

/// `slot_addr` as the code computes it.
fn addr<'a>(ctx: &'a Context, i: &BV<'a>) -> BV<'a> {
    c(ctx, TOKEN_PAGE, 64).bvadd(&c(ctx, SIZE, 64).bvmul(&c(ctx, 1, 64).bvadd(i)))
}

fn exact(ctx: &Context) -> Result<(), String> {
    let ptr = BV::new_const(ctx, "ptr", 64);
    let (ok, i) = model(ctx, &ptr);
    let inside = Bool::and(
        ctx,
        &[
            &i.bvult(&c(ctx, SLOTS, 64)),
            &addr(ctx, &i)._eq(&ptr),
            &ptr.bvuge(&c(ctx, TOKEN_PAGE + SIZE, 64)),
            &ptr.bvadd(&c(ctx, SIZE, 64))
                .bvule(&c(ctx, TOKEN_PAGE + 4096, 64)),
        ],
    );
    prove(ctx, &ok.implies(&inside), &[&ptr])?;
    // The model against `slot_at` itself, around the page and anywhere.
    let mut inputs: Vec<[u64; 1]> = samples(64, 400).into_iter().map(|x| [x]).collect();
    inputs.extend((TOKEN_PAGE - 130..TOKEN_PAGE + 4200).map(|x| [x]));
    agree(
        &inputs,
        |&[p]| {
            let (ok, i) = model(ctx, &c(ctx, p, 64));
            if truth(&ok) {
                value(&i)
            } else {
                u64::MAX
            }
        },
        |&[p]| slot_at(p).map_or(u64::MAX, |i| i as u64),
    )
}

fn complete(ctx: &Context) -> Result<(), String> {
    let i = BV::new_const(ctx, "i", 64);
    let (ok, j) = model(ctx, &addr(ctx, &i));
    let claim = Bool::and(ctx, &[&ok, &j._eq(&i)]);
    prove(ctx, &i.bvult(&c(ctx, SLOTS, 64)).implies(&claim), &[&i])?;
    let inputs: Vec<[u64; 1]> = (0..SLOTS + 3).map(|i| [i]).collect();
    agree(
        &inputs,
        |&[i]| value(&addr(ctx, &c(ctx, i, 64))),
        |&[i]| slot_addr(i as usize),
    )
}
