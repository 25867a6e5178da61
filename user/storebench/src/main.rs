//! storebench: the store figures of `cargo xtask bench --only tagfs-os`. Boot it as
//! init (`init=storebench`) with the bench's disk attached at PCI 00:10.0 (a GPT with
//! one blank TagFS root partition): it starts nvmed and tagfsd on it as init would
//! and runs what bench/linux/store.c runs on ext4 on the same QEMU device:
//!
//! - `create4k`: 2,000 objects of 4 KiB with 8 tags each, synced every 1,000;
//! - `query2`: a 2-tag AND query over 100,000 objects (made first, three tags each);
//! - `read16m`: a 16 MiB object read whole into the program's pages (written and synced
//!   first); it also says how many bytes the disk's device put there directly.
//!
//! Prints `zen: bench tagfs_<name>=<TSC per operation>` (under `-icount shift=0`
//! the TSC counts guest instructions) and `..._busy=` with the time the machine sat
//! idle taken off, then `zen: bench done`, and shuts the machine down.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use zen_abi::cap::Rights;
use zen_std::block::connect;
use zen_std::chan::{self, Channel};
use zen_std::prelude::*;
use zen_std::tagfs::{rights, Store};
use zen_std::{dev, mem, process, time};

zen_std::main!(main);

const SCRATCH: u32 = 0x10 << 3;
pub const CREATE: u64 = 2_000;
pub const QUERY_OBJECTS: u64 = 100_000;
const QUERIES: u64 = 3;
const BIG: usize = 16 << 20;

fn main() -> i32 {
    let code = match run() {
        Ok(()) => 0,
        Err(why) => {
            println!("storebench: {why}");
            1
        }
    };
    println!("zen: bench done");
    if process::id() == 1 {
        let _ = process::shutdown(code as u64);
    }
    code
}

/// Both clocks now: (TSC, idle TSC).
fn now() -> (u64, u64) {
    (time::cycles(), mem::info().map_or(0, |m| m.idle_tsc))
}

fn report(name: &str, since: (u64, u64), ops: u64) {
    let (t, idle) = now();
    let total = t - since.0;
    let busy = total.saturating_sub(idle - since.1);
    println!("zen: bench tagfs_{name}={}", total / ops);
    println!("zen: bench tagfs_{name}_busy={}", busy / ops);
}

fn store() -> Result<Store, String> {
    let e = |what: &'static str| move |x: zen_std::Error| format!("{what}: {x:?}");
    let sys = chan::system_cap().ok_or("no system token")?;
    let d = dev::list()
        .map_err(e("dev_list"))?
        .into_iter()
        .find(|d| d.class == 1 && d.subclass == 8 && d.address == SCRATCH)
        .ok_or("no NVMe disk at 00:10.0")?;
    let tok = dev::open(sys, d.address).map_err(e("dev_open"))?;
    let (_nvmed, mut drv) = zen_std::block::spawn_driver("nvmed", "", tok).map_err(e("nvmed"))?;
    let parts = drv.partitions().map_err(e("partitions"))?;
    let i = parts
        .iter()
        .position(|p| p.type_guid == zen_std::block::ZEN_ROOT_TYPE)
        .ok_or("no TagFS root partition")?;
    let end = drv
        .connect(connect::with_partition(i as u32 + 1))
        .map_err(e("connect"))?;
    let (a, b) = chan::create().map_err(e("create"))?;
    let pid = chan::spawn_with_cap("tagfsd", "", b, Rights::SEND | Rights::RECV);
    let _ = b.drop_token();
    let ch = Channel::attach(a);
    let _ = a.drop_token();
    let (_tagfsd, mut ch) = (pid.map_err(e("tagfsd"))?, ch.map_err(e("attach"))?);
    zen_std::boot::give(&mut ch, "disk", end, Rights::SEND | Rights::RECV)
        .and_then(|()| zen_std::boot::end(&mut ch))
        .map_err(e("bootstrap"))?;
    let _ = end.drop_token();
    let mut admin = Store::adopt(ch).map_err(|x| format!("adopt: {x:?}"))?;
    let cap = admin
        .share(rights::ALL, "")
        .map_err(|x| format!("share: {x:?}"))?;
    // init's connection must stay open: tagfsd ends when it goes.
    core::mem::forget(admin);
    Store::connect(cap).map_err(|x| format!("connect: {x:?}"))
}

fn run() -> Result<(), String> {
    let mut s = store()?;
    let e = |x: zen_std::tagfs::StoreError| format!("{x:?}");
    // 4 KiB objects with 8 tags each, durable every 1,000.
    let page = vec![0x5au8; 4096];
    let t = now();
    for i in 0..CREATE {
        let tags = [
            String::from("bench"),
            format!("n:{i}"),
            format!("m10:{}", i % 10),
            format!("m7:{}", i % 7),
            format!("m3:{}", i % 3),
            String::from(if i % 2 == 0 { "even" } else { "odd" }),
            String::from("year:2026"),
            String::from("type:text"),
        ];
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let id = s.create(&refs).map_err(e)?;
        s.write(id, 0, &page).map_err(e)?;
        if i % 1000 == 999 {
            s.sync().map_err(e)?;
        }
    }
    report("create4k", t, CREATE);
    // 100,000 objects to query (the 2,000 above among them), then a 2-tag AND.
    for i in CREATE..QUERY_OBJECTS {
        let (a, b) = (format!("m10:{}", i % 10), format!("m7:{}", i % 7));
        s.create(&["q", &a, &b]).map_err(e)?;
    }
    s.sync().map_err(e)?;
    let t = now();
    let mut found = 0;
    for _ in 0..QUERIES {
        found = s.query("m10:3 AND m7:2").map_err(e)?.len();
    }
    report("query2", t, QUERIES);
    println!("storebench: the query found {found} of {QUERY_OBJECTS}");
    // A 16 MiB object, read whole.
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7) as u8).collect();
    let id = s.create(&["big"]).map_err(e)?;
    s.write(id, 0, &big).map_err(e)?;
    s.sync().map_err(e)?;
    // Into pages of ours that tagfsd grants on to nvmed: the disk's device puts the
    // content there (zero copy), as the Linux side's read() fills its buffer.
    let into = mem::Shared::new(BIG).map_err(|x| String::from(x.as_str()))?;
    let before = direct(&mut s)?;
    let t = now();
    let n = s.read_to(id, 0, &into).map_err(e)?;
    report("read16m", t, 1);
    let moved = direct(&mut s)?.1 - before.1;
    println!("storebench: read16m moved {moved} of {n} bytes straight from the disk");
    let mut back = vec![0u8; BIG];
    into.read(0, &mut back);
    if n != BIG || back != big {
        return Err(String::from("the 16 MiB object read back differs"));
    }
    Ok(())
}

/// This connection's `read_bytes` and `direct_bytes` (tagfsd's `stat`).
fn direct(s: &mut Store) -> Result<(u64, u64), String> {
    let st = s.stat().map_err(|x| String::from(x.as_str()))?;
    let get = |k: &str| st.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
    Ok((get("read_bytes"), get("direct_bytes")))
}
