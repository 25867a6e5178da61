//! Property tests of the decoders behind the checksums: a checkpoint stream or journal
//! payload that is damaged but correctly checksummed (a bug, or a crafted image) must
//! still be refused with an error, never a panic. The image-level tests in
//! `tests/corrupt.rs` cannot reach these paths, because random damage fails a checksum
//! first.

extern crate std;

use crate::codec::Reader;
use crate::device::MemDevice;
use crate::fs::{Config, Fs};
use crate::journal::Entry;
use crate::log::{self, seg_of, KIND_CHECKPOINT};
use crate::{checkpoint, Error};
use alloc::format;
use alloc::vec::Vec;
use proptest::prelude::*;

fn sample() -> Fs<MemDevice> {
    let mut fs = Fs::format(MemDevice::new(16 * 64), Config::default()).unwrap();
    for i in 0..40u32 {
        let id = fs.create().unwrap();
        fs.write(id, u64::from(i) * 10, &[i as u8; 700]).unwrap();
        fs.add_tag(id, &format!("k:{}", i % 3)).unwrap();
        fs.add_tag(id, "all").unwrap();
    }
    fs.delete(7).unwrap();
    fs
}

fn stream(fs: &Fs<MemDevice>) -> Vec<u8> {
    checkpoint::encode(fs.next_id, &fs.objects, &fs.index)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_checkpoints_are_refused_or_consistent(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
        truncate in any::<bool>(),
    ) {
        let fs = sample();
        let mut s = stream(&fs);
        for (at, v) in edits {
            let i = at % s.len();
            s[i] = v;
        }
        if truncate {
            s.truncate(cut % s.len());
        }
        // Straight into the decoder ...
        let _ = checkpoint::decode(&s, fs.seg_count);
        // ... and through mount, re-sealed with valid checksums in place of the real one.
        let sb = fs.sb;
        let mut dev = fs.into_device();
        if s.len() <= log::MAX_RAW && sb.ckpt_chunks == 1 {
            log::write_record(&mut dev, sb.start_pos, KIND_CHECKPOINT, sb.ckpt_epoch, sb.start_seq, seg_of(sb.start_pos) + 1, &[], &s).unwrap();
            if let Ok(mut m) = Fs::mount(dev, Config::default()) {
                let ids: Vec<u32> = m.ids().collect();
                let mut buf = [0u8; 4096];
                for id in ids {
                    let _ = m.read(id, 0, &mut buf);
                }
                let _ = m.query("all AND NOT k:1");
            }
        }
    }

    #[test]
    fn random_journal_entries_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut fs = sample();
        let mut r = Reader::new(&bytes, "journal");
        while r.remaining() > 0 {
            match Entry::decode(&mut r) {
                Ok(e) => {
                    if let Err(e) = fs.apply(e) {
                        prop_assert!(matches!(e, Error::Corrupt(_)));
                    }
                }
                Err(_) => break,
            }
        }
        let ids: Vec<u32> = fs.ids().collect();
        for id in ids {
            let _ = fs.read_all(id);
        }
        let _ = fs.query("all OR k:2");
    }
}

#[test]
fn the_sample_checkpoint_round_trips() {
    let fs = sample();
    let l = checkpoint::decode(&stream(&fs), fs.seg_count).unwrap();
    assert_eq!(l.next_id, 40);
    assert_eq!(l.objects.iter().flatten().count(), 39);
    assert_eq!(l.index.get("all").len(), 39);
    assert_eq!(l.index.get("k:1").len(), 12); // 7 was deleted
}
