//! Property test: a `LazyPool` behaves like a plain map from handle to value.
//!
//! Random sequences of alloc / free / get / mutate, including through stale and forged
//! handles, run against both the pool and a `Vec` model of live handles; after every
//! step the two must agree. The pool is small so slots are recycled many times.
use proptest::prelude::*;
use std::collections::HashSet;
use zen_pool::{Handle, LazyPool};

const N: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Alloc(u32),
    /// Free the live handle at this position (modulo the live count).
    Free(usize),
    /// Use a handle that was freed earlier.
    UseStale(usize),
    Mutate(usize, u32),
    Forged(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        2 => any::<usize>().prop_map(Op::UseStale),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Mutate(i, v)),
        1 => any::<u64>().prop_map(Op::Forged),
    ]
}

proptest! {
    #[test]
    fn pool_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        let mut pool = LazyPool::<u32, N>::new();
        let mut live: Vec<(Handle, u32)> = Vec::new();
        let mut stale: Vec<Handle> = Vec::new();
        let mut issued: HashSet<Handle> = HashSet::new();
        for op in ops {
            match op {
                Op::Alloc(v) => match pool.alloc(v) {
                    Ok(h) => {
                        prop_assert!(live.len() < N);
                        prop_assert!(issued.insert(h), "handle {h:?} issued twice");
                        live.push((h, v));
                    }
                    Err(back) => {
                        prop_assert_eq!(back, v);
                        prop_assert_eq!(live.len(), N);
                    }
                },
                Op::Free(i) if !live.is_empty() => {
                    let (h, v) = live.swap_remove(i % live.len());
                    prop_assert_eq!(pool.free(h), Some(v));
                    stale.push(h);
                }
                Op::UseStale(i) if !stale.is_empty() => {
                    let h = stale[i % stale.len()];
                    prop_assert_eq!(pool.get(h), None);
                    prop_assert_eq!(pool.get_mut(h), None);
                    prop_assert_eq!(pool.free(h), None);
                }
                Op::Mutate(i, v) if !live.is_empty() => {
                    let k = i % live.len();
                    *pool.get_mut(live[k].0).expect("live") = v;
                    live[k].1 = v;
                }
                Op::Forged(raw) => {
                    let h = Handle::from_raw(raw);
                    let expect = live.iter().find(|(l, _)| *l == h).map(|(_, v)| *v);
                    prop_assert_eq!(pool.get(h).copied(), expect);
                }
                _ => {}
            }
            prop_assert_eq!(pool.len(), live.len());
            prop_assert_eq!(pool.is_full(), live.len() == N);
            prop_assert!(pool.touched() <= N);
            for (h, v) in &live {
                prop_assert_eq!(pool.get(*h), Some(v));
            }
            let mut listed: Vec<_> = pool.iter().map(|(h, v)| (h, *v)).collect();
            let mut model = live.clone();
            listed.sort();
            model.sort();
            prop_assert_eq!(listed, model);
        }
    }
}
