//! Unit tests of the pool's edges: laziness, staleness, retirement, drops.
use super::*;
use std::rc::Rc;
use std::vec::Vec;

// Only compiles if `new` is const, which is how the kernel declares its pools.
static _STATIC_POOL: LazyPool<u64, 16> = LazyPool::new();

#[test]
fn slots_are_initialised_only_when_first_needed() {
    let mut p = LazyPool::<u32, 8>::new();
    assert_eq!(p.touched(), 0);
    let a = p.alloc(1).unwrap();
    assert_eq!(p.touched(), 1);
    p.free(a).unwrap();
    // A freed slot is reused before a fresh one is touched.
    let b = p.alloc(2).unwrap();
    assert_eq!(b.index(), a.index());
    assert_eq!(p.touched(), 1);
    let c = p.alloc(3).unwrap();
    assert_eq!((c.index(), p.touched()), (1, 2));
}

#[test]
fn stale_handles_are_refused_everywhere() {
    let mut p = LazyPool::<&str, 2>::new();
    let old = p.alloc("old").unwrap();
    assert_eq!(p.free(old), Some("old"));
    let new = p.alloc("new").unwrap();
    assert_eq!(new.index(), old.index());
    assert_ne!(new.generation(), old.generation());
    assert_eq!(p.get(old), None);
    assert_eq!(p.get_mut(old), None);
    assert!(!p.contains(old));
    assert_eq!(p.free(old), None, "double free through a stale handle");
    assert_eq!(p.get(new), Some(&"new"));
    assert_eq!(p.len(), 1);
}

#[test]
fn out_of_range_and_forged_handles_are_refused() {
    let mut p = LazyPool::<u8, 4>::new();
    let h = p.alloc(9).unwrap();
    for raw in [
        Handle::from_raw(4),
        Handle::from_raw(u64::MAX),
        Handle::from_raw(1 << 32 | h.index() as u64),
    ] {
        assert_eq!(p.get(raw), None);
        assert_eq!(p.free(raw), None);
    }
    // A never-used slot with generation 0 is not live either.
    assert_eq!(p.get(Handle::from_raw(1)), None);
    assert_eq!(p.get_mut(Handle::from_raw(1)), None);
    assert_eq!(Handle::from_raw(h.to_raw()), h);
    assert_eq!(p.len(), 1);
}

#[test]
fn full_pool_gives_the_value_back_and_does_not_call_the_constructor() {
    let mut p = LazyPool::<u32, 2>::new();
    p.alloc(1).unwrap();
    p.alloc(2).unwrap();
    assert!(p.is_full());
    assert_eq!(p.alloc(3), Err(3));
    assert_eq!(p.alloc_with(|_| panic!("must not be called")), None);
}

#[test]
fn alloc_with_sees_its_own_handle() {
    let mut p = LazyPool::<Handle, 3>::new();
    for _ in 0..3 {
        let h = p.alloc_with(|me| me).unwrap();
        assert_eq!(p.get(h), Some(&h));
    }
}

#[test]
fn a_slot_is_retired_rather_than_wrapping_its_generation() {
    let mut p = LazyPool::<u8, 1>::new();
    let h = p.alloc(1).unwrap();
    // Pretend the slot has been recycled almost 2^32 times.
    p.slots[0].generation = u32::MAX - 1;
    let h = Handle {
        generation: u32::MAX - 1,
        ..h
    };
    assert_eq!(p.free(h), Some(1));
    assert!(p.is_full(), "the only slot is retired");
    assert_eq!(p.alloc(2), Err(2));
    assert!(p.is_empty());
}

#[test]
fn values_are_dropped_on_free_and_with_the_pool() {
    let token = Rc::new(());
    let mut p = LazyPool::<Rc<()>, 4>::new();
    let hs: Vec<_> = (0..3)
        .map(|_| p.alloc(Rc::clone(&token)).unwrap())
        .collect();
    assert_eq!(Rc::strong_count(&token), 4);
    drop(p.free(hs[1]));
    assert_eq!(Rc::strong_count(&token), 3);
    drop(p);
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn iter_lists_live_objects_in_slot_order() {
    let mut p = LazyPool::<u32, 4>::new();
    let hs: Vec<_> = (10..14).map(|v| p.alloc(v).unwrap()).collect();
    p.free(hs[2]).unwrap();
    let got: Vec<_> = p.iter().map(|(h, &v)| (h, v)).collect();
    assert_eq!(got, [(hs[0], 10), (hs[1], 11), (hs[3], 13)]);
    for (_, v) in p.iter_mut() {
        *v += 100;
    }
    assert_eq!(p.get(hs[3]), Some(&113));
}

#[test]
fn get_by_index_gives_the_live_object_and_its_current_handle() {
    let mut p = LazyPool::<u32, 4>::new();
    let a = p.alloc(10).unwrap();
    assert_eq!(p.get_by_index(a.index()), Some((a, &10)));
    p.free(a).unwrap();
    assert_eq!(p.get_by_index(a.index()), None);
    let b = p.alloc(20).unwrap();
    assert_eq!(b.index(), a.index());
    assert_eq!(p.get_by_index(b.index()), Some((b, &20)));
    assert_ne!(b, a);
    assert_eq!(p.get_by_index(3), None);
    assert_eq!(p.get_by_index(99), None);
}
