//! `Fs::read_into`: reads the device puts straight into the caller's memory. They must
//! answer exactly what `Fs::read` answers, go direct where the content is block-aligned
//! (and only there), and catch damage the device delivered in place.

use proptest::prelude::*;
use zen_tagfs::{Buffer, Config, Error, Fs, MemDevice, Memory, BLOCK_SIZE};

const BS: usize = BLOCK_SIZE;

fn fresh() -> Fs<MemDevice> {
    Fs::format(MemDevice::new(64 * 64), Config::default()).unwrap()
}

/// Content whose every 4 KiB block is unique (found again on the device by its bytes).
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / BS) as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ seed)
        .collect()
}

fn read_into(fs: &mut Fs<MemDevice>, id: u32, off: u64, len: usize) -> (Vec<u8>, usize) {
    let mut m = Buffer(vec![0xEE; len]);
    let r = fs.read_into(id, off, &mut m).unwrap();
    let mut want = vec![0u8; len];
    let n = fs.read(id, off, &mut want).unwrap();
    assert_eq!(r.len, n, "length at {off}+{len}");
    assert_eq!(&m.0[..n], &want[..n], "content at {off}+{len}");
    assert!(
        m.0[n..].iter().all(|&b| b == 0xEE),
        "bytes past the end touched"
    );
    (m.0, r.direct)
}

#[test]
fn aligned_content_goes_direct() {
    let mut fs = fresh();
    let id = fs.create().unwrap();
    // A small object first, so the big one's record does not start with it aligned.
    let small = fs.create().unwrap();
    fs.write(small, 0, b"tiny").unwrap();
    let data = content(1 << 20, 1);
    fs.write(id, 0, &data).unwrap();
    fs.sync().unwrap();
    let (got, direct) = read_into(&mut fs, id, 0, data.len());
    assert_eq!(got, data);
    assert_eq!(direct, data.len(), "every block of a 1 MiB aligned write");
    assert!(fs.device().direct_blocks >= 256);
    // A read starting at a chunk boundary with a partial last chunk.
    let (_, direct) = read_into(&mut fs, id, 64 * 1024, 100_000);
    assert_eq!(
        direct,
        64 * 1024,
        "a partial chunk at the end is read through the engine"
    );
    let (_, direct) = read_into(&mut fs, id, 64 * 1024, 128 * 1024);
    assert_eq!(direct, 128 * 1024);
    // A destination offset that is not on a block: the copy path.
    let (_, direct) = read_into(&mut fs, id, 100, 300_000);
    assert!(direct < 300_000 && direct.is_multiple_of(64 * 1024));
}

#[test]
fn tails_holes_overwrites_and_the_open_record() {
    let mut fs = fresh();
    let id = fs.create().unwrap();
    // Two whole blocks and a tail (first in its record, so on a block): the blocks
    // direct, the tail copied.
    fs.write(id, 0, &content(10_000, 2)).unwrap();
    fs.sync().unwrap();
    // A hole, then more content, in a record of its own.
    fs.write(id, 49 * 4096, &content(8192, 3)).unwrap();
    fs.sync().unwrap();
    let (_, direct) = read_into(&mut fs, id, 0, 300_000);
    assert_eq!(direct, 8192 + 8192);
    // Not yet synced: in the open record, read through the engine, still right.
    fs.write(id, 0, &content(4096, 4)).unwrap();
    let (got, _) = read_into(&mut fs, id, 0, 12_000);
    assert_eq!(&got[..4096], &content(4096, 4)[..]);
    fs.sync().unwrap();
    // Now partly overwritten: the first chunk whole, the old one only partly viewed.
    let (_, direct) = read_into(&mut fs, id, 0, 10_000);
    assert_eq!(direct, 4096);
    // A memory the device cannot reach: all copied, same answer.
    struct Far(Vec<u8>);
    impl Memory for Far {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn put(&mut self, at: usize, d: &[u8]) {
            self.0[at..at + d.len()].copy_from_slice(d);
        }
        fn get(&self, at: usize, out: &mut [u8]) {
            out.copy_from_slice(&self.0[at..at + out.len()]);
        }
        fn as_any(&mut self) -> &mut dyn core::any::Any {
            self
        }
    }
    let mut far = Far(vec![1; 300_000]);
    let r = fs.read_into(id, 0, &mut far).unwrap();
    assert_eq!(r.direct, 0);
    let mut want = vec![0; 300_000];
    fs.read(id, 0, &mut want).unwrap();
    assert_eq!(far.0[..r.len], want[..r.len]);
    // Past the end: nothing.
    let (_, direct) = read_into(&mut fs, id, 1 << 30, 4096);
    assert_eq!(direct, 0);
}

#[test]
fn damage_delivered_in_place_is_caught() {
    let mut fs = fresh();
    let id = fs.create().unwrap();
    let data = content(256 * 1024, 5);
    fs.write(id, 0, &data).unwrap();
    // In the checkpoint: damage to the content then fails its read, not the replay.
    fs.checkpoint().unwrap();
    let mut dev = fs.into_device();
    let victim = &data[5 * BS..6 * BS];
    let lba = dev
        .written()
        .find(|&l| dev.block(l) == Some(victim))
        .expect("the content's block on the device");
    let mut b = victim.to_vec();
    b[77] ^= 0x10;
    dev.poke(lba, &b);
    let mut fs = Fs::mount(dev, Config::default()).unwrap();
    let mut m = Buffer(vec![0; data.len()]);
    let e = fs.read_into(id, 0, &mut m).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt(ref s) if s.contains("checksum")),
        "{e:?}"
    );
    // Nothing that came direct stays: not the damaged block, not its neighbours.
    assert!(
        m.0.iter().all(|&b| b == 0),
        "unchecked bytes left in the memory"
    );
}

#[test]
fn direct_reads_hold_wherever_the_log_head_is() {
    // The head moves round the disk (the cleaner reclaims what churn frees); at every
    // point, wherever the object lies relative to the head, its reads go direct.
    let mut fs = Fs::format(MemDevice::new(24 * 64), Config::default()).unwrap();
    let id = fs.create().unwrap();
    let data = content(512 * 1024, 7);
    fs.write(id, 0, &data).unwrap();
    fs.sync().unwrap();
    let churn = fs.create().unwrap();
    for round in 0..120u32 {
        fs.write(churn, 0, &content(200 * 1024, round as u8))
            .unwrap();
        fs.sync().unwrap();
        let (got, direct) = read_into(&mut fs, id, 0, data.len());
        assert_eq!(got, data, "round {round}");
        assert_eq!(direct, data.len(), "round {round}: every block direct");
    }
}

#[test]
fn padding_never_stops_the_cleaner() {
    // Sizes that would pad the most if every chunk of a block or more were aligned (a
    // byte, then a block and a byte), rewritten round after round with about a third
    // of the disk live: the cleaner must keep finding room.
    let mut fs = Fs::format(MemDevice::new(32 * 64), Config::default()).unwrap();
    let ids: Vec<u32> = (0..1200).map(|_| fs.create().unwrap()).collect();
    for round in 0..12usize {
        for (k, &id) in ids.iter().enumerate() {
            let len = if (round + k) % 2 == 0 { 1 } else { BS + 1 };
            fs.truncate(id, 0).unwrap();
            fs.write(id, 0, &content(len, round as u8))
                .unwrap_or_else(|e| panic!("round {round}, object {k}: {e:?}"));
        }
        fs.sync().unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    for &id in &ids {
        assert!(fs.read_all(id).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any history of writes, truncates and syncs: `read_into` answers as `read` does,
    /// at any offset and length.
    #[test]
    fn read_into_answers_as_read(
        ops in prop::collection::vec((0u64..400_000, 1usize..150_000, 0u8..4), 1..12),
        reads in prop::collection::vec((0u64..500_000, 1usize..300_000), 1..8),
    ) {
        let mut fs = fresh();
        let id = fs.create().unwrap();
        for (i, &(off, len, kind)) in ops.iter().enumerate() {
            match kind {
                0 => fs.truncate(id, off).unwrap(),
                1 => fs.sync().unwrap(),
                // Block-multiples at block offsets, and anything.
                2 => fs.write(id, off / 4096 * 4096, &content(len / 4096 * 4096 + 4096, i as u8)).unwrap(),
                _ => fs.write(id, off, &content(len, i as u8)).unwrap(),
            }
        }
        for &(off, len) in &reads {
            read_into(&mut fs, id, off, len);
        }
        fs.sync().unwrap();
        for &(off, len) in &reads {
            read_into(&mut fs, id, off, len);
        }
    }
}
