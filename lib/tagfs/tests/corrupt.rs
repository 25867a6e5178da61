//! Corrupt images: generated damage to a real image must make mount and read return
//! an error or a consistent answer — never a panic, never a hang.

use proptest::prelude::*;
use std::sync::OnceLock;
use zen_tagfs::{Config, Error, Fs, MemDevice, BLOCK_SIZE};

/// An image with a checkpoint, a journal after it, content, tags and a deleted object.
fn image() -> &'static MemDevice {
    static IMG: OnceLock<MemDevice> = OnceLock::new();
    IMG.get_or_init(|| {
        let mut fs = Fs::format(MemDevice::new(12 * 64), Config::default()).unwrap();
        for i in 0..20u32 {
            let id = fs.create().unwrap();
            fs.write(id, 0, &vec![i as u8; 3000 + i as usize * 500])
                .unwrap();
            fs.add_tag(id, &format!("n:{i}")).unwrap();
            fs.add_tag(id, if i % 2 == 0 { "even" } else { "odd" })
                .unwrap();
        }
        fs.delete(3).unwrap();
        fs.checkpoint().unwrap();
        for i in (0..10u32).filter(|&i| i != 3) {
            fs.write(i, 100, b"journal").unwrap();
            fs.add_tag(i, "late").unwrap();
            fs.sync().unwrap();
        }
        fs.into_device()
    })
}

#[derive(Debug, Clone)]
enum Damage {
    FlipBit { block: usize, bit: usize },
    SetByte { block: usize, at: usize, val: u8 },
    Zero { block: usize },
    CopyOver { from: usize, to: usize },
    Garbage { block: usize, seed: u64 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0..BLOCK_SIZE * 8).prop_map(|(block, bit)| Damage::FlipBit { block, bit }),
        (any::<usize>(), 0..BLOCK_SIZE, any::<u8>()).prop_map(|(block, at, val)| Damage::SetByte {
            block,
            at,
            val
        }),
        any::<usize>().prop_map(|block| Damage::Zero { block }),
        (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Damage::CopyOver { from, to }),
        (any::<usize>(), any::<u64>()).prop_map(|(block, seed)| Damage::Garbage { block, seed }),
    ]
}

fn apply(dev: &mut MemDevice, d: &Damage) {
    let lbas: Vec<u64> = dev.written().collect();
    let pick = |i: usize| lbas[i % lbas.len()];
    let get = |dev: &MemDevice, l: u64| {
        dev.block(l)
            .map(|b| b.to_vec())
            .unwrap_or(vec![0; BLOCK_SIZE])
    };
    match *d {
        Damage::FlipBit { block, bit } => {
            let l = pick(block);
            let mut b = get(dev, l);
            b[bit / 8] ^= 1 << (bit % 8);
            dev.poke(l, &b);
        }
        Damage::SetByte { block, at, val } => {
            let l = pick(block);
            let mut b = get(dev, l);
            b[at] = val;
            dev.poke(l, &b);
        }
        Damage::Zero { block } => dev.poke(pick(block), &[]),
        Damage::CopyOver { from, to } => {
            let b = get(dev, pick(from));
            dev.poke(pick(to), &b);
        }
        Damage::Garbage { block, mut seed } => {
            let b: Vec<u8> = (0..BLOCK_SIZE)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            dev.poke(pick(block), &b);
        }
    }
}

/// Everything a user could do with a mounted image; errors are fine, panics are not.
fn exercise(mut fs: Fs<MemDevice>) {
    let ids: Vec<u32> = fs.ids().collect();
    for id in ids {
        let _ = fs.read_all(id);
        let _ = fs.tags(id);
        let _ = fs.meta(id);
    }
    let _ = fs.query("even OR NOT odd OR n:1*");
    let _ = fs.check();
    if let Ok(id) = fs.create() {
        let _ = fs.write(id, 0, b"new");
        let _ = fs.add_tag(id, "new");
    }
    if fs.sync().is_ok() {
        if let Ok(mut again) = Fs::mount(fs.into_device(), Config::default()) {
            let _ = again.check();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_never_panic(ds in prop::collection::vec(damage(), 1..6)) {
        let mut dev = image().clone();
        for d in &ds {
            apply(&mut dev, d);
        }
        match Fs::mount(dev, Config::default()) {
            Ok(fs) => exercise(fs),
            Err(e) => prop_assert!(matches!(e, Error::Corrupt(_)), "unexpected error {e}"),
        }
    }
}

#[test]
fn the_undamaged_image_mounts_and_checks() {
    let mut fs = Fs::mount(image().clone(), Config::default()).unwrap();
    assert_eq!(fs.check().unwrap().objects, 19);
    assert_eq!(fs.query("late").unwrap().len(), 9);
    assert_eq!(&fs.read_all(0).unwrap()[100..107], b"journal");
}

#[test]
fn damaged_content_is_reported_not_returned() {
    // Find a block that holds only content: flipping it must fail the read of exactly
    // the objects stored there, with a checksum error.
    let base = image();
    let mut found = false;
    for l in base.written().filter(|&l| l >= 64) {
        let mut dev = base.clone();
        let mut b = dev.block(l).unwrap().to_vec();
        b[2000] ^= 0x55;
        dev.poke(l, &b);
        let Ok(mut fs) = Fs::mount(dev, Config::default()) else {
            continue;
        };
        let ids: Vec<u32> = fs.ids().collect();
        let bad: Vec<Error> = ids.iter().filter_map(|&id| fs.read_all(id).err()).collect();
        if !bad.is_empty() {
            assert!(bad
                .iter()
                .all(|e| matches!(e, Error::Corrupt(m) if m.contains("checksum"))));
            assert!(fs.check().is_err());
            found = true;
        }
    }
    assert!(found, "no content block found");
}

#[test]
fn both_superblocks_gone_is_refused() {
    let mut dev = image().clone();
    dev.poke(0, &[]);
    dev.poke(1, &[]);
    let e = Fs::mount(dev, Config::default()).unwrap_err();
    assert!(e.to_string().contains("superblock"), "{e}");
}
