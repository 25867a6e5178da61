//! The API end to end on an in-memory device: every call, remount, the cleaner.

use zen_tagfs::{Config, Error, Fs, MemDevice};

const SEG: u64 = 64;

fn fresh(segs: u64) -> Fs<MemDevice> {
    Fs::format(MemDevice::new(segs * SEG), Config::default()).unwrap()
}

fn remount(fs: Fs<MemDevice>) -> Fs<MemDevice> {
    Fs::mount(fs.into_device(), Config::default()).unwrap()
}

#[test]
fn objects_content_and_tags_survive_remount() {
    let mut fs = fresh(32);
    let a = fs.create().unwrap();
    let b = fs.create().unwrap();
    fs.write(a, 0, b"hello world").unwrap();
    fs.write(a, 6, b"there").unwrap();
    fs.write(b, 100_000, b"far").unwrap();
    for t in ["path:/home/ada/a.txt", "type:text", "year:2024", "draft"] {
        fs.add_tag(a, t).unwrap();
    }
    for t in ["path:/home/bob/b.bin", "type:binary", "year:2024"] {
        fs.add_tag(b, t).unwrap();
    }
    assert!(!fs.add_tag(a, "draft").unwrap());
    fs.sync().unwrap();
    let mut fs = remount(fs);
    assert_eq!(fs.read_all(a).unwrap(), b"hello there");
    let bb = fs.read_all(b).unwrap();
    assert_eq!(bb.len(), 100_003);
    assert!(bb[..100_000].iter().all(|&x| x == 0));
    assert_eq!(&bb[100_000..], b"far");
    assert_eq!(fs.query("year:2024").unwrap(), vec![a, b]);
    assert_eq!(fs.query("path:/home/ada/*").unwrap(), vec![a]);
    assert_eq!(fs.query("year:2024 AND NOT draft").unwrap(), vec![b]);
    assert_eq!(fs.query("type:text OR type:binary").unwrap(), vec![a, b]);
    let m = fs.meta(a).unwrap();
    assert_eq!((m.id(), m.size(), m.tag_count()), (a, 11, 4));
    assert_eq!(
        fs.tags(b).unwrap(),
        vec!["path:/home/bob/b.bin", "type:binary", "year:2024"]
    );
    fs.check().unwrap();
}

#[test]
fn truncate_delete_remove_tag() {
    let mut fs = fresh(32);
    let a = fs.create().unwrap();
    fs.write(a, 0, &[7u8; 300_000]).unwrap();
    fs.add_tag(a, "big").unwrap();
    fs.truncate(a, 10).unwrap();
    fs.truncate(a, 20).unwrap();
    let mut want = vec![7u8; 10];
    want.extend([0u8; 10]);
    assert_eq!(fs.read_all(a).unwrap(), want);
    assert!(fs.remove_tag(a, "big").unwrap());
    assert!(!fs.remove_tag(a, "big").unwrap());
    assert!(fs.query("big").unwrap().is_empty());
    let b = fs.create().unwrap();
    fs.add_tag(b, "x").unwrap();
    fs.delete(b).unwrap();
    assert_eq!(fs.read_all(b), Err(Error::NotFound(b)));
    assert!(fs.query("x").unwrap().is_empty());
    fs.sync().unwrap();
    let mut fs = remount(fs);
    assert_eq!(fs.read_all(a).unwrap(), want);
    assert_eq!(fs.meta(b), Err(Error::NotFound(b)));
    assert_eq!(fs.query("NOT big").unwrap(), vec![a]);
}

#[test]
fn bad_input_is_refused() {
    let mut fs = fresh(16);
    let a = fs.create().unwrap();
    for bad in ["", "two words", "a(b", "AND", "x*", &"t".repeat(256)] {
        assert!(
            matches!(fs.add_tag(a, bad), Err(Error::InvalidTag(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(fs.query("a AND"), Err(Error::Query(e)) if e.pos == 5));
    assert_eq!(fs.write(99, 0, b"x"), Err(Error::NotFound(99)));
    assert!(matches!(
        fs.write(a, u64::MAX - 1, b"xx"),
        Err(Error::Limit(_))
    ));
    assert!(matches!(
        Fs::format(MemDevice::new(100), Config::default()),
        Err(Error::DeviceTooSmall)
    ));
    assert!(matches!(
        Fs::mount(MemDevice::new(1024), Config::default()),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn cleaner_reclaims_space_under_churn() {
    // 16 segments (4 MiB) but 40 MiB written over time: only reclaiming makes it fit.
    let mut fs = fresh(16);
    let ids: Vec<u32> = (0..8).map(|_| fs.create().unwrap()).collect();
    for round in 0..80u32 {
        for &id in &ids {
            fs.write(id, 0, &vec![round as u8; 64 * 1024]).unwrap();
        }
        fs.sync().unwrap();
    }
    assert!(fs.stats().free_segments > 0);
    let mut fs = remount(fs);
    for &id in &ids {
        assert_eq!(fs.read_all(id).unwrap(), vec![79u8; 64 * 1024]);
    }
    fs.check().unwrap();
}

#[test]
fn many_tags_spill_and_checkpoint() {
    let mut fs = fresh(64);
    for i in 0..3000u32 {
        let id = fs.create().unwrap();
        fs.add_tag(id, &format!("mod7:{}", i % 7)).unwrap();
        fs.add_tag(id, &format!("n:{i}")).unwrap();
    }
    fs.checkpoint().unwrap();
    let fs = remount(fs);
    assert_eq!(fs.query("mod7:3").unwrap().len(), 3000 / 7 + 1);
    assert_eq!(fs.query("n:1234").unwrap(), vec![1234]);
    assert_eq!(fs.query("n:12*").unwrap().len(), 1 + 10 + 100);
    assert_eq!(fs.stats().tags, 3007);
}
