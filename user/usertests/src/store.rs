//! The store: tagfsd started on the scratch disk's TagFS root partition (through
//! nvmed, confined to the partition), used through zen-std's `tagfs` by this
//! process and by children on both CPUs: every call, the rights of a connection,
//! scopes that confine and only narrow, tokens bound to their holder, and what a
//! restart keeps (what was synced) and loses (what was not).
//!
//! Runs in a child of its own (given the system token): the test makes channels,
//! which live as long as their creator.
//!
//! Over 500 lines: one test per requirement of the store issue around one running
//! store (nvmed and tagfsd started as init would), plus spawn_image's bad arguments.

use crate::*;
use zen_std::block::{connect, Client};
use zen_std::tagfs::{rights, Status, Store, StoreError};

/// The scratch disk's TagFS root partition, 1-based in table order.
const ROOT_PARTITION: u32 = 2;

struct Running {
    nvmed: u32,
    device: Cap,
    drv: Client,
    tagfsd: u32,
    admin: Store,
}

fn sys_err(what: &str) -> impl Fn(zen_std::Error) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}
fn st_err(what: &str) -> impl Fn(StoreError) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}

/// nvmed on the scratch disk; with `blank`, the root partition's superblocks zeroed
/// first (the disk tests wrote patterns there), so tagfsd formats it.
pub(crate) fn start_disk(blank: bool) -> Result<(u32, Cap, Client), String> {
    let sys = chan::system_cap().ok_or("no system token")?;
    let d = zen_std::dev::list()
        .map_err(sys_err("dev_list"))?
        .into_iter()
        .find(|d| d.class == 1 && d.subclass == 8 && d.address == 0x10 << 3)
        .ok_or("no scratch NVMe disk")?;
    let device = zen_std::dev::open(sys, d.address).map_err(sys_err("dev_open"))?;
    let (pid, mut drv) =
        zen_std::block::spawn_driver("nvmed", "", device).map_err(sys_err("nvmed"))?;
    if blank {
        let end = drv
            .connect(connect::with_partition(ROOT_PARTITION))
            .map_err(sys_err("connect"))?;
        let ch = Channel::attach(end).map_err(sys_err("attach"));
        let _ = end.drop_token();
        let mut c = Client::new(ch?, 5000).map_err(sys_err("open"))?;
        let zeros = mem::Shared::new(8192).map_err(sys_err("map"))?;
        let s = c
            .write(0, 8192 / c.geometry.block_size, &zeros)
            .map_err(sys_err("write"))?;
        check(
            &format!("zeroing the superblocks: {s:?}"),
            s == zen_std::block::Status::Ok,
        )?;
    }
    Ok((pid, device, drv))
}

pub(crate) fn start_tagfsd(drv: &mut Client) -> Result<(u32, Store), String> {
    let end = drv
        .connect(connect::with_partition(ROOT_PARTITION))
        .map_err(sys_err("connect the root"))?;
    let (a, b) = chan::create().map_err(sys_err("create"))?;
    let pid = chan::spawn_with_cap("tagfsd", "", b, Rights::SEND | Rights::RECV);
    let _ = b.drop_token();
    let ch = Channel::attach(a);
    let _ = a.drop_token();
    let (pid, mut ch) = (
        pid.map_err(sys_err("spawn tagfsd"))?,
        ch.map_err(sys_err("attach"))?,
    );
    let r = zen_std::boot::give(&mut ch, "disk", end, Rights::SEND | Rights::RECV)
        .and_then(|()| zen_std::boot::end(&mut ch));
    let _ = end.drop_token();
    r.map_err(sys_err("bootstrap tagfsd"))?;
    Ok((pid, Store::adopt(ch).map_err(st_err("adopt"))?))
}

fn start(blank: bool) -> Result<Running, String> {
    let (nvmed, device, mut drv) = start_disk(blank)?;
    let (tagfsd, admin) = start_tagfsd(&mut drv)?;
    Ok(Running {
        nvmed,
        device,
        drv,
        tagfsd,
        admin,
    })
}

impl Running {
    /// A connection of our own with `r` and `scope`.
    fn open(&mut self, r: u32, scope: &str) -> Result<Store, String> {
        let cap = self.admin.share(r, scope).map_err(st_err("share"))?;
        Store::connect(cap).map_err(st_err("connect"))
    }
}

fn refused(r: Result<impl core::fmt::Debug, StoreError>, want: Status, what: &str) -> Outcome {
    match r {
        Err(StoreError::Refused(s, _)) if s == want => Ok(()),
        other => Err(format!("{what}: {other:?}, want {want:?}")),
    }
}

fn calls(s: &mut Store) -> Outcome {
    let e = st_err;
    let id = s.create(&["kind:test", "n:1"]).map_err(e("create"))?;
    // 3 MiB: many requests (the buffer is 64 KiB), each a grant of our pages.
    let big: Vec<u8> = (0..3 << 20)
        .map(|i: usize| (i * 7 + i / 4096) as u8)
        .collect();
    s.write(id, 0, &big).map_err(e("write"))?;
    let back = s.read_all(id).map_err(e("read_all"))?;
    check("3 MiB read back as written", back == big)?;
    // Synced, its 64 KiB chunks are on block boundaries: read into our own pages,
    // all of it comes straight from the disk (tagfsd's stat counts it).
    s.sync().map_err(e("sync"))?;
    let into = zen_std::mem::Shared::new(big.len()).map_err(sys_err("shared"))?;
    let (_, d0) = reads(s)?;
    let n = s.read_to(id, 0, &into).map_err(e("read_to"))?;
    let (_, d1) = reads(s)?;
    let mut got = vec![0u8; big.len()];
    into.read(0, &mut got);
    check("read_to: 3 MiB as written", n == big.len() && got == big)?;
    check(
        &format!("read_to: {} of 3 MiB moved without a copy", d1 - d0),
        d1 - d0 == big.len() as u64,
    )?;
    // At an offset off the blocks: the copy path, the same bytes.
    let part = zen_std::mem::Shared::new(200_000).map_err(sys_err("shared"))?;
    let n = s.read_to(id, 100, &part).map_err(e("read_to"))?;
    let mut got = vec![0u8; n];
    part.read(0, &mut got);
    let (_, d2) = reads(s)?;
    check(
        "read_to at an unaligned offset",
        n == part.len() && got[..] == big[100..100 + n] && d2 - d1 < n as u64,
    )?;
    let mut mid = [0u8; 100];
    let n = s.read(id, 1 << 20, &mut mid).map_err(e("read"))?;
    check(
        "a read at an offset",
        n == 100 && mid[..] == big[1 << 20..(1 << 20) + 100],
    )?;
    check(
        "a query finds it",
        s.query("kind:test AND n:1").map_err(e("query"))? == vec![id],
    )?;
    check("add_tag says new", s.add_tag(id, "x").map_err(e("add"))?)?;
    check(
        "add_tag again says old",
        !s.add_tag(id, "x").map_err(e("add"))?,
    )?;
    check("remove_tag", s.remove_tag(id, "x").map_err(e("rm"))?)?;
    check(
        "tags with a prefix, counted",
        s.tags("n:").map_err(e("tags"))? == vec![(String::from("n:1"), 1)],
    )?;
    s.truncate(id, 10).map_err(e("truncate"))?;
    let (size, tags) = s.meta(id).map_err(e("meta"))?;
    check(
        &format!("meta after truncate: {size} {tags:?}"),
        size == 10 && tags.len() == 2,
    )?;
    // Bad input: a query that does not parse says where; a bad tag makes nothing.
    match s.query("kind:test AND (") {
        Err(StoreError::Refused(Status::BadQuery, at)) => {
            check(&format!("error at {at}"), at >= 14)?
        }
        other => return Err(format!("a broken query: {other:?}")),
    }
    let before = s.query("").map_err(e("all"))?.len();
    refused(
        s.create(&["ok", "bad tag"]),
        Status::InvalidTag,
        "a tag with a space",
    )?;
    check(
        "nothing was made",
        s.query("").map_err(e("all"))?.len() == before,
    )?;
    refused(
        s.meta(999_999),
        Status::NotFound,
        "meta of a missing object",
    )?;
    s.delete(id).map_err(e("delete"))?;
    refused(s.read_all(id), Status::NotFound, "read after delete")?;
    s.sync().map_err(e("sync"))
}

/// The connection's `read_bytes` and `direct_bytes`.
fn reads(s: &mut Store) -> Result<(u64, u64), String> {
    let st = s.stat().map_err(st_err("stat"))?;
    let get = |k: &str| st.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    match (get("read_bytes"), get("direct_bytes")) {
        (Some(r), Some(d)) if d <= r => Ok((r, d)),
        other => Err(format!("stat's read figures: {other:?}")),
    }
}

fn rights_and_scopes(r: &mut Running) -> Outcome {
    let e = st_err;
    let mut all = r.open(rights::ALL, "")?;
    let ada = all.create(&["owner:ada", "doc"]).map_err(e("create"))?;
    let bob = all.create(&["owner:bob", "doc"]).map_err(e("create"))?;
    let shared = all.create(&["shared", "doc"]).map_err(e("create"))?;
    all.write(bob, 0, b"bob's").map_err(e("write"))?;
    // Read-only: reads, never writes or tags.
    let mut ro = r.open(rights::READ, "")?;
    check("a read-only connection says so", ro.rights == rights::READ)?;
    check(
        "it reads",
        ro.read_all(bob).map_err(e("ro read"))? == b"bob's",
    )?;
    refused(
        ro.write(bob, 0, b"x"),
        Status::Denied,
        "a write on a read-only connection",
    )?;
    refused(
        ro.create(&[]),
        Status::Denied,
        "a create on a read-only connection",
    )?;
    refused(
        ro.add_tag(bob, "x"),
        Status::Denied,
        "a tag on a read-only connection",
    )?;
    let mut notag = r.open(rights::READ | rights::WRITE, "")?;
    refused(notag.add_tag(bob, "x"), Status::Denied, "a tag without TAG")?;
    // A scope: only what matches it exists.
    let mut s = r.open(rights::ALL, "owner:ada")?;
    check(
        "the scoped view",
        s.query("doc").map_err(e("q"))? == vec![ada],
    )?;
    check(
        "and without a query",
        s.query("").map_err(e("q"))? == vec![ada],
    )?;
    refused(
        s.read_all(bob),
        Status::NotFound,
        "reading outside the scope",
    )?;
    refused(
        s.write(shared, 0, b"x"),
        Status::NotFound,
        "writing outside the scope",
    )?;
    refused(
        s.delete(bob),
        Status::NotFound,
        "deleting outside the scope",
    )?;
    refused(
        s.add_tag(bob, "owner:ada"),
        Status::NotFound,
        "tagging into the scope",
    )?;
    refused(
        s.create(&["doc"]),
        Status::Denied,
        "creating outside the scope",
    )?;
    refused(
        s.remove_tag(ada, "owner:ada"),
        Status::Denied,
        "tagging out of the scope",
    )?;
    let (_, tags) = all.meta(ada).map_err(e("meta"))?;
    check(
        "the refused change was undone",
        tags.iter().any(|t| t == "owner:ada"),
    )?;
    let mine = s
        .create(&["owner:ada", "new"])
        .map_err(e("create in scope"))?;
    check(
        "tags count only the scope's objects",
        s.tags("doc").map_err(e("tags"))? == vec![(String::from("doc"), 1)],
    )?;
    // Passed on, a scope only narrows: asking for `shared` gives ada's AND shared.
    let mut narrower = {
        let cap = s.share(rights::ALL, "shared").map_err(e("share"))?;
        Store::connect(cap).map_err(e("connect"))?
    };
    check(
        "wider is narrower",
        narrower.query("").map_err(e("q"))?.is_empty(),
    )?;
    let mut ro2 = {
        let cap = ro.share(rights::ALL, "").map_err(e("share"))?;
        Store::connect(cap).map_err(e("connect"))?
    };
    check("rights only shrink too", ro2.rights == rights::READ)?;
    refused(
        ro2.write(bob, 0, b"x"),
        Status::Denied,
        "a write through a re-shared token",
    )?;
    let _ = (mine, &mut narrower);
    refused(
        all.share(rights::ALL, "a AND ("),
        Status::BadQuery,
        "a scope that does not parse",
    )?;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Another process presenting our connection's token gets nothing of it.
fn tokens_are_bound(r: &mut Running) -> Outcome {
    let cap = r.admin.share(rights::ALL, "").map_err(st_err("share"))?;
    let tok = cap.token().map_err(sys_err("token"))?;
    let code = run_child(&format!("store-steal {}", hex(&tok.to_bytes())))?;
    let _ = cap.drop_token();
    check(&format!("the thief exited {code}"), code == 0)
}

/// The `store-steal HEX` child: attaches with another process's token bytes.
pub(crate) fn steal(arg: &str) -> i32 {
    let bytes: Vec<u8> = (0..arg.len() / 2)
        .filter_map(|i| u8::from_str_radix(&arg[2 * i..2 * i + 2], 16).ok())
        .collect();
    let Ok(b) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return 2;
    };
    match sys(Syscall::ChanAttach, [b.as_ptr() as u64, 0, 0, 0, 0, 0]) {
        Err(Error::Denied) => 0,
        other => {
            println!("store-steal: attach {other:?}");
            1
        }
    }
}

/// What a hostile client tries with its connections: revoking one (it may not: tagfsd
/// made the channel and gave it no REVOKE), chains of shares (its family is capped,
/// and init keeps room), and filling tagfsd's token page with junk (swept). After
/// each, init's connection still makes new ones and they work.
fn hostile_clients(r: &mut Running) -> Outcome {
    let cap = r.admin.share(rights::ALL, "").map_err(st_err("share"))?;
    expect(
        "revoking a connection tagfsd made",
        sys(Syscall::CapRevoke, [cap.addr(), 0, 0, 0, 0, 0]),
        Err(Error::Denied),
    )?;
    let mut s = Store::connect(cap).map_err(st_err("connect"))?;
    // Shares of shares: refused once the family is full, not before 4.
    let mut made = Vec::new();
    let refused = loop {
        match s.share(rights::READ, "") {
            Ok(c) => made.push(c),
            Err(e) => break e,
        }
        if made.len() > 40 {
            return Err(String::from("no limit on shares of shares"));
        }
    };
    check(
        &format!("{} shares of one connection, then {refused:?}", made.len()),
        made.len() >= 4 && matches!(refused, StoreError::Refused(Status::Limit, _)),
    )?;
    // Junk tokens sent to tagfsd over a connection: 63 of them fill its token page.
    let end = made.pop().ok_or("no share")?;
    let ch = Channel::attach(end).map_err(sys_err("attach"))?;
    let (x, y) = chan::create().map_err(sys_err("create"))?;
    let mut sent = 0;
    while x.send_over(&ch, Rights::SEND).is_ok() && sent < 80 {
        sent += 1;
    }
    let _ = (x.drop_token(), y.drop_token());
    check(&format!("{sent} junk tokens went to tagfsd"), sent >= 60)?;
    let mut fresh = r.open(rights::READ, "")?;
    check(
        "init's connection still makes working ones",
        fresh.query("").is_ok(),
    )?;
    for c in made {
        let _ = c.drop_token();
    }
    Ok(())
}

const CLIENTS: u64 = 4;
const PER_CLIENT: u64 = 25;

/// Four children, two on each CPU, create, write, tag and query at once.
fn clients_at_once(r: &mut Running) -> Outcome {
    let mut pids = Vec::new();
    for n in 0..CLIENTS {
        let cap = r.admin.share(rights::ALL, "").map_err(st_err("share"))?;
        let pid = chan::spawn_with_cap(
            "usertests",
            &format!("store-client {n}"),
            cap,
            Rights::SEND | Rights::RECV,
        );
        let _ = cap.drop_token();
        pids.push(pid.map_err(sys_err("spawn"))?);
    }
    for (n, p) in pids.into_iter().enumerate() {
        let code = process::wait(p).map_err(sys_err("wait"))?;
        check(&format!("client {n} exited {code}"), code == 0)?;
    }
    let mut s = r.open(rights::READ, "")?;
    for n in 0..CLIENTS {
        let ids = s.query(&format!("client:{n}")).map_err(st_err("query"))?;
        check(
            &format!("client {n}'s objects: {}", ids.len()),
            ids.len() as u64 == PER_CLIENT,
        )?;
        let last = s.read_all(ids[ids.len() - 1]).map_err(st_err("read"))?;
        check(
            "their content",
            last.starts_with(format!("client {n} object").as_bytes()),
        )?;
    }
    Ok(())
}

/// The `store-client N` child.
pub(crate) fn client(n: u64) -> i32 {
    let _ = process::set_cpu((n % 2) as usize);
    let mut s = match Store::connect(Cap(0)) {
        Ok(s) => s,
        Err(e) => {
            println!("store-client {n}: connect: {e:?}");
            return 1;
        }
    };
    let r = (|| -> Result<(), StoreError> {
        for k in 0..PER_CLIENT {
            let tag = format!("client:{n}");
            let id = s.create(&[&tag, "load"])?;
            s.write(id, 0, format!("client {n} object {k}").as_bytes())?;
            if k % 5 == 4 {
                s.add_tag(id, "fifth")?;
            }
            let seen = s.query(&format!("{tag} AND load"))?;
            if seen.len() as u64 != k + 1 {
                println!("store-client {n}: saw {} of {}", seen.len(), k + 1);
                return Err(StoreError::Garbled);
            }
        }
        s.sync()
    })();
    match r {
        Ok(()) => 0,
        Err(e) => {
            println!("store-client {n}: {e:?}");
            1
        }
    }
}

pub(crate) fn the_store_serves_programs() -> Outcome {
    let mut r = start(true)?;
    let out = (|| {
        let mut s = r.open(rights::ALL, "")?;
        calls(&mut s).map_err(|w| format!("calls: {w}"))?;
        rights_and_scopes(&mut r).map_err(|w| format!("rights and scopes: {w}"))?;
        tokens_are_bound(&mut r).map_err(|w| format!("tokens: {w}"))?;
        hostile_clients(&mut r).map_err(|w| format!("hostile clients: {w}"))?;
        clients_at_once(&mut r).map_err(|w| format!("clients at once: {w}"))?;
        Ok::<(), String>(())
    })();
    let Running {
        nvmed,
        device,
        mut drv,
        tagfsd,
        ..
    } = r;
    // Killed, not asked to stop: only what the clients synced may count.
    let _ = process::kill(tagfsd);
    let _ = process::wait(tagfsd);
    if let Err(w) = out {
        let _ = process::kill(nvmed);
        let _ = process::wait(nvmed);
        let _ = device.drop_token();
        return Err(w);
    }
    // Started again on the same partition: it mounts, and finds what was synced.
    let again = start_tagfsd(&mut drv).and_then(|(pid, mut admin)| {
        let res = (|| {
            let cap = admin.share(rights::READ, "").map_err(st_err("share"))?;
            let mut s = Store::connect(cap).map_err(st_err("connect after restart"))?;
            let n = s.query("load").map_err(st_err("query"))?.len() as u64;
            check(
                &format!("{n} objects of the clients after a restart"),
                n == CLIENTS * PER_CLIENT,
            )
        })();
        let _ = process::kill(pid);
        let _ = process::wait(pid);
        res
    });
    let _ = process::kill(nvmed);
    let _ = process::wait(nvmed);
    let _ = device.drop_token();
    again
}

/// spawn_image with every bad argument: a clear error, nothing started, nothing kept.
pub(crate) fn spawn_image_refuses_bad_images() -> Outcome {
    use zen_abi::syscall::{SpawnImage, SPAWN_IMAGE_MAX};
    let before = usage_settled()?;
    let name = "x";
    let junk = vec![0x7fu8; 8192];
    let raw = |d: SpawnImage| {
        let b = d.to_bytes();
        sys(Syscall::SpawnImage, [b.as_ptr() as u64, 0, 0, 0, 0, 0])
    };
    let good = SpawnImage {
        image: junk.as_ptr() as u64,
        image_len: junk.len() as u64,
        name: name.as_ptr() as u64,
        name_len: 1,
        arg: 0,
        arg_len: 0,
    };
    expect("not an ELF", raw(good), Err(Error::BadExecutable))?;
    expect(
        "an empty image",
        raw(SpawnImage {
            image_len: 0,
            ..good
        }),
        Err(Error::BadExecutable),
    )?;
    expect(
        "an image past the limit",
        raw(SpawnImage {
            image_len: SPAWN_IMAGE_MAX + 1,
            ..good
        }),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "an image in kernel memory",
        raw(SpawnImage {
            image: 0xffff_8000_0000_0000,
            ..good
        }),
        Err(Error::BadAddress),
    )?;
    expect(
        "an image where nothing is mapped",
        raw(SpawnImage {
            image: 0x5000_0000_0000,
            ..good
        }),
        Err(Error::BadAddress),
    )?;
    expect(
        "an image at the limit, most of it not mapped",
        raw(SpawnImage {
            image_len: SPAWN_IMAGE_MAX,
            ..good
        }),
        Err(Error::BadAddress),
    )?;
    expect(
        "a name too long",
        raw(SpawnImage {
            name_len: 100,
            ..good
        }),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "an argument too long",
        raw(SpawnImage {
            arg: junk.as_ptr() as u64,
            arg_len: 5000,
            ..good
        }),
        Err(Error::InvalidArgument),
    )?;
    expect(
        "no descriptor",
        sys(Syscall::SpawnImage, [8, 0, 0, 0, 0, 0]),
        Err(Error::BadAddress),
    )?;
    expect(
        "a made-up token",
        {
            let b = good.to_bytes();
            sys(Syscall::SpawnImage, [b.as_ptr() as u64, 0x1000, 0, 0, 0, 0])
        },
        Err(Error::BadExecutable),
    )?;
    usage_back(before, "refused spawn_image calls")
}
