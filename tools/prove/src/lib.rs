//! zen-prove: SMT proofs of the arithmetic Zen OS relies on, for every value of its
//! variables (Z3 over bit-vectors of the code's widths), not for samples:
//!
//! - [`ring`]: the IPC ring's wrapping head and tail (u32) and slot indices;
//! - [`stride`]: the scheduler's pass comparison across the wrap of u64 passes;
//! - [`token`]: the token page's slot addresses (`zen_abi::cap::slot_at`);
//! - [`user_copy`]: the kernel's user-range check and per-page copy pieces
//!   (`zen_abi::syscall::user_range_end`, `page_piece`).
//!
//! Each proof asks Z3 for a counterexample (the claim's negation) and holds when the
//! answer is unsat; a counterexample is printed with its values. So that a formula
//! cannot drift from the code it describes, each family also evaluates its formulas on
//! edge and pseudo-random values and compares them with the Rust functions themselves
//! ([`agree`]).
#![deny(unsafe_code)]

pub mod ring;
pub mod stride;
pub mod token;
pub mod user_copy;

use z3::ast::{Ast, Bool, BV};
use z3::{Context, SatResult, Solver};

/// One proved property.
#[derive(Debug, Clone, Copy)]
pub struct Proof {
    pub name: &'static str,
    /// What holds, in words.
    pub claim: &'static str,
    /// Builds the claim and proves it; `Err` with a counterexample or Z3's reason.
    pub check: fn(&Context) -> Result<(), String>,
}

/// Every proof, by family.
pub fn all() -> Vec<Proof> {
    [
        ring::PROOFS,
        stride::PROOFS,
        token::PROOFS,
        user_copy::PROOFS,
    ]
    .concat()
}

/// Proves `claim` over the free variables `vars` (named for the report): asks for a
/// model of its negation.
pub fn prove(ctx: &Context, claim: &Bool, vars: &[&BV]) -> Result<(), String> {
    let s = Solver::new(ctx);
    s.assert(&claim.not());
    match s.check() {
        SatResult::Unsat => Ok(()),
        SatResult::Unknown => Err(format!("z3 gave up: {:?}", s.get_reason_unknown())),
        SatResult::Sat => {
            let m = s.get_model().ok_or("sat without a model")?;
            let vals: Vec<String> = vars
                .iter()
                .map(|v| {
                    let x = m.eval(*v, true).and_then(|x| x.as_u64());
                    format!("{v} = {}", x.map_or("?".into(), |x| format!("{x:#x}")))
                })
                .collect();
            Err(format!("counterexample: {}", vals.join(", ")))
        }
    }
}

/// A constant of `bits` bits.
pub fn c<'a>(ctx: &'a Context, v: u64, bits: u32) -> BV<'a> {
    BV::from_u64(ctx, v, bits)
}

/// The value of a closed term (all its variables replaced by constants).
pub fn value(t: &BV) -> u64 {
    t.simplify()
        .as_u64()
        .expect("a closed term simplifies to a numeral")
}

/// The truth of a closed formula.
pub fn truth(t: &Bool) -> bool {
    t.simplify()
        .as_bool()
        .expect("a closed formula simplifies to true or false")
}

/// Edge values of a `bits`-bit word and a deterministic spread of others (xorshift).
pub fn samples(bits: u32, n: usize) -> Vec<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let mut v = vec![
        0,
        1,
        2,
        max,
        max - 1,
        max / 2,
        max / 2 + 1,
        4095,
        4096,
        4097,
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Many near page and word boundaries, the rest anywhere.
        let r = match x % 4 {
            0 => x & 0xFFFF,
            1 => (x & !0xFFF).wrapping_add(x % 3).wrapping_sub(1),
            _ => x,
        };
        v.push(r & max);
    }
    v
}

/// Checks that `model` (a formula built from constants) and `code` (the Rust
/// function) agree on every combination of `inputs`; the first disagreement.
pub fn agree<const N: usize>(
    inputs: &[[u64; N]],
    model: impl Fn(&[u64; N]) -> u64,
    code: impl Fn(&[u64; N]) -> u64,
) -> Result<(), String> {
    for i in inputs {
        let (m, r) = (model(i), code(i));
        if m != r {
            return Err(format!("model and code differ at {i:x?}: {m:#x} vs {r:#x}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: a false claim gets a counterexample, a true one holds.
    #[test]
    fn a_false_claim_is_refuted_and_a_true_one_proved() {
        let ctx = Context::new(&z3::Config::new());
        let x = BV::new_const(&ctx, "x", 8);
        let wrong = x.bvadd(&c(&ctx, 1, 8)).bvugt(&x);
        let e = prove(&ctx, &wrong, &[&x]).unwrap_err();
        assert!(e.contains("x = 0xff"), "{e}");
        let right = x.bvadd(&c(&ctx, 1, 8)).bvsub(&x)._eq(&c(&ctx, 1, 8));
        prove(&ctx, &right, &[&x]).unwrap();
    }

    #[test]
    fn every_proof_holds() {
        let ctx = Context::new(&z3::Config::new());
        for p in all() {
            (p.check)(&ctx).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }
}
