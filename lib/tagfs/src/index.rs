//! The tag index: a cuckoo hash table from tag to the sorted set of objects carrying it.
//!
//! Buckets of four slots, two candidate buckets per tag (both derived from one 64-bit
//! hash of the tag's bytes), eviction on collision and doubling when a chain of evictions
//! runs too long. Lookups touch at most two buckets. Sets of up to [`INLINE`] ids live in
//! the slot itself (an `ArrayVec`); larger ones spill to a heap vector, which the
//! checkpoint writes as posting blocks (see `checkpoint`). Tag names are interned once in
//! `names`, indexed by `TagId`; objects hold `TagId`s, so a name is stored once however
//! many objects carry it.

use crate::meta::ObjectId;
use alloc::boxed::Box;
use alloc::vec::Vec;
use arrayvec::ArrayVec;

/// A tag's interned id; stable while the tag has objects, renumbered by a checkpoint.
pub type TagId = u32;
/// Largest set stored inline in the table's slot.
pub const INLINE: usize = 5;
const WAYS: usize = 4;
const MAX_KICKS: usize = 256;
const SEED: u64 = 0x7a65_6e74_6167_6673;

/// The objects carrying one tag, sorted ascending, no duplicates.
#[derive(Debug, Clone)]
pub enum Postings {
    /// Small set, in the slot.
    Inline(ArrayVec<ObjectId, INLINE>),
    /// Large set, spilled.
    Spilled(Vec<ObjectId>),
}

impl Postings {
    /// The ids, sorted.
    pub fn as_slice(&self) -> &[ObjectId] {
        match self {
            Postings::Inline(a) => a,
            Postings::Spilled(v) => v,
        }
    }
    /// Adds `id`; false if it was there.
    fn insert(&mut self, id: ObjectId) -> bool {
        let pos = match self.as_slice().binary_search(&id) {
            Ok(_) => return false,
            Err(p) => p,
        };
        match self {
            Postings::Inline(a) if !a.is_full() => a.insert(pos, id),
            Postings::Inline(a) => {
                let mut v = Vec::with_capacity(INLINE * 2);
                v.extend_from_slice(a);
                v.insert(pos, id);
                *self = Postings::Spilled(v);
            }
            Postings::Spilled(v) => v.insert(pos, id),
        }
        true
    }
    /// Removes `id`; false if it was not there.
    fn remove(&mut self, id: ObjectId) -> bool {
        let Ok(pos) = self.as_slice().binary_search(&id) else {
            return false;
        };
        match self {
            Postings::Inline(a) => {
                a.remove(pos);
            }
            Postings::Spilled(v) => {
                v.remove(pos);
                if v.len() <= INLINE {
                    *self = Postings::Inline(v.iter().copied().collect());
                }
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
struct Slot {
    hash: u64,
    tag: TagId,
    set: Postings,
}

/// The cuckoo table plus the interned names.
#[derive(Debug, Clone)]
pub struct TagIndex {
    slots: Vec<Option<Slot>>,
    mask: usize,
    names: Vec<Option<Box<str>>>,
    free_ids: Vec<TagId>,
    len: usize,
    kick: usize,
}

impl Default for TagIndex {
    fn default() -> Self {
        Self::with_buckets(16)
    }
}

fn hash(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), SEED)
}

impl TagIndex {
    fn with_buckets(buckets: usize) -> Self {
        let buckets = buckets.next_power_of_two();
        let mut slots = Vec::new();
        slots.resize_with(buckets * WAYS, || None);
        TagIndex {
            slots,
            mask: buckets - 1,
            names: Vec::new(),
            free_ids: Vec::new(),
            len: 0,
            kick: 0,
        }
    }

    fn buckets_of(&self, h: u64) -> [usize; 2] {
        // Two independent halves of the hash pick the buckets.
        [
            (h as usize) & self.mask,
            ((h >> 32) as usize ^ 0x5bd1_e995) & self.mask,
        ]
    }

    fn find(&self, name: &str) -> Option<usize> {
        let h = hash(name);
        for b in self.buckets_of(h) {
            for i in b * WAYS..(b + 1) * WAYS {
                if let Some(s) = &self.slots[i] {
                    if s.hash == h && self.names[s.tag as usize].as_deref() == Some(name) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Number of distinct tags.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if no tag is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The objects carrying `name` (empty if none).
    pub fn get(&self, name: &str) -> &[ObjectId] {
        match self.find(name) {
            Some(i) => self.slots[i].as_ref().map_or(&[], |s| s.set.as_slice()),
            None => &[],
        }
    }
    /// The interned id of `name`, if some object carries it.
    pub fn id_of(&self, name: &str) -> Option<TagId> {
        self.find(name)
            .and_then(|i| self.slots[i].as_ref().map(|s| s.tag))
    }
    /// The name of tag `id`.
    pub fn name(&self, id: TagId) -> Option<&str> {
        self.names.get(id as usize).and_then(|n| n.as_deref())
    }

    /// Adds `obj` to `name`'s set, creating the tag. Returns the tag's id and whether
    /// `obj` was newly added.
    pub fn insert(&mut self, name: &str, obj: ObjectId) -> (TagId, bool) {
        if let Some(i) = self.find(name) {
            let s = self.slots[i].as_mut().expect("find returns full slots");
            return (s.tag, s.set.insert(obj));
        }
        let tag = match self.free_ids.pop() {
            Some(t) => {
                self.names[t as usize] = Some(name.into());
                t
            }
            None => {
                self.names.push(Some(name.into()));
                (self.names.len() - 1) as TagId
            }
        };
        let mut set = ArrayVec::new();
        set.push(obj);
        self.place(Slot {
            hash: hash(name),
            tag,
            set: Postings::Inline(set),
        });
        self.len += 1;
        (tag, true)
    }

    /// Inserts a whole set for a new tag (mount uses this to load the checkpoint).
    pub(crate) fn insert_set(&mut self, name: &str, ids: Vec<ObjectId>) -> TagId {
        let set = if ids.len() <= INLINE {
            Postings::Inline(ids.iter().copied().collect())
        } else {
            Postings::Spilled(ids)
        };
        let tag = self.names.len() as TagId;
        self.names.push(Some(name.into()));
        self.place(Slot {
            hash: hash(name),
            tag,
            set,
        });
        self.len += 1;
        tag
    }

    /// Removes `obj` from `name`'s set, dropping the tag when its set empties. Returns
    /// whether it was there.
    pub fn remove(&mut self, name: &str, obj: ObjectId) -> bool {
        let Some(i) = self.find(name) else {
            return false;
        };
        let s = self.slots[i].as_mut().expect("find returns full slots");
        let removed = s.set.remove(obj);
        if s.set.as_slice().is_empty() {
            let tag = s.tag;
            self.slots[i] = None;
            self.names[tag as usize] = None;
            self.free_ids.push(tag);
            self.len -= 1;
        }
        removed
    }

    fn place(&mut self, mut item: Slot) {
        loop {
            for _ in 0..MAX_KICKS {
                let bs = self.buckets_of(item.hash);
                for b in bs {
                    for i in b * WAYS..(b + 1) * WAYS {
                        if self.slots[i].is_none() {
                            self.slots[i] = Some(item);
                            return;
                        }
                    }
                }
                // Both buckets full: evict a victim (rotating choice) from one of them
                // and carry it on to its other bucket.
                self.kick = self.kick.wrapping_add(1);
                let b = bs[self.kick & 1];
                let i = b * WAYS + (self.kick >> 1) % WAYS;
                item = self.slots[i].replace(item).expect("bucket was full");
            }
            self.grow();
        }
    }

    fn grow(&mut self) {
        let old = core::mem::take(&mut self.slots);
        let buckets = (self.mask + 1) * 2;
        self.slots.resize_with(buckets * WAYS, || None);
        self.mask = buckets - 1;
        for s in old.into_iter().flatten() {
            self.place(s);
        }
    }

    /// Every tag with its set, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[ObjectId])> + '_ {
        self.slots.iter().flatten().map(move |s| {
            (
                self.names[s.tag as usize].as_deref().unwrap_or(""),
                s.set.as_slice(),
            )
        })
    }

    /// Tags starting with `prefix`, with their sets.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a [ObjectId]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.starts_with(prefix))
            .map(|(_, s)| s)
    }

    /// Heap and table bytes the index occupies (for the benchmark's per-object figure).
    pub fn memory_bytes(&self) -> usize {
        let table = self.slots.capacity() * core::mem::size_of::<Option<Slot>>();
        let spilled: usize = self
            .slots
            .iter()
            .flatten()
            .map(|s| match &s.set {
                Postings::Spilled(v) => v.capacity() * 4,
                Postings::Inline(_) => 0,
            })
            .sum();
        let names: usize = self.names.capacity() * core::mem::size_of::<Option<Box<str>>>()
            + self.names.iter().flatten().map(|n| n.len()).sum::<usize>();
        table + spilled + names + self.free_ids.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    #[test]
    fn insert_lookup_remove_many() {
        let mut ix = TagIndex::default();
        for t in 0..2000u32 {
            for o in 0..(t % 9) {
                ix.insert(&format!("tag{t}"), o * 3);
            }
        }
        assert_eq!(ix.len(), 2000 - 2000 / 9 - 1);
        for t in 0..2000u32 {
            let want: Vec<u32> = (0..(t % 9)).map(|o| o * 3).collect();
            assert_eq!(ix.get(&format!("tag{t}")), &want[..], "tag{t}");
        }
        assert!(ix.remove("tag8", 3));
        assert!(!ix.remove("tag8", 3));
        assert_eq!(ix.get("tag8"), &[0, 6, 9, 12, 15, 18, 21]);
        for o in [0, 6, 9, 12, 15, 18, 21] {
            ix.remove("tag8", o);
        }
        assert!(ix.get("tag8").is_empty());
        assert!(ix.id_of("tag8").is_none());
        // The freed id is reused by the next new tag.
        let (id, _) = ix.insert("fresh", 1);
        assert_eq!(ix.name(id), Some("fresh"));
    }

    #[test]
    fn sets_stay_sorted_across_spill() {
        let mut ix = TagIndex::default();
        for o in [9, 3, 7, 1, 5, 11, 2, 8] {
            assert!(ix.insert("x", o).1);
        }
        assert!(!ix.insert("x", 7).1);
        assert_eq!(ix.get("x"), &[1, 2, 3, 5, 7, 8, 9, 11]);
        let v: Vec<u32> = ix.with_prefix("x").flat_map(|s| s.to_vec()).collect();
        assert_eq!(v, vec![1, 2, 3, 5, 7, 8, 9, 11]);
    }
}
