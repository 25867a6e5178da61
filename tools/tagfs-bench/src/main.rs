//! tagfs-bench: TagFS against SQLite with TMSU's schema, on the same workload, in one run.
//!
//! `cargo run --release -p tagfs-bench -- [--objects N]` (default 1,000,000). Each object
//! gets 8 tags: a unique `path:`, a `type:` (12 kinds), a `year:` (26 years) and 5 words
//! drawn with a Zipf-like skew from 2,000, so some sets are huge and most are small. The
//! SQLite side uses TMSU's tables and indexes (file, tag, value, file_tag); as in TMSU a
//! `key:value` tag is a tag plus a value, and the path lives in the file table. Both write
//! to files under one temporary directory and make every 1,000 objects durable (a TagFS
//! `sync`, an SQLite transaction). Queries run after a fresh mount / open, each repeated
//! and averaged, and both sides must return the same number of hits.
//!
//! Absolute times depend on the machine; the ratios, measured in the same run, are the
//! figures to compare.

mod file_device;
mod sqlite;

use file_device::FileDevice;
use std::path::Path;
use std::time::{Duration, Instant};
use zen_tagfs::{Config, Fs};

const BATCH: usize = 1000;
const WORDS: u64 = 2000;
const KINDS: [&str; 12] = [
    "text", "image", "code", "audio", "video", "document", "archive", "config", "binary", "mail",
    "font", "other",
];

/// Deterministic generator, so every run and both engines see the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly Zipf(1) over 0..n: rank r has weight about 1/(r+1).
    fn zipf(&mut self, n: u64) -> u64 {
        let x = ((n + 1) as f64).powf(self.unit()) - 1.0;
        (x as u64).min(n - 1)
    }
}

/// The tags of object `i`: path, type, year and five distinct words.
fn tags_of(i: u64, rng: &mut Rng) -> Vec<String> {
    let mut t = vec![
        format!("path:/bench/d{}/f{i}", i / 1000),
        format!("type:{}", KINDS[rng.zipf(KINDS.len() as u64) as usize]),
        format!("year:{}", 2000 + rng.next() % 26),
    ];
    while t.len() < 8 {
        let w = format!("w{}", rng.zipf(WORDS));
        if !t.contains(&w) {
            t.push(w);
        }
    }
    t
}

/// The queries measured: (label, TagFS query). The SQLite side translates the same
/// expression into TMSU-style nested `IN` sub-selects.
const QUERIES: [(&str, &str); 6] = [
    ("1 tag (common)", "w1"),
    ("1 tag (rare)", "w500"),
    ("2-tag AND", "w3 AND year:2020"),
    ("3-tag AND", "w2 AND type:image AND year:2015"),
    ("OR", "w5 OR w7"),
    ("NOT", "type:text AND NOT w0"),
];

fn time_per_query(reps: u32, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut hits = f(); // warm-up, and the hit count
    let t = Instant::now();
    for _ in 0..reps {
        hits = f();
    }
    (t.elapsed() / reps, hits)
}

struct Row {
    label: String,
    tagfs: f64,
    sqlite: f64,
    /// SQLite with compound SELECTs (queries only).
    sqlite_best: Option<f64>,
    unit: &'static str,
    /// True if a bigger figure is better (rates).
    higher_better: bool,
}

fn main() {
    let mut n: u64 = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--objects" => match args.next().and_then(|v| v.replace('_', "").parse().ok()) {
                Some(v) if v > 0 => n = v,
                _ => die("--objects needs a positive number"),
            },
            "-h" | "--help" => {
                println!("usage: tagfs-bench [--objects N]   (default 1000000)");
                return;
            }
            other => die(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    let dir = std::env::temp_dir().join(format!("tagfs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    let result = run(n, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        die(&e);
    }
}

fn die(msg: &str) -> ! {
    eprintln!("tagfs-bench: {msg}");
    std::process::exit(1);
}

fn run(n: u64, dir: &Path) -> Result<(), String> {
    let e = |e: zen_tagfs::Error| e.to_string();
    let mut rows = Vec::new();
    println!("TagFS vs SQLite (TMSU schema): {n} objects, 8 tags each, durable every {BATCH}");

    // --- TagFS ingest ---
    let img = dir.join("tagfs.img");
    let bytes = (n * 2048).max(256 << 20);
    let dev = FileDevice::create(&img, bytes).map_err(|x| x.to_string())?;
    let t = Instant::now();
    let mut fs = Fs::format(dev, Config::default()).map_err(e)?;
    let mut rng = Rng(0x5eed);
    for i in 0..n {
        let id = fs.create().map_err(e)?;
        for tag in tags_of(i, &mut rng) {
            fs.add_tag(id, &tag).map_err(e)?;
        }
        if (i + 1) % BATCH as u64 == 0 {
            fs.sync().map_err(e)?;
        }
    }
    let dev = fs.unmount().map_err(e)?;
    let tagfs_ingest = t.elapsed();
    drop(dev);
    eprintln!("tagfs: ingest {:.1} s", tagfs_ingest.as_secs_f64());

    // --- SQLite ingest ---
    let db = dir.join("tmsu.db");
    let t = Instant::now();
    sqlite::ingest(&db, n, BATCH).map_err(|x| x.to_string())?;
    let sqlite_ingest = t.elapsed();
    eprintln!("sqlite: ingest {:.1} s", sqlite_ingest.as_secs_f64());
    rows.push(Row {
        label: "ingest (objects/s)".into(),
        tagfs: n as f64 / tagfs_ingest.as_secs_f64(),
        sqlite: n as f64 / sqlite_ingest.as_secs_f64(),
        sqlite_best: None,
        unit: "obj/s",
        higher_better: true,
    });

    // --- mount / open, then queries ---
    let t = Instant::now();
    let fs = Fs::mount(
        FileDevice::open(&img).map_err(|x| x.to_string())?,
        Config::default(),
    )
    .map_err(e)?;
    let mount = t.elapsed();
    let conn = sqlite::open(&db).map_err(|x| x.to_string())?;
    let stats = fs.stats();
    let mut mismatch = Vec::new();
    for (label, q) in QUERIES {
        let (tt, th) = time_per_query(20, || fs.query(q).map(|v| v.len()).unwrap_or(usize::MAX));
        let (st, sh) = time_per_query(3, || sqlite::query(&conn, q).unwrap_or(usize::MAX));
        let (bt, bh) = time_per_query(3, || sqlite::query_setops(&conn, q).unwrap_or(usize::MAX));
        if th != sh || th != bh {
            mismatch.push(format!("{q}: TagFS {th} hits, SQLite {sh} / {bh}"));
        }
        rows.push(Row {
            label: format!("{label}: {q} ({th} hits)"),
            tagfs: tt.as_secs_f64() * 1e6,
            sqlite: st.as_secs_f64() * 1e6,
            sqlite_best: Some(bt.as_secs_f64() * 1e6),
            unit: "µs",
            higher_better: false,
        });
    }

    // --- space ---
    let tagfs_disk = stats.checkpoint_bytes + stats.live_bytes;
    let (sqlite_disk, sqlite_index) = sqlite::sizes(&conn).map_err(|x| x.to_string())?;
    rows.push(Row {
        label: "bytes on disk per object".into(),
        tagfs: tagfs_disk as f64 / n as f64,
        sqlite: sqlite_disk as f64 / n as f64,
        sqlite_best: None,
        unit: "B",
        higher_better: false,
    });
    rows.push(Row {
        label: "index bytes per object".into(),
        tagfs: stats.index_memory as f64 / n as f64,
        sqlite: sqlite_index as f64 / n as f64,
        sqlite_best: None,
        unit: "B",
        higher_better: false,
    });

    println!();
    println!(
        "{:<52} {:>14} {:>15} {:>9} {:>15} {:>9}",
        "measure", "TagFS", "SQLite (TMSU)", "ratio", "SQLite (sets)", "ratio"
    );
    println!("{}", "-".repeat(119));
    for r in &rows {
        let ratio = |s: f64| {
            if r.higher_better {
                r.tagfs / s
            } else {
                s / r.tagfs
            }
        };
        let best = match r.sqlite_best {
            Some(b) => format!("{:>11.1} {:<3} {:>8.1}x", b, r.unit, ratio(b)),
            None => format!("{:>15} {:>9}", "-", "-"),
        };
        println!(
            "{:<52} {:>10.1} {:<3} {:>11.1} {:<3} {:>8.1}x {best}",
            r.label,
            r.tagfs,
            r.unit,
            r.sqlite,
            r.unit,
            ratio(r.sqlite)
        );
    }
    println!("{}", "-".repeat(119));
    println!("ratio = how many times better TagFS is (TagFS/SQLite for rates, SQLite/TagFS for times and sizes).");
    println!("SQLite (TMSU): TMSU-style nested IN sub-selects; SQLite (sets): INTERSECT/UNION/EXCEPT over file_tag.");
    println!("Index bytes: TagFS = RAM of the cuckoo table, posting sets and tag names; SQLite = its index b-trees on disk (dbstat).");
    println!(
        "TagFS mount (checkpoint load) {:.0} ms; {} tags; checkpoint {} bytes.",
        mount.as_secs_f64() * 1e3,
        stats.tags,
        stats.checkpoint_bytes
    );
    if !mismatch.is_empty() {
        return Err(format!("hit counts differ: {}", mismatch.join("; ")));
    }
    Ok(())
}
