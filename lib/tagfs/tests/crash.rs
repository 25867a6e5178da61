//! Crash safety: randomised workloads on a device that records every write and flush,
//! then a simulated power cut at every write point.
//!
//! For each cut, the image is: every write before the last completed flush, plus the
//! writes in flight after it applied in three ways — all in order (a plain cut), none
//! (the device dropped its cache), and a random subset (reordered and partly lost).
//! Each image must mount, pass `check` (every content checksum, index agreement), and
//! equal the model's state after some prefix of the operations no shorter than the last
//! `sync` that had returned: nothing acknowledged is lost, nothing half-applied appears.
//! The total number of images mounted is printed (`--nocapture`) and asserted.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use zen_tagfs::{BlockDevice, Config, Fs, Result, BLOCK_SIZE};

#[derive(Clone)]
enum Op {
    Write(u64, Rc<[u8]>),
    Flush,
}

/// A device that keeps its blocks and logs every write and flush.
#[derive(Clone)]
struct RecDev {
    count: u64,
    blocks: HashMap<u64, Rc<[u8]>>,
    log: Rc<RefCell<Vec<Op>>>,
}

impl BlockDevice for RecDev {
    fn block_count(&self) -> u64 {
        self.count
    }
    fn read_block(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        assert!(lba < self.count);
        match self.blocks.get(&lba) {
            Some(b) => buf.copy_from_slice(b),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn write_block(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        assert!(lba < self.count && buf.len() == BLOCK_SIZE);
        let b: Rc<[u8]> = buf.into();
        self.blocks.insert(lba, b.clone());
        self.log.borrow_mut().push(Op::Write(lba, b));
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.log.borrow_mut().push(Op::Flush);
        Ok(())
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so every failure reproduces from its seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const OPS: usize = 60;
const WARMUP: usize = 150;
const SEGS: u64 = 10;

type State = BTreeMap<u32, (Vec<u8>, BTreeSet<String>)>;

fn cfg() -> Config {
    // Small thresholds so checkpoints and the cleaner run inside short workloads.
    Config {
        max_journal_segments: 3,
        clean_below: 5,
        clean_batch: 3,
    }
}

const TAGS: [&str; 6] = [
    "red",
    "green",
    "type:text",
    "year:2024",
    "path:/a/b",
    "path:/a/c",
];

/// One random operation on both the file system and the model; true if it was a sync.
fn step(fs: &mut Fs<RecDev>, model: &mut State, rng: &mut Rng) -> bool {
    let ids: Vec<u32> = model.keys().copied().collect();
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    match rng.below(13) {
        0 | 1 if model.len() < 6 => {
            let id = fs.create().unwrap();
            model.insert(id, (Vec::new(), BTreeSet::new()));
        }
        2..=4 | 12 if !ids.is_empty() => {
            let id = pick(rng);
            let len = rng.below(70_000) as usize + 1;
            let off = rng.below(30_000);
            let byte = rng.next() as u8;
            let data = vec![byte; len];
            fs.write(id, off, &data).unwrap();
            let c = &mut model.get_mut(&id).unwrap().0;
            if c.len() < off as usize + len {
                c.resize(off as usize + len, 0);
            }
            c[off as usize..off as usize + len].copy_from_slice(&data);
        }
        5 if !ids.is_empty() => {
            let id = pick(rng);
            let size = rng.below(50_000);
            fs.truncate(id, size).unwrap();
            model.get_mut(&id).unwrap().0.resize(size as usize, 0);
        }
        6 | 7 if !ids.is_empty() => {
            let id = pick(rng);
            let t = TAGS[rng.below(TAGS.len() as u64) as usize];
            if rng.below(3) == 0 {
                fs.remove_tag(id, t).unwrap();
                model.get_mut(&id).unwrap().1.remove(t);
            } else {
                fs.add_tag(id, t).unwrap();
                model.get_mut(&id).unwrap().1.insert(t.to_string());
            }
        }
        8 if !ids.is_empty() => {
            let id = pick(rng);
            fs.delete(id).unwrap();
            model.remove(&id);
        }
        9 => fs.checkpoint().unwrap(),
        10 => {
            fs.clean().unwrap();
        }
        _ => {
            fs.sync().unwrap();
            return true;
        }
    }
    false
}

/// Runs a workload: an unrecorded warm-up that fills the device so segments are being
/// reused, then `OPS` recorded operations. Returns the device log, the state after every
/// recorded operation and, for every `sync` that returned, (log length at return,
/// operations done by then).
fn workload(seed: u64, base: &mut RecDev) -> (Vec<Op>, Vec<State>, Vec<(usize, usize)>) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut fs = Fs::mount(base.clone(), cfg()).unwrap();
    let mut model = State::new();
    for _ in 0..WARMUP {
        step(&mut fs, &mut model, &mut rng);
    }
    fs.sync().unwrap();
    // The recorded run starts from the image as it is now.
    base.blocks = fs.device().blocks.clone();
    base.log.borrow_mut().clear();
    let mut states = vec![model.clone()];
    let mut acks = Vec::new();
    for _ in 0..OPS {
        if step(&mut fs, &mut model, &mut rng) {
            acks.push((base.log.borrow().len(), states.len() - 1));
        } else {
            states.push(model.clone());
        }
    }
    fs.sync().unwrap();
    acks.push((base.log.borrow().len(), states.len() - 1));
    let log = base.log.borrow().clone();
    (log, states, acks)
}

fn observe(fs: &mut Fs<RecDev>) -> State {
    let ids: Vec<u32> = fs.ids().collect();
    ids.into_iter()
        .map(|id| {
            let content = fs
                .read_all(id)
                .expect("content of a mounted image reads back");
            let tags = fs.tags(id).unwrap().into_iter().collect();
            (id, (content, tags))
        })
        .collect()
}

#[test]
fn crash_at_every_write_point() {
    let (mut tried, mut reused_total) = (0usize, 0usize);
    for seed in 1..=5u64 {
        let dev = RecDev {
            count: SEGS * 64,
            blocks: HashMap::new(),
            log: Rc::new(RefCell::new(Vec::new())),
        };
        let mut base = Fs::format(dev, cfg()).unwrap().into_device();
        let (log, states, acks) = workload(seed, &mut base);
        let writes = log.iter().filter(|o| matches!(o, Op::Write(..))).count();
        // Writes over log blocks already used before the recorded run: segment reuse.
        let reused = log
            .iter()
            .filter(|o| matches!(o, Op::Write(l, _) if *l >= 64 && base.blocks.contains_key(l)))
            .count();
        reused_total += reused;
        println!("seed {seed}: {writes} block writes ({reused} into reused segments) on a {}-block device, {} syncs", base.count, acks.len());
        let mut durable = base.blocks.clone();
        let mut last_flush = 0;
        let mut rng = Rng(seed);
        for cut in 0..=log.len() {
            if cut > 0 {
                if let Op::Flush = log[cut - 1] {
                    for op in &log[last_flush..cut] {
                        if let Op::Write(l, b) = op {
                            durable.insert(*l, b.clone());
                        }
                    }
                    last_flush = cut;
                }
            }
            let in_flight: Vec<(u64, Rc<[u8]>)> = log[last_flush..cut]
                .iter()
                .filter_map(|o| match o {
                    Op::Write(l, b) => Some((*l, b.clone())),
                    Op::Flush => None,
                })
                .collect();
            if matches!(log.get(cut.wrapping_sub(1)), Some(Op::Flush)) && cut != log.len() {
                continue; // the same image as the cut just before the flush
            }
            let acked = acks
                .iter()
                .filter(|(at, _)| *at <= cut)
                .map(|&(_, n)| n)
                .max()
                .unwrap_or(0);
            for variant in 0..3 {
                let mut blocks = durable.clone();
                for (i, (l, b)) in in_flight.iter().enumerate() {
                    let keep = match variant {
                        0 => true,
                        1 => false,
                        _ => rng.below(2) == 0,
                    };
                    // Reordering: a random subset lands, in any order; later writes to the
                    // same block may land before earlier ones.
                    if keep
                        && !(variant == 2
                            && i + 1 < in_flight.len()
                            && rng.below(4) == 0
                            && in_flight[i + 1..].iter().any(|(x, _)| x == l))
                    {
                        blocks.insert(*l, b.clone());
                    }
                }
                let dev = RecDev {
                    count: base.count,
                    blocks,
                    log: Rc::new(RefCell::new(Vec::new())),
                };
                let mut fs = Fs::mount(dev, cfg()).unwrap_or_else(|e| {
                    panic!("seed {seed} cut {cut} variant {variant}: mount failed: {e}")
                });
                fs.check()
                    .unwrap_or_else(|e| panic!("seed {seed} cut {cut} variant {variant}: {e}"));
                let got = observe(&mut fs);
                let ok = states[acked..].contains(&got);
                if !ok && std::env::var("CRASH_DEBUG").is_ok() {
                    let sum = |s: &State| {
                        s.iter()
                            .map(|(k, (c, t))| {
                                format!(
                                    "{k}:len{}:{:?}:{:?}",
                                    c.len(),
                                    c.iter().position(|&b| b != c.first().copied().unwrap_or(0)),
                                    t
                                )
                            })
                            .collect::<Vec<_>>()
                    };
                    eprintln!("got {:?}", sum(&got));
                    for (i, s) in states.iter().enumerate() {
                        eprintln!("state {i}: {:?}", sum(s));
                    }
                }
                assert!(ok, "seed {seed} cut {cut} variant {variant}: state is not a prefix state at or after op {acked}");
                if cut % 11 == 0 {
                    // The recovered file system keeps working and survives another mount.
                    let id = fs.create().unwrap();
                    fs.write(id, 0, b"after").unwrap();
                    fs.sync().unwrap();
                    let mut again = Fs::mount(fs.into_device(), cfg()).unwrap();
                    assert_eq!(again.read_all(id).unwrap(), b"after");
                }
                tried += 1;
            }
        }
    }
    println!("crash points tried: {tried}");
    assert!(tried > 1000, "only {tried} crash images");
    assert!(reused_total > 0, "the workloads never reused a segment");
}
